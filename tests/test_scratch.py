"""app/scratch.py: each session's scratch folder goes with the session, and stale folders are swept."""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from scratch import Scratch, scratch_root, sweep  # noqa: E402


def test_a_session_folder_goes_when_its_session_state_does(tmp_path):
    scratch = Scratch(tmp_path)
    folder = scratch.touch()
    (folder / "upload.mid").write_bytes(b"MThd")
    (folder / "run01").mkdir()
    assert folder.parent == tmp_path and folder.is_dir()
    del scratch
    gc.collect()
    assert not folder.exists() and tmp_path.is_dir()


def test_remove_is_explicit_and_idempotent(tmp_path):
    scratch = Scratch(tmp_path)
    scratch.remove()
    scratch.remove()
    assert not scratch.path.exists()


def test_sweep_removes_only_idle_session_folders(tmp_path):
    fresh, stale = Scratch(tmp_path), Scratch(tmp_path)
    other = tmp_path / "not-a-session"
    other.mkdir()
    long_ago = time.time() - 13 * 3600
    os.utime(stale.path, (long_ago, long_ago))
    os.utime(other, (long_ago, long_ago))
    assert sweep(tmp_path) == [stale.path]
    assert fresh.path.is_dir() and other.is_dir() and not stale.path.exists()
    assert sweep(tmp_path / "missing") == []


def test_touch_marks_a_folder_in_use(tmp_path):
    scratch = Scratch(tmp_path)
    long_ago = time.time() - 13 * 3600
    os.utime(scratch.path, (long_ago, long_ago))
    scratch.touch()
    assert sweep(tmp_path) == [] and scratch.path.is_dir()


def test_scratch_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MELODYRNN_APP_SCRATCH", str(tmp_path / "here"))
    assert scratch_root() == tmp_path / "here"
    assert Scratch().path.parent == tmp_path / "here"
