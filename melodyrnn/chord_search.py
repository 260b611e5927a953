"""The numeric half of chord recognition (`melodyrnn.chords`), which knows no chord: notes → which pitch classes
sound at each sample (`sample_profiles`), the beats frames are read in (`frame_starts`), and the smoothing that
picks the best sequence of states under a cost per change (`viterbi`, many sequences in lockstep).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Samples per quarter note at which the accompaniment's sounding notes are read (sixteenths).
SAMPLES_PER_QUARTER = 4
_CHUNK_SAMPLES = 8192  # samples the dense sweep reads at once: bounds memory on hour-long files
_MAX_PAIRS = 4_000_000  # (note, sample) pairs above which the dense sweep is cheaper


def frame_starts(time_signatures: Sequence[tuple[float, int, int]], end_quarters: float) -> np.ndarray:
    """Frame boundaries in quarter notes, float64, from 0 to past `end_quarters`: one frame per beat (compound
    meters beat in dotted quarters), beats shorter than a quarter grouped so a frame lasts about one quarter."""
    parts = []
    for i, (start, numerator, denominator) in enumerate(time_signatures):
        seg_end = min(time_signatures[i + 1][0] if i + 1 < len(time_signatures) else math.inf, end_quarters)
        if seg_end <= start:
            continue
        beat = 1.5 if denominator == 8 and numerator % 3 == 0 else 4.0 / denominator
        beat *= math.ceil(0.75 / beat) if beat < 0.75 else 1
        parts.append(start + np.arange(math.ceil((seg_end - start) / beat - 1e-9)) * beat)
    starts = np.concatenate(parts) if parts else np.zeros(1)
    return np.append(starts, max(end_quarters, starts[-1] + 1e-6))


def sample_profiles(pitches, starts, ends, num_samples: int) -> np.ndarray:
    """Per sample, which pitch classes sound (columns 0-11) and which is the lowest sounding (columns 12-23, all
    False where nothing sounds): bool, shape (samples, 24). Sample k sits at (k + 0.5) / SAMPLES_PER_QUARTER."""
    first = np.clip(np.ceil(starts * SAMPLES_PER_QUARTER - 0.5).astype(np.int64), 0, num_samples)
    last = np.clip(np.ceil(ends * SAMPLES_PER_QUARTER - 0.5).astype(np.int64), 0, num_samples)  # exclusive
    lengths = np.maximum(last - first, 0)
    if lengths.sum() > _MAX_PAIRS:  # long notes by the thousand: a dense sweep bounds the work by the samples
        return _dense_profiles(pitches, first, last, num_samples)
    note = np.repeat(np.arange(pitches.size), lengths)
    sample = np.repeat(first - np.cumsum(lengths) + lengths, lengths) + np.arange(note.size)
    sounding = pitches[note]
    profiles = np.zeros((num_samples, 24), bool)
    flat = profiles.reshape(-1)  # one flat index: cheaper than two
    flat[sample * 24 + sounding % 12] = True
    lowest = np.full(num_samples, 128, np.int64)
    np.minimum.at(lowest, sample, sounding)
    rows = np.flatnonzero(lowest < 128)
    flat[rows * 24 + 12 + lowest[rows] % 12] = True
    return profiles


def _dense_profiles(pitches, first, last, num_samples: int) -> np.ndarray:
    """`sample_profiles` by a sweep over (samples, 128) in chunks, for notes given as sample ranges."""
    profiles = np.zeros((num_samples, 24), bool)
    order = np.argsort(first, kind="stable")
    first, last, pitches = first[order], last[order], pitches[order]
    open_until = np.maximum.accumulate(last) if last.size else last
    for lo in range(0, num_samples, _CHUNK_SAMPLES):
        hi = min(lo + _CHUNK_SAMPLES, num_samples)
        # notes sorted by first sample; those still sounding at lo start at or after the first whose run reaches lo
        a = int(np.searchsorted(open_until, lo, side="right"))
        b = int(np.searchsorted(first, hi, side="left"))
        f = np.clip(first[a:b] - lo, 0, hi - lo)
        e = np.clip(last[a:b] - lo, 0, hi - lo)
        keep = e > f
        counts = np.zeros((hi - lo + 1, 128), np.int32)
        np.add.at(counts, (f[keep], pitches[a:b][keep]), 1)
        np.add.at(counts, (e[keep], pitches[a:b][keep]), -1)
        sounding = np.cumsum(counts, axis=0)[:-1] > 0
        folded = np.zeros((hi - lo, 132), bool)
        folded[:, :128] = sounding
        profiles[lo:hi, :12] = folded.reshape(hi - lo, 11, 12).any(axis=1)
        rows = np.flatnonzero(sounding.any(axis=1))
        profiles[lo + rows, 12 + np.argmax(sounding[rows], axis=1) % 12] = True
    return profiles


def viterbi_one(scores: np.ndarray, penalty: float) -> np.ndarray:
    """The state path maximising the summed scores minus `penalty` per change; int64 shape (frames,).

    Args:
        scores: float shape (frames, states).
    """
    best = [0] * len(scores)
    stay = np.zeros(scores.shape, bool)
    total = scores[0].astype(np.float64)
    for t in range(1, len(scores)):
        best[t] = b = int(total.argmax())
        switch = total[b] - penalty
        stay[t] = total >= switch
        np.maximum(total, switch, out=total)
        total += scores[t]
    state = int(total.argmax())
    path = [state]
    for t in range(len(scores) - 1, 0, -1):  # plain ints: indexing with numpy scalars costs more than the step
        state = state if stay[t, state] else best[t]
        path.append(state)
    return np.array(path[::-1], dtype=np.int64)


def viterbi(scores: Sequence[np.ndarray], penalty: float) -> list[np.ndarray]:
    """`viterbi_one` of each sequence, the sequences in lockstep: a Python step per frame serves them all.

    A sequence that has ended keeps its totals, which is what padding it with zero scores would come to: the best
    state at its end stays best, and its path ends there.

    Args:
        scores: float64 arrays of shape (frames, states), the same states for all.
    """
    if len(scores) == 1:
        return [viterbi_one(scores[0], penalty)]
    order = sorted(range(len(scores)), key=lambda i: len(scores[i]))  # the ones still running are a suffix
    lengths = np.array([len(scores[i]) for i in order])
    count, steps = len(order), int(lengths[-1])
    ended = np.searchsorted(lengths, np.arange(steps), side="right")  # per step, how many have ended before it
    # Frame t of every sequence still running, side by side: the rows frames[offsets[t] : offsets[t + 1]].
    offsets = np.concatenate([[0], np.cumsum(count - ended)])
    frames = np.empty((int(offsets[-1]), scores[0].shape[1]))
    for k, i in enumerate(order):
        at = np.arange(len(scores[i]))
        frames[offsets[at] + k - ended[at]] = scores[i]
    best = np.zeros((steps, count), np.intp)
    stay = np.zeros((steps, count, frames.shape[1]), bool)
    total = frames[:count].copy()
    rows = np.arange(count)
    for t in range(1, steps):
        first = int(ended[t])
        running = total[first:]
        best[t, first:] = b = running.argmax(axis=1)
        switch = (running[rows[: count - first], b] - penalty)[:, None]
        np.greater_equal(running, switch, out=stay[t, first:])
        np.maximum(running, switch, out=running)
        running += frames[offsets[t] : offsets[t + 1]]
    state = total.argmax(axis=1)
    path = np.empty((steps, count), np.int64)
    path[lengths - 1, rows] = state
    for t in range(steps - 1, 0, -1):
        first = int(ended[t])
        now = state[first:]
        state[first:] = np.where(stay[t, first + rows[: count - first], now], now, best[t, first:])
        path[t - 1, first:] = state[first:]
    out: list[np.ndarray] = [np.zeros(0, np.int64)] * count
    for k, i in enumerate(order):
        out[i] = path[: lengths[k], k].copy()
    return out


_PACK = 32 ** np.arange(12, dtype=np.int64)  # twelve counts below 32 in one int64


def distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a (frames, 24) array of whole-number counts and, per frame, the index of its row among
    them (``distinct[inverse] == rows``). Counts of 32 or more (beats many samples long) keep every row."""
    count = len(rows)
    if not count or rows.max() >= 32:
        return rows, np.arange(count)
    counts = rows.astype(np.int64)
    low, high = counts[:, :12] @ _PACK, counts[:, 12:] @ _PACK  # exact: one number per half row
    order = np.lexsort((high, low))
    low, high = low[order], high[order]
    new = np.ones(count, bool)
    new[1:] = (low[1:] != low[:-1]) | (high[1:] != high[:-1])
    inverse = np.empty(count, np.intp)
    inverse[order] = np.cumsum(new) - 1
    return rows[order[new]], inverse
