"""run_folder: a run's file names, its readers and writers, and the checks before a run starts in a folder."""

from __future__ import annotations

import csv

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
