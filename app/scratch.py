"""Scratch folders for the app's sessions (uploads, prepared data, training runs, bundles), and their cleanup.

Each browser session gets one folder under `scratch_root()`. It goes when the session does (Streamlit drops a
session's state some time after its tab closes, and a finalizer on the state's `Scratch` object removes the
folder), and a sweep when the server starts and whenever a session starts removes folders idle for longer than
`MAX_IDLE_HOURS` (a server that was killed never ran its finalizers). UI-free, so tests drive it directly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import weakref
from pathlib import Path

#: A session folder untouched for this long belongs to a session that is gone.
MAX_IDLE_HOURS = 12.0
_PREFIX = "session-"


def scratch_root() -> Path:
    """Where session folders live: `MELODYRNN_APP_SCRATCH`, else a `melodyrnn-app` folder in the system temp."""
    return Path(os.environ.get("MELODYRNN_APP_SCRATCH") or Path(tempfile.gettempdir()) / "melodyrnn-app")


class Scratch:
    """One session's folder, removed with this object (or at interpreter exit, whichever comes first)."""

    def __init__(self, root: Path | None = None):
        root = root if root is not None else scratch_root()
        root.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=root))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, True)

    def touch(self) -> Path:
        """Marks the folder as in use (the sweep goes by its modification time) and returns it."""
        self.path.mkdir(parents=True, exist_ok=True)  # recreated if something removed it under us
        os.utime(self.path)
        return self.path

    def remove(self) -> None:
        self._finalizer()


def sweep(root: Path | None = None, max_idle_hours: float = MAX_IDLE_HOURS, now: float | None = None) -> list[Path]:
    """Removes session folders under `root` idle for longer than `max_idle_hours`; returns what it removed."""
    root = root if root is not None else scratch_root()
    now = time.time() if now is None else now
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for folder in root.glob(f"{_PREFIX}*"):
        try:
            idle = now - folder.stat().st_mtime
        except OSError:  # removed by another process meanwhile
            continue
        if folder.is_dir() and idle > max_idle_hours * 3600:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
