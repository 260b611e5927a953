"""run_folder: a run's file names, its readers and writers, and the checks before a run starts in a folder."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from melodyrnn.errors import MelodyRNNError
from melodyrnn.files import atomic_write_text
from melodyrnn.run_folder import (
    BEST,
    LATEST,
    LOG,
    _write_log,
    check_run_folder,
    format_history,
    open_run_folder,
    read_run,
)


def test_format_history_marks_the_best_epoch():
    table = format_history(
        [
            {"epoch": 1, "loss": 2.0, "val_loss": 1.5, "seconds": 3.0},
            {"epoch": 2, "loss": 1.0, "val_loss": float("nan"), "partial": True},
        ],
        best_epoch=1,
    )
    lines = table.splitlines()
    assert lines[2].startswith("    1*") and "1.5000" in lines[2]
    assert lines[3].rstrip().endswith("~") and "nan" not in lines[3]


def test_read_run_refuses_a_folder_without_a_run(tmp_path):
    with pytest.raises(MelodyRNNError, match=f"holds no training run \\(no readable {LATEST}\\)"):
        read_run(tmp_path)
    (tmp_path / LATEST).write_bytes(b"not a bundle")
    with pytest.raises(MelodyRNNError, match="holds no training run"):
        read_run(tmp_path)


def test_check_run_folder_says_what_the_folder_is_for(tmp_path):
    assert check_run_folder(tmp_path / "new", resume=False, from_bundle=None) is None
    with pytest.raises(MelodyRNNError, match="needs a run to continue"):
        check_run_folder(tmp_path, resume=True, from_bundle=None)
    with pytest.raises(MelodyRNNError, match="exclude each other"):
        check_run_folder(tmp_path, resume=True, from_bundle="x.melodyrnn")
    (tmp_path / LATEST).write_bytes(b"")
    with pytest.raises(MelodyRNNError, match="already holds a run"):
        check_run_folder(tmp_path, resume=False, from_bundle=None)


def test_opening_a_folder_clears_what_a_killed_atomic_write_left(tmp_path):
    (tmp_path / f".{BEST}.tmp").write_bytes(b"half a bundle")
    (tmp_path / "keep.txt").write_text("mine")
    open_run_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_the_log_is_rewritten_whole_from_the_history(tmp_path):
    atomic_write_text(tmp_path / LOG, "stale,rows\n1,2\n")
    _write_log(tmp_path / LOG, [{"epoch": 1, "loss": 2.5, "val_loss": 2.0}, {"epoch": 2, "loss": 2.0, "partial": True}])
    rows = list(csv.DictReader((tmp_path / LOG).open()))
    assert [(r["epoch"], r["loss"], r["val_loss"], r["partial"]) for r in rows] == [
        ("1", "2.5", "2.0", ""),
        ("2", "2.0", "", "True"),
    ]


def _run_with_state(tmp_path, state) -> Path:
    from melodyrnn.bundle import save_bundle
    from melodyrnn.model import ModelConfig, build_model

    run = tmp_path / "run"
    run.mkdir()
    model = build_model(ModelConfig(units=4, num_layers=1, embedding_dim=4, attention=False))
    save_bundle(run / LATEST, model, metadata={"training": state})
    return run


GOOD_STATE = {"epoch": 2, "history": [{"epoch": 1}, {"epoch": 2}], "best": {"epoch": 2, "val_loss": 1.5},
              "epochs_without_improvement": 0, "monitor": "val_loss", "train_config": {}}  # fmt: skip


@pytest.mark.parametrize(
    "edit, match",
    [
        ({"epoch": "three"}, r"`epoch` must be a int, got 'three'"),
        ({"history": {"1": 2}}, r"`history` must be a list"),
        ({"history": [3]}, r"`history` must be a list of rows"),
        ({"best": {"val_loss": "low"}}, r"`best.val_loss` must be a number or null, got 'low'"),
        ({"monitor": "accuracy"}, r"`epoch` 2 or `monitor` 'accuracy' is out of range"),
        ({"train_config": None}, r"`train_config` must be a dict, got None"),
    ],
)
def test_a_hand_edited_run_state_is_refused_with_its_reason(tmp_path, edit, match):
    assert read_run(_run_with_state(tmp_path, GOOD_STATE))["epoch"] == 2
    (tmp_path / "run" / LATEST).unlink()
    (tmp_path / "run").rmdir()
    with pytest.raises(MelodyRNNError, match="training state in latest.melodyrnn is unusable: " + match):
        read_run(_run_with_state(tmp_path, {**GOOD_STATE, **edit}))
