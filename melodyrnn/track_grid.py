"""The numbers `tracks.track_features` weighs, read from a song's pitched tracks by compiled loops.

Start at `grid_features`: the notes of all pitched tracks, concatenated, → one row of `FEATURES` per track. It
makes one pass over the notes onto the feature grid, one over the grid's steps, one over each track's onsets, and
one over the tracks' onsets against the other tracks' silences; each value is the same float, from the same
operations in the same order, as the numpy passes it replaces. `overlap_share` is the grid for two tracks.
"""

from __future__ import annotations

import numpy as np

from melodyrnn.compiled import jit

#: The grid onsets are read on, in steps per quarter note: fine enough that triplets and ornaments of a single
#: line never land on one step (which would read as chords).
ONSET_STEPS_PER_QUARTER = 12
#: The grid of what sounds when (register, polyphony, harmony), sampled at each step's middle so that a legato
#: overlap shorter than half a step does not read as two notes at once.
GRID_STEPS_PER_QUARTER = 4
# Patterns (riffs, broken chords) show within a few hundred notes; longer lines are only read that far for them.
_PATTERN_NOTES = 1024

#: The columns of `grid_features`, in the order `track_features` lists them (its name and program features go
#: between "slow" and "fills_rests"). What each means is said by `tracks._WEIGHTS`.
FEATURES = (
    "chord_onsets",
    "stepwise",
    "repeated",
    "rhythm_variety",
    "periodic",
    "contour_periodic",
    "sounding_polyphony",
    "on_top",
    "at_bottom",
    "sparse",
    "chord_tones",
    "slow",
    "fills_rests",
    "busiest_line",
)
_COLUMNS = len(FEATURES)
# Their column numbers, as the compiled code needs them.
(_CHORD_ONSETS, _STEPWISE, _REPEATED, _RHYTHM_VARIETY, _PERIODIC, _CONTOUR_PERIODIC, _SOUNDING_POLYPHONY) = range(7)
(_ON_TOP_SHARE, _AT_BOTTOM_SHARE, _SPARSE, _CHORD_TONES, _SLOW, _FILLS_RESTS, _BUSIEST_LINE) = range(7, _COLUMNS)
# Per-track counts `_step_counts` and `_note_counts` gather, as columns of one int array.
_MINE, _POLYPHONIC, _BUSY, _ON_TOP, _AT_BOTTOM, _WITH_OTHERS, _CONSONANT, _ONSETS = range(8)


