"""Originality: how much of a melody also occurs, note for note, in a collection — the check that a model writes
rather than copies.

Start at `originality(melodies, data)`: for each melody, the longest run of consecutive notes whose intervals and
onset spacing also occur in one melody of `data` (so a copy in another key still counts), in notes and in bars,
and where it comes from. Runs are found by hashing every window of the collection once per length tried and a
binary search on the length, so checking against a collection of thousands of tunes takes well under a second.
`CopyIndex(data)` hashes a collection once, for checking many batches against it (the app keeps one).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from melodyrnn.dataset import PreparedData
from melodyrnn.encoding import Melody
from melodyrnn.errors import DataError
from melodyrnn.evaluation import open_data

__all__ = ["Copy", "CopyIndex", "originality", "load_collection", "format_copy"]

# A random odd multiplier for the rolling hash (arithmetic wraps modulo 2**64); matches are verified exactly, so a
# collision could only hide a copy, never invent one.
_BASE = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Copy:
    """The longest run of a melody's notes that also occurs in a reference melody.

    Attributes:
        notes: notes in the run (0 for a melody without notes; 1 when not even two notes in a row occur).
        bars: the run's length in bars of the melody's meter, from its first onset to its last note's end.
        start_note: index of the run's first note in the melody.
        source: the reference melody's source (file path), or None when `notes` < 2.
        source_index: the reference melody's index in the collection, or None.
        source_start_note: index of the run's first note in the reference melody, or None.
        transposition: semitones from the reference to the melody (0 for an exact copy).
    """

    notes: int
    bars: float
    start_note: int = 0
    source: str | None = None
    source_index: int | None = None
    source_start_note: int | None = None
    transposition: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _note_arrays(melody: Melody) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # pitches, onsets and ends (steps) of every note, int64 arrays (notes,)
    notes = melody.notes()
    if not notes:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    pitch, start, end = (np.array(column, np.int64) for column in zip(*notes))
    return pitch, start, end


def _symbols(pitch: np.ndarray, start: np.ndarray) -> np.ndarray:
    """One uint64 per note after the first: its interval from the previous note and the onset spacing."""
    if pitch.size < 2:
        return np.zeros(0, np.uint64)
    interval = np.diff(pitch) + 128
    spacing = np.minimum(np.diff(start), (1 << 20) - 1)
    return (interval.astype(np.uint64) << np.uint64(20)) | spacing.astype(np.uint64)


class _Index:
    """Every window of the reference symbol strings, hashed once per window length asked for."""

    def __init__(self, strings: list[np.ndarray]):
        self.strings = strings
        self.lengths = np.array([s.size for s in strings], np.int64)
        width = int(self.lengths.max(initial=0))
        padded = np.zeros((len(strings), width), np.uint64)
        for i, s in enumerate(strings):
            padded[i, : s.size] = s
        self.prefix = _prefix_hashes(padded)  # (strings, width + 1), all strings at once
        self._by_length: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def hashes(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted hashes of every window of `length` symbols, and for each the (string, position) it came from
        encoded as one int64 (string * 2**32 + position)."""
        if length not in self._by_length:
            windows = _window_hashes(self.prefix, length)  # (strings, width + 1 - length)
            string, position = np.nonzero(np.arange(windows.shape[1])[None, :] <= (self.lengths - length)[:, None])
            values = windows[string, position]
            origin = (string.astype(np.int64) << np.int64(32)) + position.astype(np.int64)
            order = np.argsort(values, kind="stable")
            self._by_length[length] = (values[order], origin[order])
        return self._by_length[length]

    def find(self, query: np.ndarray, length: int) -> tuple[int, int, int] | None:
        """A window of `query` of `length` symbols that occurs in the index: (query position, string, position)."""
        values, origin = self.hashes(length)
        if values.size == 0 or query.size < length:
            return None
        mine = _window_hashes(_prefix_hashes(query[None, :]), length)[0]
        slots = np.minimum(np.searchsorted(values, mine), values.size - 1)
        for q in np.flatnonzero(values[slots] == mine):
            for k in range(slots[q], values.size):  # equal hashes sit together; verify each exactly
                if values[k] != mine[q]:
                    break
                string, position = int(origin[k] >> 32), int(origin[k] & 0xFFFFFFFF)
                if np.array_equal(self.strings[string][position : position + length], query[q : q + length]):
                    return int(q), string, position
        return None


def _prefix_hashes(rows: np.ndarray) -> np.ndarray:
    """Polynomial prefix hashes of each row of a (strings, width) uint64 array: shape (strings, width + 1)."""
    h = np.zeros((rows.shape[0], rows.shape[1] + 1), np.uint64)
    with np.errstate(over="ignore"):
        for i in range(rows.shape[1]):  # sequential along a string, vectorised across strings
            h[:, i + 1] = h[:, i] * _BASE + rows[:, i] + np.uint64(1)
    return h


