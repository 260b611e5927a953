"""Paths as benchmark results record them: relative to the repository root, never the absolute paths of the
machine that ran the benchmark (``..`` steps out of the root for data kept beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def repo_relative(path: str | os.PathLike) -> str:
    """`path` (absolute, or relative to the current folder) relative to the repository root, in POSIX form."""
    return Path(os.path.relpath(Path(path).resolve(), ROOT)).as_posix()
