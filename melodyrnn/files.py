"""Writing files users will rely on: atomically, and only where a regular file belongs.

`atomic_write(path, write)` fills a temporary file beside `path` and renames it over `path`, so a crash at any
moment leaves the old file or the new one, never half of one (nor a stray temporary file). It refuses a target
that exists and is not a regular file — a device, a FIFO, a folder or a symlink — rather than replace it: run as
root, `-o /dev/null` must not turn /dev/null into a regular file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from melodyrnn.errors import MelodyRNNError

__all__ = ["atomic_write", "atomic_write_text", "check_writable_file"]


def check_writable_file(path: str | os.PathLike, what: str = "output") -> Path:
    """`path` as a `Path`, once it is a new path or an existing regular file (not a symlink).

    Raises:
        MelodyRNNError: it exists and is something else, naming what it is.
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as err:  # a path under a regular file, say: the caller's write would fail the same way
        raise MelodyRNNError(f"`{what}` {path} cannot be written: {err.strerror}") from err
    if not stat.S_ISREG(mode):
        kinds = ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                 (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))  # fmt: skip
        kind = next((name for test, name in kinds if test(mode)), "not a file")
        raise MelodyRNNError(f"`{what}` {path} is {kind}, not a regular file: give a new path or a file to replace")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], what: str = "output") -> None:
    """Writes `path` atomically: `write(f)` fills a temporary binary file in the same folder, which is flushed to
    disk and then renamed over `path`. The file gets the ordinary permissions of a new file (0o666 less the
    umask), not mkstemp's 0o600.

    Raises:
        MelodyRNNError: `path` exists and is not a regular file (see `check_writable_file`).
        OSError: the folder is missing or read-only, or the disk is full; nothing is left behind.
    """
    path = check_writable_file(path, what)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, what: str = "output") -> None:
    """`atomic_write` of UTF-8 text."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")), what)
