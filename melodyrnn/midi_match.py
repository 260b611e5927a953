"""symusic's parse of a MIDI file checked against `midi_scan`'s scan of the same bytes, note for note.

Start at `same_notes`. It reads the parsed score's pickled state (symusic's C++ structures laid end to end)
in one compiled pass: one buffer instead of a numpy array per track and field, for a sixth of the cost.
A state laid out otherwise (another symusic) reads as a mismatch, so the file goes to the exact reader.
"""

from __future__ import annotations

import numpy as np

from melodyrnn.compiled import jit
from melodyrnn.midi_scan import ScannedFile
from melodyrnn.midi_score import DRUM_CHANNEL


def same_notes(state: np.ndarray, tpq: int, scanned: ScannedFile) -> bool:
    """Whether symusic's parse of a file holds exactly the notes of its scan.

    Args:
        state: uint8, shape (bytes,): the parsed ``symusic.Score``'s pickled state (``Score.__getstate__()``):
            its ticks per quarter, then each track (name, program, drum flag, notes, controls, pitch bends,
            pedals, lyrics), then the score's meters, keys, tempos and markers, C++ structures laid end to end.
        tpq: the file's ticks per quarter note.
        scanned: the file's scan.

    Returns:
        True when the ticks per quarter agree and symusic's tracks that hold notes are the scan's groups in
        order, drum flag for drum channel, each with the same notes (start, end, pitch, velocity) once sorted by
        start and pitch. A state laid out otherwise (another symusic) reads as False: the exact reader decides.
    """
    return bool(
        _same_notes(
            state,
            tpq,
            scanned.groups,
            scanned.group_firsts,
            scanned.note_start_ticks,
            scanned.note_end_ticks,
            scanned.note_pitches,
            scanned.note_velocities,
        )
    )


@jit
def _int32(b: np.ndarray, at: int) -> int:
    """The 32-bit integer at `at`, in the machine's byte order (symusic's, on the machine that pickled it)."""
    return np.int64(b[at : at + 4].view(np.int32)[0])


@jit
def _skip_records(b: np.ndarray, at: int, record: int, texts: bool) -> int:
    """The position after a vector of `record`-byte structures at `at` (each followed by its text's bytes if
    `texts`: a text's length is the record's second int32), or -1 past the end."""
    if at < 0 or at + 4 > b.size:
        return -1
    count = _int32(b, at)
    at += 4
    if count < 0:
        return -1
    if not texts:
        at += count * record
        return at if at <= b.size else -1
    for _ in range(count):
        if at + record > b.size:
            return -1
        length = _int32(b, at + 4)
        if length < 0:
            return -1
        at += record + length
    return at if at <= b.size else -1


@jit
def _same_notes(
    b: np.ndarray,
    tpq: int,
    groups: np.ndarray,
    group_firsts: np.ndarray,
    start_ticks: np.ndarray,
    end_ticks: np.ndarray,
    pitches: np.ndarray,
    velocities: np.ndarray,
) -> bool:
    """`same_notes`, compiled. Notes are 12 bytes (time, duration: int32; pitch, velocity: int8; padding),
    controls, pitch bends, pedals, meters, keys and tempos 8, texts 8 and their bytes."""
    if b.size < 8 or _int32(b, 0) != tpq:
        return False
    tracks, at, played = _int32(b, 4), 8, 0
    for _ in range(tracks):
        at = _skip_records(b, at, 1, False)  # the name
        if at < 0 or at + 6 > b.size:
            return False
        is_drum, count = b[at + 1], _int32(b, at + 2)
        at += 6
        if count > 0:
            if played >= groups.size or count != group_firsts[played + 1] - group_firsts[played]:
                return False
            if at + 12 * count > b.size or is_drum != (groups[played] % 16 == DRUM_CHANNEL):
                return False
            if not _same_track_notes(b, at, count, group_firsts[played], start_ticks, end_ticks, pitches, velocities):
                return False
            played += 1
        at += 12 * max(count, 0)
        for k in range(4):  # controls, pitch bends, pedals, lyrics (texts)
            at = _skip_records(b, at, 8, k == 3)
    for k in range(4):  # meters, keys, tempos, markers (texts)
        at = _skip_records(b, at, 8, k == 3)
    return at == b.size and played == groups.size


@jit
def _same_track_notes(
    b: np.ndarray,
    at: int,
    count: int,
    first: int,
    start_ticks: np.ndarray,
    end_ticks: np.ndarray,
    pitches: np.ndarray,
    velocities: np.ndarray,
) -> bool:
    """Whether the `count` notes at `at` of the state are notes ``first:first + count`` of the scan once sorted
    by (start, pitch). symusic sorts them by start only, so they are first matched run by run of notes starting
    together; when that fails, sorted and compared one by one, which decides."""
    fields = b[at : at + 12 * count].view(np.int32)  # per note: time, duration, then pitch and velocity bytes
    if _same_in_runs(b, at, fields, first, start_ticks, end_ticks, pitches, velocities):
        return True
    keys = np.empty(count, dtype=np.int64)
    for i in range(count):
        keys[i] = np.int64(fields[3 * i]) * 256 + b[at + 12 * i + 8]
    order = _sorted_order(keys)
    if order.size < count:
        return False
    for i in range(count):
        k, n = order[i], first + i
        start = np.int64(fields[3 * k])
        if start != start_ticks[n] or start + fields[3 * k + 1] != end_ticks[n]:
            return False
        if b[at + 12 * k + 8] != pitches[n] or b[at + 12 * k + 9] != velocities[n]:
            return False
    return True


@jit
def _same_in_runs(
    b: np.ndarray,
    at: int,
    fields: np.ndarray,
    first: int,
    start_ticks: np.ndarray,
    end_ticks: np.ndarray,
    pitches: np.ndarray,
    velocities: np.ndarray,
) -> bool:
    """True when symusic's notes start where the scan's do, one by one, and each run of notes starting together
    holds distinct pitches, each matching a note of the scan's run (sorted by pitch) in end and velocity: then
    the two are the same notes. False otherwise, which proves nothing."""
    last = first + fields.size // 3
    run, seen = first, np.zeros(2, dtype=np.uint64)
    for n in range(first, last):
        i = 3 * (n - first)
        start = np.int64(fields[i])
        if start != start_ticks[n]:
            return False
        if start != start_ticks[run]:
            run = n
            seen[0] = seen[1] = 0
        pitch = b[at + 4 * i + 8]
        j = run
        while j < last and start_ticks[j] == start and pitches[j] != pitch:
            j += 1
        if j == last or start_ticks[j] != start:
            return False
        bit = np.uint64(1) << np.uint64(pitch & 63)
        if seen[pitch >> 6] & bit:
            return False
        seen[pitch >> 6] |= bit
        if start + fields[i + 1] != end_ticks[j] or b[at + 4 * i + 9] != velocities[j]:
            return False
    return True


@jit
def _sorted_order(keys: np.ndarray) -> np.ndarray:
    """The indices that sort `keys`, by insertion: symusic's notes come sorted by start, so only notes starting
    together can be out of order. Empty when that takes more than 64 moves a note (never seen: the exact reader
    then decides)."""
    order = np.arange(keys.size)
    budget = 64 * keys.size
    for k in range(1, keys.size):
        i, m = order[k], k
        while m > 0 and keys[order[m - 1]] > keys[i]:
            order[m] = order[m - 1]
            m -= 1
        order[m] = i
        budget -= k - m
        if budget < 0:
            return order[:0]
    return order
