"""Musical metrics of a set of melodies.

Start at `musical_metrics(melodies, reference=None)`: one dict with the pitch-class and interval histograms
(and their distance to a reference set, e.g. the training data), the share of notes in the estimated key, the
share of excessively repeated notes, note density and the longest repeated motif. Keys and scales themselves
live in `melodyrnn.theory`. Pure numpy: importing this module never loads TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from melodyrnn.chords import parse_label
from melodyrnn.conditioning import LEVEL, step_conditions
from melodyrnn.encoding import Melody
from melodyrnn.errors import MelodyRNNError
from melodyrnn.theory import KEY_TONIC_NAMES, PITCH_CLASS_NAMES, key_pitch_classes, pitch_to_note_name

__all__ = [
    "pitch_class_histogram",
    "interval_histogram",
    "histogram_distance",
    "estimate_key",
    "in_key_ratio",
    "repeated_note_ratio",
    "note_density",
    "longest_repeated_motif",
    "musical_metrics",
    "format_metrics",
    "onset_profile",
    "js_divergence_bits",
    "strong_beat_chord_tone_share",
]

# Krumhansl–Kessler key profiles (probe-tone ratings), tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _as_list(melodies: Melody | Iterable[Melody]) -> list[Melody]:
    if isinstance(melodies, Melody):
        return [melodies]
    melodies = list(melodies)
    for m in melodies:
        if not isinstance(m, Melody):
            raise MelodyRNNError(f"expected Melody objects, got {type(m).__name__}")
    return melodies


def _normalized(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts.astype(np.float64)


def onset_profile(melodies: Melody | Iterable[Melody], time_signature: tuple[int, int]) -> np.ndarray:
    """Where notes start in the bar: float64 `(steps_per_bar,)`, the share of note onsets at each step of a bar of
    `time_signature`, over the melodies whose opening meter it is (others are skipped; zeros if none)."""
    melodies = [m for m in _as_list(melodies) if m.time_signature == tuple(time_signature)]
    bar = max(1, round(melodies[0].steps_per_bar)) if melodies else 1
    counts = np.zeros(bar)
    for m in melodies:
        onsets = np.array([start for _, start, _ in m.notes()], dtype=np.int64)
        counts += np.bincount(onsets % bar, minlength=bar)
    return _normalized(counts)


def js_divergence_bits(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence of two histograms of the same shape, in bits (0 = same, 1 = disjoint)."""
    p, q = _normalized(np.asarray(p, np.float64)), _normalized(np.asarray(q, np.float64))
    if p.shape != q.shape:
        raise MelodyRNNError(f"histograms must have the same shape, got {p.shape} and {q.shape}")
    mid = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / mid[nz])))

    return (kl(p) + kl(q)) / 2


def strong_beat_chord_tone_share(melodies: Melody | Iterable[Melody]) -> float | None:
    """The share of notes sounding on strong beats (the downbeat and every beat of the meter, see
    `melodyrnn.conditioning`) that are tones of the chord sounding there; steps with no chord (N) or no note do
    not count. None when no such step exists (melodies without chords)."""
    hits = total = 0
    for m in _as_list(melodies):
        if not m.chords:
            continue
        sounding = np.full(len(m), -1)
        for pitch, start, end in m.notes():
            sounding[start:end] = pitch % 12
        conditions = step_conditions(len(m), m.steps_per_quarter, m.time_signatures, ())
        strong = np.flatnonzero((conditions[:, LEVEL] <= 2) & (sounding >= 0))
        changes = [step for step, _ in m.chords]
        for step in strong:
            chord = (
                parse_label(m.chords[int(np.searchsorted(changes, step, side="right")) - 1][1])
                if step >= changes[0]
                else None
            )
            if chord is not None:
                total += 1
                hits += int(sounding[step]) in chord.pitch_classes
    return hits / total if total else None


def pitch_class_histogram(melodies: Melody | Iterable[Melody]) -> np.ndarray:
    """Share of notes per pitch class over all melodies.

    Returns:
        float64 `(12,)`, index 0 = C, summing to 1 (all zeros when there are no notes).
    """
    counts = np.zeros(12)
    for m in _as_list(melodies):
        counts += np.bincount(m.pitches.astype(np.int64) % 12, minlength=12)
    return _normalized(counts)


def interval_histogram(melodies: Melody | Iterable[Melody], max_interval: int = 12) -> np.ndarray:
    """Share of melodic intervals (semitones between consecutive notes, clipped to ±`max_interval`).

    Returns:
        float64 `(2 * max_interval + 1,)`; index `max_interval + d` holds interval d (0 = a repeated pitch).
    """
    counts = np.zeros(2 * max_interval + 1)
    for m in _as_list(melodies):
        intervals = np.clip(np.diff(m.pitches.astype(np.int64)), -max_interval, max_interval)
        counts += np.bincount(intervals + max_interval, minlength=counts.size)
    return _normalized(counts)


