"""The compiler for the few loops that walk data one element at a time: numba's `njit`, set up once.

Reading a collection spends its time in loops over bytes, notes and beats whose every step depends on the one
before (a MIDI file's running status, a note waiting for its note-off, the best chord path so far). numpy can only
express those as many whole-array passes; compiled, each is one pass. `jit` compiles a function the first time it
is called with new argument types and caches the machine code beside the module (in `__pycache__`, or numba's
user cache folder where that is read-only), so later processes, prepare's workers among them, load it instead of
compiling again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import numba

F = TypeVar("F", bound=Callable)


def jit(function: F) -> F:
    """`function` compiled to machine code with numba (no Python objects inside, no GIL held, cached on disk).

    Only numpy arrays, numbers and tuples of them go in and come out; the function must be written for that.
    """
    return cast(F, numba.njit(cache=True, nogil=True)(function))
