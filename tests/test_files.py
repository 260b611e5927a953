"""files: atomic writes that never leave half a file, and never replace what is not a regular file."""

from __future__ import annotations

import os
import stat

import pytest

from melodyrnn.errors import MelodyRNNError
from melodyrnn.files import atomic_write, atomic_write_text, check_writable_file


def test_a_new_file_and_a_replaced_file(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "one")
    atomic_write_text(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == 0o666 & ~_umask()
    assert os.listdir(tmp_path) == ["a.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "old")

    def fail(f):
        f.write(b"half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device"):
        atomic_write(tmp_path / "a.txt", fail)
    assert (tmp_path / "a.txt").read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


@pytest.mark.parametrize("kind", ["folder", "symlink", "fifo"])
def test_what_is_not_a_regular_file_is_refused_untouched(tmp_path, kind):
    target = tmp_path / "out.npz"
    if kind == "folder":
        target.mkdir()
    elif kind == "symlink":
        (tmp_path / "elsewhere").write_text("keep me")
        target.symlink_to(tmp_path / "elsewhere")
    else:
        os.mkfifo(target)
    name = {"folder": "a folder", "symlink": "a symlink", "fifo": "a FIFO"}[kind]
    with pytest.raises(MelodyRNNError, match=f"`output` .*out.npz is {name}, not a regular file"):
        atomic_write_text(target, "data")
    assert os.path.lexists(target) and not (kind == "symlink" and (tmp_path / "elsewhere").read_text() != "keep me")
    assert sorted(os.listdir(tmp_path)) == sorted(["out.npz"] + (["elsewhere"] if kind == "symlink" else []))


def test_a_device_is_refused():
    with pytest.raises(MelodyRNNError, match="/dev/null is a device, not a regular file"):
        check_writable_file("/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_path_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(MelodyRNNError, match="cannot be written: Not a directory"):
        check_writable_file(tmp_path / "file" / "out.npz")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
