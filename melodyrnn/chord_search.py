"""The numeric half of chord recognition (`melodyrnn.chords`), which knows no chord, compiled (`melodyrnn.compiled`).

Start at `batch_frames`: the notes of many scores → per beat (`frame_bounds`), how long each pitch class sounds and
is the lowest sounding, the beats that repeat the one before merged into runs and the runs' distinct rows. Then
`best_paths`, the smoothing that picks each score's best sequence of states under a cost per change.
"""

from __future__ import annotations

import math

import numpy as np

from melodyrnn.compiled import jit

#: Samples per quarter note at which the accompaniment's sounding notes are read (sixteenths).
SAMPLES_PER_QUARTER = 4
# Samples marked one by one per sample (and note) past which sweeping the samples once is cheaper.
_MARKS_PER_SAMPLE = 8


@jit
def frame_bounds(
    ts_starts: np.ndarray, numerators: np.ndarray, denominators: np.ndarray, end_quarters: float
) -> np.ndarray:
    """Frame boundaries in quarter notes, float64 (frames + 1,), from the first time signature to past
    `end_quarters`: one frame per beat (compound meters beat in dotted quarters), beats shorter than a quarter
    grouped so a frame lasts about one quarter.

    Args:
        ts_starts: float64 (signatures,), where each time signature starts, in quarter notes, sorted.
        numerators: int64 (signatures,).
        denominators: int64 (signatures,).
        end_quarters: where the music ends.
    """
    count = len(ts_starts)
    beats = np.empty(count)
    frames = np.zeros(count, np.int64)
    total = 0
    for i in range(count):
        seg_end = min(ts_starts[i + 1] if i + 1 < count else math.inf, end_quarters)
        beat = 1.5 if denominators[i] == 8 and numerators[i] % 3 == 0 else 4.0 / denominators[i]
        if beat < 0.75:
            beat *= math.ceil(0.75 / beat)
        beats[i] = beat
        if seg_end > ts_starts[i]:
            frames[i] = max(0, math.ceil((seg_end - ts_starts[i]) / beat - 1e-9))
            total += frames[i]
    bounds = np.zeros(max(total, 1) + 1)  # no frame at all: one from 0
    k = 0
    for i in range(count):
        for j in range(frames[i]):
            bounds[k] = ts_starts[i] + j * beats[i]
            k += 1
    bounds[-1] = max(end_quarters, bounds[-2] + 1e-6)
    return bounds


@jit
def _samples(quarters: np.ndarray, num_samples: int) -> np.ndarray:
    """The first sample whose centre ((k + 0.5) / SAMPLES_PER_QUARTER) lies at or after each of `quarters`,
    int64, clipped to [0, num_samples]."""
    out = np.empty(len(quarters), np.int64)
    for i in range(len(quarters)):
        out[i] = min(max(np.ceil(quarters[i] * SAMPLES_PER_QUARTER - 0.5), 0.0), num_samples)
    return out


@jit
def _find(free: np.ndarray, sample: int) -> int:
    """The first sample at or after `sample` with no lowest pitch yet (union-find with path compression)."""
    root = sample
    while free[root] != root:
        root = free[root]
    while free[sample] != root:
        after = free[sample]
        free[sample] = root
        sample = after
    return root


@jit
def _lowest_pitches(pitches: np.ndarray, first: np.ndarray, last: np.ndarray, num_samples: int) -> np.ndarray:
    """The lowest pitch sounding at each sample, int64 (samples,), 128 where none (pitches of 128 or more never
    count). Notes go lowest first, each claiming the samples of its span not claimed yet: each sample is written
    once, so long notes by the thousand cost no more than short ones."""
    lowest = np.full(num_samples, 128, np.int64)
    free = np.arange(num_samples + 1)  # num_samples: past the end
    for i in range(len(pitches)):  # below MIDI's range (notes made by hand): note by note, lowest of all
        for sample in range(first[i], last[i] if pitches[i] < 0 else first[i]):
            lowest[sample] = min(lowest[sample], pitches[i])
            free[sample] = sample + 1
    by_pitch = np.zeros(129, np.int64)  # MIDI's pitches in order, by a counting sort
    for p in pitches:
        if 0 <= p < 128:
            by_pitch[p + 1] += 1
    for p in range(128):
        by_pitch[p + 1] += by_pitch[p]
    order = np.empty(by_pitch[128], np.int64)
    for i in range(len(pitches)):
        if 0 <= pitches[i] < 128:
            order[by_pitch[pitches[i]]] = i
            by_pitch[pitches[i]] += 1
    for i in order:
        sample = _find(free, first[i])
        while sample < last[i]:
            lowest[sample] = pitches[i]
            free[sample] = sample + 1
            sample = _find(free, sample + 1)
    return lowest


