"""The package's shape: imports point down the data path, files stay readable, TensorFlow stays where it belongs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "melodyrnn"

# The data path, lowest first: a module may import only modules before it (README.md, "Layout").
ORDER = [
    "errors", "compiled", "configs", "theory", "files", "archives", "midi_score", "midi_scan", "midi_match", "midi_io",
    "score_walk", "scores", "chord_search", "chords", "track_grid", "tracks",
    "encoding", "lines", "extraction", "collection", "conditioning", "dataset", "cells", "fused_tf", "layers",
    "attention", "lookback", "model", "warm_start", "bundle", "harmonize", "harmonizer_training",
    "evaluation", "ngram", "baselines", "metrics", "copies", "lead_sheet", "backing", "notation",
    "distribute", "run_folder", "planning", "training", "sample_config",
    "decoding", "adaptation", "gaps", "infill_model", "infill_backward", "infill_training", "sampling",
    "audio", "cli_harmonize", "cli_infill", "cli_train", "cli",
]  # fmt: skip
# Where TensorFlow itself is used: fused loops, tf.data, compiled scoring and sampling, strategies and summaries.
TENSORFLOW_USERS = {
    "fused_tf", "dataset", "lookback", "evaluation", "distribute", "run_folder", "decoding", "adaptation",
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    """melodyrnn modules and top-level packages `path` imports at run time (not under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    names = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if node.module == "melodyrnn":
                names.update(alias.name for alias in node.names if alias.name in ORDER)
            else:
                names.add(parts[1] if parts[0] == "melodyrnn" else parts[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                names.add(parts[1] if parts[0] == "melodyrnn" and len(parts) > 1 else parts[0])
    return names


def test_every_module_is_placed_on_the_data_path():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert modules == set(ORDER)


def test_imports_only_point_down_the_data_path():
    for name in ORDER:
        upward = {m for m in _imports(PACKAGE / f"{name}.py") if m in ORDER and ORDER.index(m) >= ORDER.index(name)}
        assert not upward, f"{name} imports {sorted(upward)}, which come after it on the data path"


def test_tensorflow_is_imported_only_where_it_is_used():
    users = {name for name in ORDER if "tensorflow" in _imports(PACKAGE / f"{name}.py")}
    assert users == TENSORFLOW_USERS


def test_every_file_reads_in_one_sitting():
    lengths = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert max(lengths.values()) <= 500, sorted(lengths.items(), key=lambda item: -item[1])[:3]


def test_importing_the_package_and_the_model_loads_only_what_they_need():
    code = (
        "import sys, melodyrnn\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'import melodyrnn loaded TF'\n"
        "import melodyrnn.model\n"
        "assert 'melodyrnn.dataset' not in sys.modules, 'melodyrnn.model imported melodyrnn.dataset'\n"
        "import melodyrnn.sampling\n"
        "assert 'melodyrnn.metrics' not in sys.modules, 'melodyrnn.sampling imported melodyrnn.metrics'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