def _window_hashes(prefix: np.ndarray, length: int) -> np.ndarray:
    """Hashes of every window of `length` symbols from prefix hashes (strings, width + 1)."""
    with np.errstate(over="ignore"):
        power = np.uint64(1)
        for _ in range(length):
            power = power * _BASE
        return prefix[:, length:] - prefix[:, :-length] * power


def load_collection(data) -> list[Melody]:
    """The melodies of a collection to check against: a `PreparedData`, a prepared cache (`.npz`), a folder of
    MIDI files (read as `prepare` reads it), or a list of `Melody`. Every split is used.

    Raises:
        DataError: none of those, a path that is neither, or a folder without melodies.
    """
    if isinstance(data, (str, os.PathLike)):
        data = open_data(data)
    if isinstance(data, PreparedData):
        return data.melodies("all")
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        melodies = list(data)
        if all(isinstance(m, Melody) for m in melodies):
            return melodies
    raise DataError(
        f"`data` must be prepared data, a cache path, a MIDI folder or a list of melodies, got {type(data).__name__}"
    )


def _reference(melodies: Sequence[Melody]) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Pitches, symbol strings and sources of the reference melodies."""
    pitches, strings, sources = [], [], []
    for m in melodies:
        pitch, start, _ = _note_arrays(m)
        pitches.append(pitch)
        strings.append(_symbols(pitch, start))
        sources.append(m.source)
    return pitches, strings, sources


class CopyIndex:
    """A collection ready to check melodies against: its notes read and hashed once, each run length's windows
    hashed on first use and kept. `originality` takes it as `data`.

    Args:
        data: the collection, as `load_collection` takes it.

    Attributes:
        num_melodies: melodies in the collection.
        steps_per_quarter: their grid (None for an empty collection).

    Raises:
        DataError: see `load_collection`.
    """

    def __init__(self, data):
        melodies = load_collection(data)
        self.num_melodies = len(melodies)
        self.steps_per_quarter = melodies[0].steps_per_quarter if melodies else None
        self.pitches, strings, self.sources = _reference(melodies)
        self.index = _Index(strings)


def originality(melodies: Melody | Iterable[Melody], data) -> list[Copy]:
    """For each melody, the longest run of its notes that also occurs in one melody of `data`, in any key.

    Two runs are the same when their notes move by the same intervals at the same onset spacing (the last note's
    length is not compared). A run of 1 note always "occurs"; a shuffled or new melody typically shares 3–6 notes
    with a large collection, a copied phrase many more.

    Args:
        melodies: a `Melody` or several (e.g. what `generate` returned).
        data: the collection, as `load_collection` takes it, or a `CopyIndex` of it (to check many batches
            against it, build that once).

    Returns:
        One `Copy` per melody, in order.

    Raises:
        DataError: unusable `data`, or melodies on another grid (steps per quarter) than the collection's.

    Example:
        >>> tunes = melodyrnn.generate(8, bars=16, seed=1)
        >>> for copy in melodyrnn.originality(tunes, "training_data"):
        ...     print(format_copy(copy))
    """
    items = [melodies] if isinstance(melodies, Melody) else list(melodies)
    reference = data if isinstance(data, CopyIndex) else CopyIndex(data)
    grid = reference.steps_per_quarter
    if any(m.steps_per_quarter != grid for m in items if grid is not None):
        raise DataError(
            f"the melodies and the collection must share a grid: the collection has {grid} steps per quarter"
        )
    return [_longest_copy(m, reference.index, reference.pitches, reference.sources) for m in items]


def _longest_copy(melody: Melody, index: _Index, ref_pitches: list[np.ndarray], sources: list[str]) -> Copy:
    pitch, start, end = _note_arrays(melody)
    query = _symbols(pitch, start)
    if pitch.size == 0:
        return Copy(notes=0, bars=0.0)
    best, lo, hi = None, 1, int(query.size)  # binary search on symbols: a match of L implies one of L - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        found = index.find(query, mid)
        if found is None:
            hi = mid - 1
        else:
            best, lo = (mid, found), mid + 1
    if best is None:
        return Copy(notes=1, bars=float(end[0] - start[0]) / melody.steps_per_bar)
    length, (q, string, position) = best
    first, last = q, q + length
    return Copy(
        notes=length + 1,
        bars=float(end[last] - start[first]) / melody.steps_per_bar,
        start_note=first,
        source=sources[string],
        source_index=string,
        source_start_note=position,
        transposition=int(pitch[first] - ref_pitches[string][position]),
    )


def format_copy(copy: Copy) -> str:
    """One line: `longest copied run: 9 notes (2.0 bars) of tune.mid, transposed +2` or `... no two notes in a row`."""
    if copy.source is None:
        return "longest copied run: no two notes in a row occur in the collection"
    moved = f", transposed {copy.transposition:+d}" if copy.transposition else ""
    return f"longest copied run: {copy.notes} notes ({copy.bars:.1f} bars) of {copy.source}{moved}"