def grid_features(
    pitches: np.ndarray, start_quarters: np.ndarray, end_quarters: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """Each pitched track's features but its name and program.

    Args:
        pitches: (notes,) int64, every track's notes one track after another, each track's sorted by start.
        start_quarters: (notes,) float64, in quarter notes.
        end_quarters: (notes,) float64, in quarter notes.
        offsets: (tracks + 1,) int64, where each track's notes begin in those arrays, and their total last.

    Returns:
        (tracks, len(FEATURES)) float64, one row per track, columns in `FEATURES` order.
    """
    values, shares, bounds = _grid_features(pitches, start_quarters, end_quarters, offsets)
    # The entropy's logarithms come from numpy, whose log2 is not the C library's to the last bit.
    _add_rhythm_variety(values, shares, np.log2(shares), bounds)
    return values


@jit
def overlap_share(pitches: np.ndarray, start_quarters: np.ndarray, end_quarters: np.ndarray, split: int) -> float:
    """The share of the first track's sounding steps (notes [0, split)) in which the second (the rest) sounds."""
    offsets = np.empty(3, np.int64)
    offsets[0], offsets[1], offsets[2] = 0, split, pitches.size
    first, stop, _, end = _note_steps(start_quarters, end_quarters)
    _, _, count, _ = _fill_grid(pitches, first, stop, offsets, end)
    mine = both = 0
    for k in range(end):
        if count[0, k] > 0:
            mine += 1
            both += count[1, k] > 0
    return both / max(1, mine)


@jit
def _grid_features(
    pitches: np.ndarray, start_quarters: np.ndarray, end_quarters: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`grid_features` without the rhythm entropy: the values, and per track the shares of its onset gaps
    (flat, track t's from bounds[t] to bounds[t + 1]) for the entropy."""
    tracks = offsets.size - 1
    first, stop, fine, end = _note_steps(start_quarters, end_quarters)
    top, bottom, count, classes = _fill_grid(pitches, first, stop, offsets, end)
    counts = np.empty((tracks, 8), np.int64)  # every column is written
    summary = _step_summary(top, bottom, classes)
    piece_steps = _step_counts(top, bottom, count, summary, counts)
    _note_counts(pitches, first, fine, offsets, top, classes, summary, counts)
    values = np.empty((tracks, _COLUMNS), np.float64)  # every column is written
    shares = np.empty(pitches.size, np.float64)
    bounds = np.empty(tracks + 1, np.int64)
    bounds[0] = 0
    for t in range(tracks):
        lo, hi = offsets[t], offsets[t + 1]
        bounds[t + 1] = bounds[t] + _line_features(pitches[lo:hi], fine[lo:hi], values[t], shares[bounds[t] :])
        mine = counts[t, _MINE]
        values[t, _SOUNDING_POLYPHONY] = counts[t, _POLYPHONIC] / max(1, mine)
        busy = counts[t, _BUSY]
        values[t, _ON_TOP_SHARE] = counts[t, _ON_TOP] / busy if busy else 1.0
        values[t, _AT_BOTTOM_SHARE] = counts[t, _AT_BOTTOM] / busy if busy else 0.0
        values[t, _SPARSE] = max(0.0, 0.25 - mine / piece_steps) / 0.25
        heard = counts[t, _WITH_OTHERS]
        consonant = counts[t, _CONSONANT] / heard if heard else 0.0
        values[t, _CHORD_TONES] = max(0.0, consonant - 0.8) / 0.2
        slow = counts[t, _ONSETS] / max(1, mine) * GRID_STEPS_PER_QUARTER < 0.5  # under one onset per 2 quarters
        values[t, _SLOW] = 1.0 if slow else 0.0
    _against_lines(first, offsets, count, counts[:, _ONSETS], values)
    return values, shares[: bounds[tracks]], bounds


@jit
def _note_steps(start_quarters: np.ndarray, end_quarters: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per note its first and past-last step on the feature grid, its onset on the fine onset grid; and the
    grid's length in steps (past the last note's end)."""
    n = start_quarters.size
    last = end_quarters[0] if n else 0.0
    for i in range(1, n):
        last = max(last, end_quarters[i])
    end = int(np.ceil(last * GRID_STEPS_PER_QUARTER)) + 2
    first = np.empty(n, np.int64)
    stop = np.empty(n, np.int64)
    fine = np.empty(n, np.int64)
    for i in range(n):
        # Step k sounds a note that covers its middle, (k + 0.5) / GRID; every note keeps at least its first.
        step = min(max(int(np.ceil(start_quarters[i] * GRID_STEPS_PER_QUARTER - 0.5)), 0), end - 2)
        first[i] = step
        stop[i] = max(int(np.ceil(end_quarters[i] * GRID_STEPS_PER_QUARTER - 0.5)), step + 1)
        fine[i] = int(np.rint(start_quarters[i] * ONSET_STEPS_PER_QUARTER))
    return first, stop, fine, end


@jit
def _fill_grid(
    pitches: np.ndarray, first: np.ndarray, stop: np.ndarray, offsets: np.ndarray, end: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per track and step (arrays (tracks, steps) int16): the highest and lowest sounding pitch (-1 and 128 where
    silent), how many notes sound and which pitch classes sound (bit c for class c)."""
    tracks = offsets.size - 1
    # One allocation, filled by a loop: each numpy constructor numba meets costs a tenth of a second to compile.
    grid = np.empty((4, tracks, end), np.int16)
    top, bottom, count, classes = grid[0], grid[1], grid[2], grid[3]
    for t in range(tracks):
        for k in range(end):
            top[t, k], bottom[t, k], count[t, k], classes[t, k] = -1, 128, 0, 0
    for t in range(tracks):
        top_t, bottom_t, count_t, classes_t = top[t], bottom[t], count[t], classes[t]
        for i in range(offsets[t], offsets[t + 1]):
            pitch = np.int16(pitches[i])
            bit = np.int16(1 << (pitch % 12))
            # Unsigned steps (never negative here) spare each access numba's check for a negative index.
            for k in range(np.uint64(first[i]), np.uint64(stop[i])):
                top_t[k] = max(top_t[k], pitch)
                bottom_t[k] = min(bottom_t[k], pitch)
                count_t[k] += 1
                classes_t[k] |= bit
    return top, bottom, count, classes


@jit
def _step_summary(top: np.ndarray, bottom: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Per step, over all tracks: the highest pitch and the runner-up (equal to it where two tracks share it),
    the lowest and its runner-up, the classes one track sounds or more, those two tracks or more sound. Returns
    (7, steps) int16 (the classes as their 12 bits), in that order, and a last row `_step_counts` fills; the
    runners-up are -1 and 128 where fewer than two tracks sound.

    A track's highest pitch among the others is the runner-up where it holds the highest itself, else the
    highest; likewise for the lowest."""
    tracks, end = top.shape
    summary = np.empty((7, end), np.int16)
    high, high2, low, low2, once, twice = summary[0], summary[1], summary[2], summary[3], summary[4], summary[5]
    for k in range(end):
        high[k], high2[k], low[k], low2[k], once[k], twice[k], summary[6, k] = -1, -1, 128, 128, 0, 0, 0
    for t in range(tracks):
        for k in range(end):
            pitch = top[t, k]
            high2[k] = max(high2[k], min(high[k], pitch))
            high[k] = max(high[k], pitch)
            pitch = bottom[t, k]
            low2[k] = min(low2[k], max(low[k], pitch))
            low[k] = min(low[k], pitch)
            sounded = classes[t, k]
            twice[k] |= once[k] & sounded
            once[k] |= sounded
    return summary


@jit
def _step_counts(
    top: np.ndarray, bottom: np.ndarray, count: np.ndarray, summary: np.ndarray, counts: np.ndarray
) -> int:
    """Counts, per track (into `counts`), its sounding steps, those with two notes or more, those another track
    sounds in too, and of these the steps it is the highest and the lowest track. Returns the number of steps
    any track sounds in (at least 1)."""
    tracks, end = top.shape
    high, high2, low, low2 = summary[0], summary[1], summary[2], summary[3]
    sounding = summary[6]  # whether any track sounds
    for t in range(tracks):
        mine = polyphonic = busy = on_top = at_bottom = 0
        for k in range(end):
            above = high2[k] if top[t, k] == high[k] else high[k]
            below = low2[k] if bottom[t, k] == low[k] else low[k]
            sounds = count[t, k] > 0
            sounding[k] |= sounds
            shared = sounds & (above >= 0)
            mine += sounds
            polyphonic += count[t, k] >= 2
            busy += shared
            on_top += shared & (top[t, k] >= above)
            at_bottom += shared & (bottom[t, k] <= below)
        counts[t, _MINE], counts[t, _POLYPHONIC], counts[t, _BUSY] = mine, polyphonic, busy
        counts[t, _ON_TOP], counts[t, _AT_BOTTOM] = on_top, at_bottom
    piece_steps = 0
    for k in range(end):
        piece_steps += sounding[k]
    return max(1, piece_steps)


@jit
def _note_counts(
    pitches: np.ndarray,
    first: np.ndarray,
    fine: np.ndarray,
    offsets: np.ndarray,
    top: np.ndarray,
    classes: np.ndarray,
    summary: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Counts, per track (into `counts`), its notes struck while another track sounds, those of them whose pitch
    class another track sounds, and its distinct onsets (where the fine onset changes from note to note)."""
    high, high2, once, twice = summary[0], summary[1], summary[4], summary[5]
    for t in range(offsets.size - 1):
        top_t, classes_t = top[t], classes[t]
        onsets = with_others = consonant = 0
        for i in range(offsets[t], offsets[t + 1]):
            at = np.uint64(first[i])
            onsets += i == offsets[t] or fine[i] != fine[i - 1]
            shared = (high2[at] if top_t[at] == high[at] else high[at]) >= 0
            with_others += shared
            # An accompaniment line plays the harmony the other tracks sound; a tune adds passing notes. Another
            # track sounds the class where one more track than this one does.
            pitch_class = pitches[i] % 12
            others = twice[at] if (classes_t[at] >> pitch_class) & 1 else once[at]
            consonant += shared & ((others >> pitch_class) & 1)
        counts[t, _ONSETS], counts[t, _WITH_OTHERS], counts[t, _CONSONANT] = onsets, with_others, consonant


@jit
def _line_features(pitches: np.ndarray, onset_steps: np.ndarray, row: np.ndarray, shares: np.ndarray) -> int:
    """Features of a track's top line (`pitches` and `onset_steps`, int64, one per note, in track order: sorted
    by onset unless the track was made by hand): chord strikes, stepwise motion, repeats and patterns into `row`;
    the shares of its onset gaps, ordered by the gap, into `shares`. Returns how many shares."""
    n = onset_steps.size
    # The highest note struck at each distinct onset, and how many onsets strike two notes or more.
    steps = np.empty(n, np.int64)
    line = np.empty(n, np.int64)
    onsets = chords = size = 0
    for i in range(n):
        step = onset_steps[i]
        if i and step == steps[onsets - 1]:
            line[onsets - 1] = max(line[onsets - 1], pitches[i])
            size += 1
            chords += size == 2
            continue
        if i and step < steps[onsets - 1]:  # notes out of order (a hand-made track)
            onsets, chords = _unordered_line(pitches, onset_steps, steps, line)
            break
        steps[onsets], line[onsets] = step, pitches[i]
        onsets += 1
        size = 1
    line = line[:onsets]
    row[_CHORD_ONSETS] = chords / onsets if onsets else 0.0
    # Loops, not array expressions: numba takes a quarter of a second to compile each of those.
    moves = np.empty(max(0, onsets - 1), np.int64)
    signs = np.empty(moves.size, np.int64)
    moved = stepped = 0
    for j in range(moves.size):
        move = moves[j] = line[j + 1] - line[j]
        signs[j] = 1 if move > 0 else -1 if move < 0 else 0
        moved += move != 0
        stepped += 1 <= abs(move) <= 2
    row[_STEPWISE] = stepped / max(1, moved) if moves.size else 0.0
    repeated = (moves.size - moved) / moves.size if moves.size else 1.0
    row[_REPEATED] = max(0.0, repeated - 0.4) / 0.6
    # A riff or broken chord repeats a short pattern, often moved to each chord's root: equal pitches or equal
    # moves at a lag of 2-8 notes.
    head = line[:_PATTERN_NOTES]
    head_moves = moves[: max(0, head.size - 1)]
    row[_PERIODIC] = max(0.0, max(_best_repeat(head), _best_repeat(head_moves)) - 0.5) / 0.5
    row[_CONTOUR_PERIODIC] = max(0.0, _best_repeat(signs[: head_moves.size]) - 0.7) / 0.3
    return _gap_shares(steps[:onsets], shares)


@jit
def _unordered_line(
    pitches: np.ndarray, onset_steps: np.ndarray, steps: np.ndarray, line: np.ndarray
) -> tuple[int, int]:
    """`_line_features`' distinct onsets (into `steps`, increasing) and line (into `line`) for notes out of order:
    each onset's line note is the highest from its first note in track order to the next onset's first (at
    least that note). Returns the number of onsets and of those whose span holds two notes or more."""
    n = onset_steps.size
    order = _stable_order(onset_steps)
    firsts = np.empty(n, np.int64)
    onsets = 0
    for j in range(n):
        if j == 0 or onset_steps[order[j]] != onset_steps[order[j - 1]]:
            firsts[onsets], steps[onsets] = order[j], onset_steps[order[j]]
            onsets += 1
    chords = 0
    for j in range(onsets):
        lo, hi = firsts[j], firsts[j + 1] if j + 1 < onsets else n
        chords += hi - lo >= 2
        line[j] = pitches[lo]
        for i in range(lo + 1, hi):
            line[j] = max(line[j], pitches[i])
    return onsets, chords


@jit
def _gap_shares(steps: np.ndarray, shares: np.ndarray) -> int:
    """Writes into `shares` how often each gap between consecutive `steps` (increasing) occurs, over all gaps, in
    the order of the gaps; returns how many distinct gaps."""
    if steps.size < 2:
        return 0
    gaps = np.empty(steps.size - 1, np.int64)
    for j in range(gaps.size):
        gaps[j] = steps[j + 1] - steps[j]
    least = most = gaps[0]
    for gap in gaps:
        least, most = min(least, gap), max(most, gap)
    written = 0
    if most - least <= 4 * gaps.size + 64:  # the usual few gap lengths: counted in place, no sort
        tally = np.empty(most - least + 1, np.int64)
        for j in range(tally.size):
            tally[j] = 0
        for gap in gaps:
            tally[gap - least] += 1
        for times in tally:
            if times:
                shares[written] = times / gaps.size
                written += 1
        return written
    order = _stable_order(gaps)
    run = 0
    for j in range(gaps.size):
        run += 1
        if j + 1 == gaps.size or gaps[order[j + 1]] != gaps[order[j]]:
            shares[written] = run / gaps.size
            written += 1
            run = 0
    return written


@jit
def _stable_order(keys: np.ndarray) -> np.ndarray:
    """The indices that sort `keys` (int64), equal keys in index order: a merge sort, written out because numba's
    own sorts take seconds to compile."""
    n = keys.size
    order = np.empty(n, np.int64)
    for i in range(n):
        order[i] = i
    spare = np.empty(n, np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            i, j = lo, mid
            for k in range(lo, hi):
                if i < mid and (j >= hi or keys[order[i]] <= keys[order[j]]):
                    spare[k] = order[i]
                    i += 1
                else:
                    spare[k] = order[j]
                    j += 1
        order, spare = spare, order
        width *= 2
    return order


@jit
def _best_repeat(seq: np.ndarray) -> float:
    """The largest share of elements equal to the one 2-8 places earlier (0 for short sequences)."""
    best = 0.0
    for lag in range(2, 9):
        if seq.size <= 2 * lag:  # too short for this lag, and for the longer ones
            break
        same = 0
        for i in range(lag, seq.size):
            same += seq[i] == seq[i - lag]
        best = max(best, same / (seq.size - lag))
    return best


@jit
def _against_lines(
    first: np.ndarray, offsets: np.ndarray, count: np.ndarray, onsets: np.ndarray, values: np.ndarray
) -> None:
    """Fills "fills_rests" (most of a track's onsets fall where a busier, mostly monophonic track is silent) and
    "busiest_line" (its onsets over those of the busiest mostly monophonic track)."""
    tracks = offsets.size - 1
    busiest = 1
    for other in range(tracks):
        if values[other, _CHORD_ONSETS] < 0.2:
            busiest = max(busiest, onsets[other])
    for t in range(tracks):
        values[t, _FILLS_RESTS] = 0.0
        values[t, _BUSIEST_LINE] = min(1.0, onsets[t] / busiest)
        for other in range(tracks):
            if other == t or values[other, _CHORD_ONSETS] >= 0.2 or onsets[other] <= onsets[t]:
                continue
            silent = 0
            for i in range(offsets[t], offsets[t + 1]):
                silent += count[other, first[i]] <= 0
            if silent / (offsets[t + 1] - offsets[t]) > 0.5:
                values[t, _FILLS_RESTS] = 1.0
                break


@jit
def _add_rhythm_variety(values: np.ndarray, shares: np.ndarray, logs: np.ndarray, bounds: np.ndarray) -> None:
    """Fills "rhythm_variety": the entropy of each track's onset gaps, in bits, capped at 2, over 2."""
    for t in range(bounds.size - 1):
        lo, hi = bounds[t], bounds[t + 1]
        entropy = -_pairwise_sum(shares[lo:hi], logs[lo:hi]) + 0.0 if hi > lo else 0.0  # + 0.0: no -0.0
        values[t, _RHYTHM_VARIETY] = min(entropy, 2.0) / 2.0


@jit
def _pairwise_sum(shares: np.ndarray, logs: np.ndarray) -> float:
    """`(shares * logs).sum()` as numpy adds float64: eight running sums per block of up to 128 terms, the
    block's halves (at a multiple of 8) summed apart above that."""
    n = shares.size
    if n > 128:
        half = n // 2 - n // 2 % 8
        return _pairwise_sum(shares[:half], logs[:half]) + _pairwise_sum(shares[half:], logs[half:])
    total = 0.0
    if n < 8:
        for i in range(n):
            total += shares[i] * logs[i]
        return total
    sums = np.empty(8, np.float64)
    for j in range(8):
        sums[j] = shares[j] * logs[j]
    whole = n - n % 8
    for i in range(8, whole, 8):
        for j in range(8):
            sums[j] += shares[i + j] * logs[i + j]
    total = ((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7]))
    for i in range(whole, n):
        total += shares[i] * logs[i]
    return total
