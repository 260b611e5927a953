"""The compiled loops of melody extraction: a track's notes on the grid → one line → melodies' events.

`extraction` decides what a melody is; these two functions do the per-note work for it, each in one compiled pass
(a song's taken track gives several melodies, and doing each one's dozen small numpy calls cost more than the notes
themselves). Both take the parallel int64 arrays of a quantized track: pitches, start steps and end steps
(exclusive), sorted by start step and, within a step, highest pitch first.
"""

from __future__ import annotations

import math

import numpy as np

from melodyrnn.compiled import jit

NO_EVENT, NOTE_OFF = -2, -1  # as `melodyrnn.encoding` writes them (which imports this module's users, not this)

#: The columns of `segment_lines`' table.
STATUS, START, END, TRUNCATED, SHIFT, VELOCITY, EVENTS_AT = range(7)
#: Its statuses: a melody, or why the segment is dropped (in the order they are checked).
KEPT, TOO_SHORT, TOO_FEW_PITCHES, OUT_OF_RANGE = range(4)


@jit
def quantized_line(
    pitches: np.ndarray,
    start_quarters: np.ndarray,
    end_quarters: np.ndarray,
    velocities: np.ndarray,
    steps_per_quarter: int,
    drop: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """A track's notes on the grid as one line: sorted by start step then highest pitch first (ties in their
    order), a note shorter than a step keeping one, overlaps resolved by `highest_line` (or refused with `drop`).

    Args:
        pitches, velocities: int64 ``(notes,)``; start_quarters, end_quarters: float64 ``(notes,)``.
        steps_per_quarter: the grid; positions are rounded to it half to even.
        drop: the "drop" polyphony policy: notes that overlap on the grid give no line.

    Returns:
        The line's int64 pitches, start steps, end steps (exclusive) and velocities, and False where `drop`
        refused the track.
    """
    n = pitches.size
    starts = np.empty(n, np.int64)
    ends = np.empty(n, np.int64)
    for i in range(n):
        starts[i] = np.int64(np.rint(start_quarters[i] * steps_per_quarter))
        ends[i] = max(np.int64(np.rint(end_quarters[i] * steps_per_quarter)), starts[i] + 1)
    order = np.argsort(starts, kind="mergesort")
    first = 0
    while first < n:  # each run of notes struck together: highest first, stably
        last = first + 1
        while last < n and starts[order[last]] == starts[order[first]]:
            last += 1
        if last - first > 1:
            run = order[first:last]
            order[first:last] = run[np.argsort(-pitches[run], kind="mergesort")]
        first = last
    pitches, starts, ends, velocities = pitches[order], starts[order], ends[order], velocities[order]
    for i in range(1, n):
        if starts[i] < ends[i - 1]:
            if drop:
                return pitches, starts, ends, velocities, False
            kept, ends = highest_line(pitches, starts, ends)
            return pitches[kept], starts[kept], ends, velocities[kept], True
    return pitches, starts, ends, velocities, True


@jit
def highest_line(pitches: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The "highest" polyphony policy: which notes stay, and where each now ends.

    Of notes struck together the first (highest) is kept; a note struck under a sustained higher one is ignored;
    a note struck at or above a sustained one cuts it short.

    Returns:
        int64 ``(kept,)`` indices of the notes kept, in order, and their int64 ``(kept,)`` end steps.
    """
    kept = np.empty(starts.size, np.int64)
    new_ends = ends.copy()
    count = 0
    for i in range(starts.size):
        if i and starts[i] == starts[i - 1]:
            continue  # under the highest note of its onset
        if count:
            last = kept[count - 1]
            if starts[i] < new_ends[last]:
                if pitches[i] < pitches[last]:
                    continue
                new_ends[last] = starts[i]
        kept[count] = i
        count += 1
    kept = kept[:count]
    return kept, new_ends[kept]


@jit
def segment_lines(
    pitches: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    velocities: np.ndarray,
    bars: np.ndarray,
    meter_steps: np.ndarray,
    bar_lengths: np.ndarray,
    limits: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Splits a monophonic line at long silences and turns each part into a melody's events, or a reason not to.

    A silence of ``gap_bars`` bars or more (bars of the meter where the next note starts) splits the line. A part
    starts at the bar line before its first note and ends at the first bar line at or after its last note's end
    (or that end, past the last bar line). A part longer than ``max_steps`` is cut at the last bar line that fits
    (at ``max_steps`` if none does). Then, in this order, it is dropped when shorter than ``min_bars`` bars of its
    first meter, when it has fewer than ``min_unique`` distinct pitches, or when it cannot be moved by whole
    octaves into ``[min_pitch, max_pitch]``.

    Args:
        pitches, starts, ends, velocities: the line, int64 ``(notes,)``, at least one note.
        bars: int64, bar-line steps, rising, reaching past the line's last end.
        meter_steps: int64, the steps where each meter starts (the first at 0); bar_lengths: float64, steps per bar
            of each.
        limits: float64 ``[gap_bars, max_steps, min_bars, min_unique, min_pitch, max_pitch]``.

    Returns:
        An int64 table, one row per part: the columns `STATUS`, `START`, `END` (steps of the source),
        `TRUNCATED` (0/1), `SHIFT` (semitones), `VELOCITY` (the median, truncated), `EVENTS_AT` (where the kept
        part's events start in the second result); and the events of every kept part, int16, back to back
        (NO_EVENT, NOTE_OFF or a pitch per step, ``END - START`` steps each; a note-off only where a rest follows).
    """
    gap_bars, max_steps, min_bars = limits[0], int(limits[1]), limits[2]
    min_unique, min_pitch, max_pitch = int(limits[3]), int(limits[4]), int(limits[5])
    n = starts.size
    bounds = [0]
    for i in range(1, n):
        meter = max(np.searchsorted(meter_steps, starts[i], side="right") - 1, 0)
        if starts[i] - ends[i - 1] >= gap_bars * bar_lengths[meter]:
            bounds.append(i)
    bounds.append(n)
    parts = len(bounds) - 1
    table = np.zeros((parts, 7), np.int64)
    counts = np.zeros(parts, np.int64)  # notes of each part that survive the cut
    total = 0
    for p in range(parts):
        lo, hi = bounds[p], bounds[p + 1]
        row = table[p]
        start = bars[np.searchsorted(bars, starts[lo], side="right") - 1]
        last_end = ends[hi - 1]
        following = np.searchsorted(bars, last_end, side="left")
        end = bars[following] if following < bars.size else last_end
        if end - start > max_steps:
            row[TRUNCATED] = 1
            first = np.searchsorted(bars, start, side="right")
            fits = np.searchsorted(bars, start + max_steps, side="right")
            end = bars[fits - 1] if fits > first else start + max_steps
            while hi > lo and starts[hi - 1] >= end:  # the notes starting before the cut (starts rise)
                hi -= 1
        row[START], row[END], counts[p] = start, end, hi - lo
        meter = max(np.searchsorted(meter_steps, start, side="right") - 1, 0)
        if end - start < min_bars * bar_lengths[meter]:
            row[STATUS] = TOO_SHORT
            continue
        ordered = np.sort(pitches[lo:hi])
        distinct = 1
        for i in range(1, ordered.size):
            distinct += ordered[i] != ordered[i - 1]
        if distinct < min_unique:
            row[STATUS] = TOO_FEW_PITCHES
            continue
        low, high = ordered[0], ordered[-1]
        shift = 0
        if low < min_pitch or high > max_pitch:
            if high - low > max_pitch - min_pitch:
                row[STATUS] = OUT_OF_RANGE
                continue
            if low < min_pitch:
                shift = 12 * math.ceil((min_pitch - low) / 12)
            else:
                shift = -12 * math.ceil((high - max_pitch) / 12)
            if low + shift < min_pitch or high + shift > max_pitch:
                row[STATUS] = OUT_OF_RANGE
                continue
        row[SHIFT] = shift
        loud = np.sort(velocities[lo:hi])
        middle = loud.size // 2
        row[VELOCITY] = loud[middle] if loud.size % 2 else int((loud[middle - 1] + loud[middle]) / 2)
        row[EVENTS_AT] = total
        total += end - start
    events = np.full(total, NO_EVENT, np.int16)
    for p in range(parts):
        row = table[p]
        if row[STATUS] != KEPT:
            continue
        lo, start, steps, at = bounds[p], row[START], row[END] - row[START], row[EVENTS_AT]
        hi = lo + counts[p]
        for i in range(lo, hi):
            if starts[i] - start < steps:
                events[at + starts[i] - start] = pitches[i] + row[SHIFT]
        for i in range(lo, hi):
            off = min(ends[i], row[END]) - start
            following = starts[i + 1] - start if i + 1 < hi else steps
            if starts[i] - start < steps and off < following and off < steps:
                events[at + off] = NOTE_OFF
    return table, events


@jit
def bar_lines(meter_steps: np.ndarray, bar_lengths: np.ndarray, end_step: int) -> np.ndarray:
    """Bar-line steps up to `end_step` and the first at or past it, int64, rising (see `extraction._bar_starts`).

    Args:
        meter_steps: int64, where each meter starts (rising, the first at 0); bar_lengths: float64, its steps per
            bar. A meter's bar lines are its start plus whole bars, rounded half to even, before the next meter.
    """
    counts = np.zeros(meter_steps.size, np.int64)
    for i in range(meter_steps.size):
        meter_end = meter_steps[i + 1] if i + 1 < meter_steps.size else np.inf
        # one past the end, and one for rounding
        counts[i] = max(0, math.ceil((min(meter_end, end_step) - meter_steps[i]) / bar_lengths[i])) + 2
    starts = np.empty(counts.sum(), np.int64)
    found = 0
    for i in range(meter_steps.size):
        meter_end = meter_steps[i + 1] if i + 1 < meter_steps.size else np.inf
        passed = False
        for k in range(counts[i]):
            line = np.int64(np.rint(meter_steps[i] + k * bar_lengths[i]))
            if line >= meter_end or (line >= end_step and passed):
                continue  # past the meter, or past the first bar line at or past the end
            passed = passed or line >= end_step
            starts[found] = line
            found += 1
    if not found:
        return np.zeros(1, np.int64)
    starts = starts[:found]
    for i in range(1, found):  # meters out of order (never from a read score): sort, each bar line once
        if starts[i] <= starts[i - 1]:
            return _sorted_distinct(starts)
    return starts


@jit
def _sorted_distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of a short int64 array, rising (insertion sort: compiles in a fraction of np.sort)."""
    out = values.copy()
    for i in range(1, out.size):
        value, j = out[i], i
        while j and out[j - 1] > value:
            out[j] = out[j - 1]
            j -= 1
        out[j] = value
    keep = np.ones(out.size, np.bool_)
    for i in range(1, out.size):
        keep[i] = out[i] != out[i - 1]
    return out[keep]