def histogram_distance(
    p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray, kind: str = "jensen_shannon"
) -> float:
    """Distance between two histograms (each normalized to sum 1 first).

    Args:
        kind: "jensen_shannon" (the JS divergence in bits, in [0, 1]) or "total_variation" (half the L1
            distance, in [0, 1]).

    Raises:
        MelodyRNNError: different lengths, negative entries, an empty histogram or an unknown `kind`.
    """
    pa, qa = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if pa.shape != qa.shape or pa.ndim != 1:
        raise MelodyRNNError(f"histograms must be 1-D of the same length, got shapes {pa.shape} and {qa.shape}")
    if (pa < 0).any() or (qa < 0).any() or pa.sum() <= 0 or qa.sum() <= 0:
        raise MelodyRNNError("histograms must be non-negative and not all zero")
    pa, qa = pa / pa.sum(), qa / qa.sum()
    if kind == "total_variation":
        return float(0.5 * np.abs(pa - qa).sum())
    if kind != "jensen_shannon":
        raise MelodyRNNError(f"`kind` must be 'jensen_shannon' or 'total_variation', got {kind!r}")
    mid = 0.5 * (pa + qa)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / mid[nz])).sum())

    return max(0.0, 0.5 * kl(pa) + 0.5 * kl(qa))


def estimate_key(melodies: Melody | Iterable[Melody] | np.ndarray) -> tuple[str, float]:
    """The most likely major or minor key (Krumhansl–Schmuckler: correlate the pitch-class histogram with the
    24 rotated Krumhansl–Kessler profiles).

    Args:
        melodies: melodies, or a pitch-class histogram `(12,)`.

    Returns:
        `(key, correlation)`, e.g. `("D minor", 0.83)`; `("unknown", 0.0)` when there are no notes.
    """
    hist = np.asarray(melodies, np.float64) if isinstance(melodies, np.ndarray) else pitch_class_histogram(melodies)
    if hist.sum() <= 0 or np.allclose(hist, hist[0]):
        return "unknown", 0.0
    best = ("unknown", -2.0)
    for mode, profile in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(hist, np.roll(profile, tonic))[0, 1])
            if r > best[1]:
                best = (f"{KEY_TONIC_NAMES[tonic]} {mode}", r)
    return best


def in_key_ratio(melodies: Melody | Iterable[Melody], key: str | None = None) -> float:
    """Share of notes whose pitch class belongs to the key's scale.

    Args:
        key: a key for every melody; None estimates each melody's own key with `estimate_key`.

    Returns:
        A float in [0, 1] (0 when there are no notes).
    """
    inside = total = 0
    for m in _as_list(melodies):
        pcs = m.pitches.astype(np.int64) % 12
        if pcs.size == 0:
            continue
        k = key if key is not None else estimate_key(m)[0]
        if k == "unknown":  # every pitch class equally often: no key, count nothing as out of it
            inside += pcs.size
        else:
            inside += int(np.isin(pcs, sorted(key_pitch_classes(k))).sum())
        total += pcs.size
    return inside / total if total else 0.0


def repeated_note_ratio(melodies: Melody | Iterable[Melody], max_repeats: int = 2) -> float:
    """Share of notes that repeat the previous note's pitch more than `max_repeats` times in a row.

    With `max_repeats=2`, in C C C C D the fourth C is the only excessive repeat (1 of 5 notes). Rests between
    the notes do not break a run (the same rule as the sampler's `max_repeats`).
    """
    excessive = total = 0
    for m in _as_list(melodies):
        p = m.pitches
        total += p.size
        run = 0
        for i in range(1, p.size):
            run = run + 1 if p[i] == p[i - 1] else 0
            excessive += run > max_repeats
    return excessive / total if total else 0.0


def note_density(melodies: Melody | Iterable[Melody]) -> float:
    """Mean notes per bar (bars of each melody's opening time signature), over all melodies' bars."""
    notes = bars = 0.0
    for m in _as_list(melodies):
        notes += m.pitches.size
        bars += m.num_bars
    return notes / bars if bars else 0.0