@jit
def _running_counts(changes: np.ndarray, lowest: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Per sample of `cuts` (int64, ascending), in how many samples before it each pitch class sounds (columns
    0-11) and is the lowest sounding (12-23): int64 (cuts, 24). `changes` (samples + 1, 12) counts the notes of
    each pitch class starting minus those ending at each sample; `lowest` is `_lowest_pitches`'."""
    out = np.empty((len(cuts), 24), np.int64)
    sounding = np.zeros(12, np.int64)
    running = np.zeros(24, np.int64)
    sample = 0
    for k in range(len(cuts)):
        while sample < cuts[k]:
            for pc in range(12):
                sounding[pc] += changes[sample, pc]
                running[pc] += sounding[pc] > 0
            if lowest[sample] < 128:
                running[12 + lowest[sample] % 12] += 1
            sample += 1
        for column in range(24):
            out[k, column] = running[column]
    return out


@jit
def _marked_counts(
    pitches: np.ndarray, first: np.ndarray, last: np.ndarray, cuts: np.ndarray, num_samples: int
) -> np.ndarray:
    """`_frame_counts` by marking every sample of every note: the quickest where notes are short (work in
    proportion to the notes' total length in samples).

    Args:
        pitches: int64 (notes,).
        first: int64 (notes,), each note's first sample.
        last: int64 (notes,), the sample after its last.
        cuts: int64 (frames + 1,), ascending: frame f is samples cuts[f]:cuts[f + 1].
        num_samples: samples in all.
    """
    sounding = np.zeros(num_samples, np.int32)  # a bit per pitch class
    lowest = np.full(num_samples, 128, np.int64)
    for i in range(len(pitches)):
        bit, pitch = 1 << (pitches[i] % 12), pitches[i]
        for sample in range(first[i], last[i]):
            sounding[sample] |= bit
            if pitch < lowest[sample]:  # not min(): numba's costs a third of this loop's time
                lowest[sample] = pitch
    frames = np.zeros((len(cuts) - 1, 24), np.int64)
    for f in range(len(frames)):
        row = frames[f]
        for sample in range(cuts[f], cuts[f + 1]):
            for pc in range(12):
                row[pc] += (sounding[sample] >> pc) & 1
            if lowest[sample] < 128:
                row[12 + lowest[sample] % 12] += 1
    return frames


@jit
def _swept_counts(
    pitches: np.ndarray, first: np.ndarray, last: np.ndarray, cuts: np.ndarray, num_samples: int
) -> np.ndarray:
    """`_frame_counts` by one sweep over the samples, whose work does not grow with the notes' lengths (long
    notes by the thousand), for `cuts` in any order."""
    ascending = True
    for k in range(1, len(cuts)):
        ascending &= cuts[k] >= cuts[k - 1]
    changes = np.zeros((num_samples + 1, 12), np.int32)
    for i in range(len(pitches)):
        if last[i] > first[i]:
            changes[first[i], pitches[i] % 12] += 1
            changes[last[i], pitches[i] % 12] -= 1
    lowest = _lowest_pitches(pitches, first, last, num_samples)
    if ascending:
        before = _running_counts(changes, lowest, cuts)
    else:  # time signatures out of order: the counts before every sample, then those before each cut
        every = _running_counts(changes, lowest, np.arange(num_samples + 1))
        before = np.empty((len(cuts), 24), np.int64)
        for k in range(len(cuts)):
            for column in range(24):
                before[k, column] = every[cuts[k], column]
    frames = np.empty((len(cuts) - 1, 24), np.int64)
    for f in range(len(frames)):
        for column in range(24):
            frames[f, column] = before[f + 1, column] - before[f, column]
    return frames


@jit
def _frame_counts(pitches: np.ndarray, starts: np.ndarray, ends: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Per frame, in how many samples each pitch class sounds (columns 0-11) and is the lowest sounding (12-23):
    int64 (frames, 24). Frame f holds the samples whose centre lies in [bounds[f], bounds[f + 1])."""
    num_samples = max(1, math.ceil(bounds[-1] * SAMPLES_PER_QUARTER))
    first, last = _samples(starts, num_samples), _samples(ends, num_samples)
    cuts = _samples(bounds, num_samples)
    ascending, marks = True, 0
    for k in range(1, len(cuts)):
        ascending &= cuts[k] >= cuts[k - 1]
    for i in range(len(pitches)):
        marks += max(last[i] - first[i], 0)
    if ascending and marks <= _MARKS_PER_SAMPLE * (num_samples + len(pitches)):
        return _marked_counts(pitches, first, last, cuts, num_samples)
    return _swept_counts(pitches, first, last, cuts, num_samples)


@jit
def _distinct(frames: np.ndarray, firsts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows among the rows `firsts` of int64 `frames` (frames, width), by an open-addressing hash
    table: which of `frames`' rows they are, int64 (distinct,) in order of first appearance, and per entry of
    `firsts` the index of its row among them."""
    width = frames.shape[1]
    size = 1
    while size < 2 * len(firsts):
        size *= 2
    slots = np.full(size, -1, np.int64)
    inverse = np.empty(len(firsts), np.int64)
    distinct = np.empty(len(firsts), np.int64)
    found = 0
    for r in range(len(firsts)):
        row = firsts[r]
        digest = np.uint64(14695981039346656037)  # FNV-1a over the counts
        for c in range(width):
            digest = (digest ^ np.uint64(frames[row, c])) * np.uint64(1099511628211)
        slot = np.int64(digest & np.uint64(size - 1))
        while True:
            held = slots[slot]
            if held < 0:
                slots[slot], distinct[found], inverse[r] = found, row, found
                found += 1
                break
            same = True
            for c in range(width):
                same &= frames[distinct[held], c] == frames[row, c]
            if same:
                inverse[r] = held
                break
            slot = (slot + 1) & (size - 1)
    return distinct[:found], inverse


@jit
def _reserve(buffer: np.ndarray, size: int) -> np.ndarray:
    """`buffer` (n, width) if it has `size` rows or more, else a copy of it with room for twice as many."""
    if len(buffer) >= size:
        return buffer
    grown = np.empty((max(size, 2 * len(buffer)), buffer.shape[1]), buffer.dtype)
    for i in range(len(buffer)):
        for j in range(buffer.shape[1]):
            grown[i, j] = buffer[i, j]
    return grown


@jit
def _meters(signatures: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`frame_bounds`' three arguments from rows lo:hi of `signatures` (float64 (signatures, 3))."""
    starts, numerators, denominators = np.empty(hi - lo), np.empty(hi - lo, np.int64), np.empty(hi - lo, np.int64)
    for i in range(lo, hi):
        starts[i - lo], numerators[i - lo], denominators[i - lo] = signatures[i, 0], signatures[i, 1], signatures[i, 2]
    return starts, numerators, denominators


@jit
def _runs(frames: np.ndarray) -> np.ndarray:
    """The first frame of each run of frames equal to the one before (int64 (runs,)) of int64 `frames`."""
    firsts = np.empty(len(frames), np.int64)
    count = 0
    for f in range(len(frames)):
        new_run = f == 0
        for c in range(frames.shape[1]):
            new_run |= frames[f, c] != frames[f - 1, c]
        if new_run:
            firsts[count] = f
            count += 1
    return firsts[:count]


@jit
def batch_frames(
    pitches: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    note_offsets: np.ndarray,
    signatures: np.ndarray,
    signature_offsets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Many scores' notes per beat, the beats that repeat the beat before (a chord struck on every beat) merged
    into runs, and the distinct rows of each score's runs (a song repeats a few voicings all through).

    Args:
        pitches: int64 (notes,), the notes of all scores, score after score.
        starts: float64 (notes,), in quarter notes.
        ends: float64 (notes,), in quarter notes.
        note_offsets: int64 (scores + 1,): score i's notes are ``note_offsets[i]:note_offsets[i + 1]``.
        signatures: float64 (signatures, 3): each score's ``(quarters, numerator, denominator)`` time signatures.
        signature_offsets: int64 (scores + 1,), as `note_offsets` for `signatures`.

    Returns:
        ``(bounds, runs, rows, ends, offsets)``: the frame bounds of each score (float64, `frame_bounds`, to its
        notes' last end); run by run (int64 (runs, 3)) its first frame (within its score), how many frames it
        spans and the index of its row among all scores' distinct rows; those rows (int64 (rows, 24): in how many
        samples of a frame each pitch class sounds, then is the lowest sounding); where each score's last note
        ends (float64 (scores,), 0 without notes); and each score's slices of bounds, runs and rows (int64 (3,
        scores + 1), as `note_offsets`). A score without notes has no frames and no runs.
    """
    scores = len(note_offsets) - 1
    offsets = np.zeros((3, scores + 1), np.int64)  # bounds, runs, rows
    last_ends = np.zeros(scores)
    all_bounds, runs, rows = np.empty((0, 1)), np.empty((0, 3), np.int64), np.empty((0, 24), np.int64)
    for s in range(scores):
        lo, hi = note_offsets[s], note_offsets[s + 1]
        for k in range(3):
            offsets[k, s + 1] = offsets[k, s]
        if hi == lo:
            continue
        last_ends[s] = ends[lo]
        for i in range(lo + 1, hi):
            last_ends[s] = max(last_ends[s], ends[i])
        meter_starts, numerators, denominators = _meters(signatures, signature_offsets[s], signature_offsets[s + 1])
        bounds = frame_bounds(meter_starts, numerators, denominators, last_ends[s])
        frames = _frame_counts(pitches[lo:hi], starts[lo:hi], ends[lo:hi], bounds)
        firsts = _runs(frames)
        distinct, inverse = _distinct(frames, firsts)
        all_bounds = _reserve(all_bounds, offsets[0, s] + len(bounds))
        runs = _reserve(runs, offsets[1, s] + len(firsts))
        rows = _reserve(rows, offsets[2, s] + len(distinct))
        for f in range(len(bounds)):
            all_bounds[offsets[0, s] + f, 0] = bounds[f]
        for r in range(len(firsts)):
            at = offsets[1, s] + r
            runs[at, 0], runs[at, 2] = firsts[r], offsets[2, s] + inverse[r]
            runs[at, 1] = (firsts[r + 1] if r + 1 < len(firsts) else len(frames)) - firsts[r]
        for d in range(len(distinct)):
            for c in range(24):
                rows[offsets[2, s] + d, c] = frames[distinct[d], c]
        offsets[0, s + 1] += len(bounds)
        offsets[1, s + 1] += len(firsts)
        offsets[2, s + 1] += len(distinct)
    return (
        all_bounds[: offsets[0, -1], 0].copy(), runs[: offsets[1, -1]], rows[: offsets[2, -1]], last_ends, offsets
    )  # fmt: skip


@jit
def best_paths(
    scores: np.ndarray, runs: np.ndarray, run_offsets: np.ndarray, active: np.ndarray, penalty: float
) -> np.ndarray:
    """Per sequence, the state path maximising the summed scores minus `penalty` per change (Viterbi).

    Args:
        scores: float64 (rows, states): how well each state fits each distinct row.
        runs: int64 (runs, 3), as `batch_frames` gives them: column 1 is how many frames each run spans (its
            scores count that many times), column 2 its row of `scores`.
        run_offsets: int64 (sequences + 1,): sequence i is runs ``run_offsets[i]:run_offsets[i + 1]``.
        active: bool (sequences,): the sequences to smooth; the others' paths are left at 0.
        penalty: the cost of a change, in units of scores.

    Returns:
        int64 (runs,): the state of each run on its sequence's best path (the first state where totals tie).
    """
    states = scores.shape[1]
    path = np.zeros(len(runs), np.int64)
    total = np.empty(states)
    for q in range(len(run_offsets) - 1):
        lo, hi = run_offsets[q], run_offsets[q + 1]
        if hi <= lo or not active[q]:
            continue
        stay = np.empty((hi - lo, states), np.bool_)  # whether the best path into (run, state) stays in it
        best = np.zeros(hi - lo, np.int64)  # the best state before each run: where a change comes from
        weight = float(runs[lo, 1])
        for j in range(states):
            total[j] = scores[runs[lo, 2], j] * weight
        for t in range(1, hi - lo):
            best[t] = b = _first_max(total)
            switch = total[b] - penalty
            row, weight, stays = scores[runs[lo + t, 2]], float(runs[lo + t, 1]), stay[t]
            for j in range(states):  # no branch: this loop runs in vector registers
                stays[j] = total[j] >= switch
                total[j] = max(total[j], switch) + row[j] * weight
        state = _first_max(total)
        path[hi - 1] = state
        for t in range(hi - lo - 1, 0, -1):
            if not stay[t, state]:
                state = best[t]
            path[lo + t - 1] = state
    return path


@jit
def _first_max(values: np.ndarray) -> int:
    """The index of the largest of float64 `values`, the first where several tie (as np.argmax, cheaper here)."""
    best = 0
    for j in range(1, len(values)):
        if values[j] > values[best]:
            best = j
    return best