def longest_repeated_motif(melody: Melody) -> int:
    """Length, in intervals, of the longest sequence of melodic intervals that occurs at least twice without
    overlapping (so transposed repeats count, and a motif of n intervals spans n + 1 notes). 0 if none."""
    intervals = tuple(np.diff(melody.pitches.astype(np.int64)).tolist())

    def repeats(n: int) -> bool:
        first: dict[tuple, int] = {}
        for i in range(len(intervals) - n + 1):
            gram = intervals[i : i + n]
            j = first.setdefault(gram, i)
            if i - j >= n:
                return True
        return False

    # if an n-gram repeats without overlap, so does its (n-1)-prefix: binary search for the longest
    lo, hi = 0, len(intervals) // 2
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if repeats(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def musical_metrics(
    melodies: Melody | Iterable[Melody], reference: Iterable[Melody] | None = None, max_repeats: int = 2
) -> dict:
    """All musical metrics of a set of melodies, as a JSON-ready dict.

    Args:
        melodies: the melodies to describe (e.g. generated ones).
        reference: optional melodies to compare with (e.g. the training data): adds the Jensen–Shannon
            divergence (bits) between the two sets' pitch-class and interval histograms.
        max_repeats: the threshold of `repeated_note_ratio`.

    Returns:
        A dict: `num_melodies`, `num_notes`, `pitch_range` (note names), `key_estimate`, `in_key_ratio` (each
        melody against its own estimated key), `repeated_note_ratio`, `notes_per_bar`, `mean_abs_interval`,
        `longest_repeated_motif_mean` / `_max` (intervals), `pitch_class_histogram` (12 floats, C first),
        `interval_histogram` (25 floats, -12..12), and with a reference `reference_key_estimate`,
        `pitch_class_js_divergence`, `interval_js_divergence`.
    """
    melodies = _as_list(melodies)
    pitches = np.concatenate([m.pitches for m in melodies]) if melodies else np.zeros(0, np.int16)
    pc_hist = pitch_class_histogram(melodies)
    iv_hist = interval_histogram(melodies)
    motifs = [longest_repeated_motif(m) for m in melodies]
    per_melody = [np.abs(np.diff(m.pitches.astype(np.int64))) for m in melodies]
    abs_intervals = np.concatenate(per_melody) if per_melody else np.zeros(0)
    out = {
        "num_melodies": len(melodies),
        "num_notes": int(pitches.size),
        "pitch_range": [pitch_to_note_name(int(pitches.min())), pitch_to_note_name(int(pitches.max()))]
        if pitches.size
        else None,
        "key_estimate": estimate_key(pc_hist)[0],
        "in_key_ratio": in_key_ratio(melodies),
        "repeated_note_ratio": repeated_note_ratio(melodies, max_repeats),
        "notes_per_bar": note_density(melodies),
        "mean_abs_interval": float(abs_intervals.mean()) if abs_intervals.size else 0.0,
        "longest_repeated_motif_mean": float(np.mean(motifs)) if motifs else 0.0,
        "longest_repeated_motif_max": int(max(motifs, default=0)),
        "pitch_class_histogram": pc_hist.round(6).tolist(),
        "interval_histogram": iv_hist.round(6).tolist(),
    }
    if reference is not None:
        reference = _as_list(reference)
        ref_pc, ref_iv = pitch_class_histogram(reference), interval_histogram(reference)
        out["reference_key_estimate"] = estimate_key(ref_pc)[0]
        ok = pc_hist.sum() > 0 and ref_pc.sum() > 0
        out["pitch_class_js_divergence"] = histogram_distance(pc_hist, ref_pc) if ok else None
        ok = iv_hist.sum() > 0 and ref_iv.sum() > 0
        out["interval_js_divergence"] = histogram_distance(iv_hist, ref_iv) if ok else None
    return out


def format_metrics(metrics: dict) -> str:
    """A few readable lines for the command line."""
    lines = [
        f"melodies: {metrics['num_melodies']}, notes: {metrics['num_notes']}, "
        f"range: {'-'.join(metrics['pitch_range']) if metrics['pitch_range'] else 'none'}"
    ]
    lines.append(
        f"key estimate: {metrics['key_estimate']}; in key: {metrics['in_key_ratio']:.1%}; "
        f"excessively repeated notes: {metrics['repeated_note_ratio']:.1%}"
    )
    lines.append(
        f"notes per bar: {metrics['notes_per_bar']:.2f}; mean |interval|: "
        f"{metrics['mean_abs_interval']:.2f} semitones; longest repeated motif: "
        f"{metrics['longest_repeated_motif_mean']:.1f} intervals (mean), "
        f"{metrics['longest_repeated_motif_max']} (max)"
    )
    lines.append(
        "pitch classes: "
        + " ".join(f"{n}:{v:.2f}" for n, v in zip(PITCH_CLASS_NAMES, metrics["pitch_class_histogram"]))
    )
    if "pitch_class_js_divergence" in metrics:
        fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(
            f"vs reference ({metrics['reference_key_estimate']}): pitch-class JS divergence "
            f"{fmt(metrics['pitch_class_js_divergence'])} bits, interval JS divergence "
            f"{fmt(metrics['interval_js_divergence'])} bits"
        )
    return "\n".join(lines)
