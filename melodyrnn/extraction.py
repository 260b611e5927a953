"""Melody extraction: from any MIDI score to monophonic, quantized `Melody` objects.

Start at `score_to_melodies` (a `Score` → melodies, counting what it drops) or `midi_to_melodies` (a file or
bytes, raising `NoMelodyError` when nothing survives); `ExtractionConfig` holds the policies and filters.
Kept apart from `encoding`, which owns the `Melody` type and its ids, because only this half reads scores.
"""

from __future__ import annotations

import bisect
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from melodyrnn.configs import Config, check, is_int
from melodyrnn.encoding import EncodingConfig, Melody
from melodyrnn.errors import NoMelodyError
from melodyrnn.midi_io import Note, Score, read_midi
from melodyrnn.theory import steps_per_bar
from melodyrnn.tracks import TrackChoice, choose_melody_tracks


@dataclass(frozen=True)
class ExtractionConfig(Config):
    """How melodies are pulled out of a score (MelodyRNN's defaults, except the length cap).

    Attributes:
        polyphony: "highest" keeps the highest note where notes overlap (a new lower note under a
            sustained higher one is ignored); "drop" drops any track whose quantized notes overlap, as
            MelodyRNN did.
        gap_bars: a silence of at least this many bars splits a track into separate melodies.
        min_bars: shorter melodies are dropped.
        min_unique_pitches: melodies with fewer distinct pitches are dropped.
        max_steps: longer melodies are truncated at the last bar line that fits.
        melody_tracks: which tracks melodies come from: "auto" (the track or tracks that carry the lead line,
            see `melodyrnn.tracks`; a file with one pitched track keeps it), "all" (every non-drum track), a
            track name (case-insensitive) or an index into `Score.tracks`.
    """

    polyphony: Literal["highest", "drop"] = "highest"
    gap_bars: float = 1.0
    min_bars: float = 7.0
    min_unique_pitches: int = 5
    max_steps: int = 2048
    melody_tracks: str | int = "auto"

    what = "extraction config"

    def __post_init__(self):
        check(
            self.polyphony in ("highest", "drop"),
            f"`polyphony` must be 'highest' or 'drop', got {self.polyphony!r}",
        )
        check(self.gap_bars > 0, f"`gap_bars` must be > 0, got {self.gap_bars!r}")
        check(self.min_bars >= 0, f"`min_bars` must be >= 0, got {self.min_bars!r}")
        check(self.min_unique_pitches >= 0, f"`min_unique_pitches` must be >= 0, got {self.min_unique_pitches!r}")
        check(self.max_steps >= 1, f"`max_steps` must be >= 1, got {self.max_steps!r}")
        check(
            (isinstance(self.melody_tracks, str) and self.melody_tracks.strip() != "")
            or (is_int(self.melody_tracks) and self.melody_tracks >= 0),
            f"`melody_tracks` must be 'auto', 'all', a track name or a track index >= 0, got {self.melody_tracks!r}",
        )


def _bar_starts(time_signatures: Sequence[tuple[int, int, int]], steps_per_quarter: int, end_step: int) -> np.ndarray:
    """Bar-line steps up to `end_step` under a map of ``(step, numerator, denominator)``, int64, sorted.

    Includes the first bar line at or past `end_step`. A time-signature change restarts the bar grid
    where it occurs. Vectorized per meter: a long piece costs one `arange`, not a Python loop per bar.
    """
    parts = []
    for i, (step, numerator, denominator) in enumerate(time_signatures):
        seg_end = time_signatures[i + 1][0] if i + 1 < len(time_signatures) else math.inf
        bar = steps_per_bar(steps_per_quarter, numerator, denominator)
        count = max(0, math.ceil((min(seg_end, end_step) - step) / bar)) + 2  # one past the end, plus rounding
        starts = np.round(step + np.arange(count) * bar).astype(np.int64)
        starts = starts[starts < seg_end]
        past = np.flatnonzero(starts >= end_step)
        parts.append(starts[: past[0] + 1] if past.size else starts)  # one bar line at or past the end
    starts = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return np.unique(starts) if starts.size else np.zeros(1, np.int64)


class _StepMap:
    """A ``(step, ...)`` map (tempos or meters, the first at step 0) with O(log n) lookups by step."""

    def __init__(self, items: Sequence[tuple]):
        self.items = list(items)
        self.steps = [item[0] for item in self.items]

    def at(self, step: int) -> tuple:
        """The item in force at `step`."""
        return self.items[max(0, bisect.bisect_right(self.steps, step) - 1)]

    def slice(self, start: int, end: int) -> tuple:
        """The part of the map in force over [start, end), re-based to start at step 0."""
        first = max(0, bisect.bisect_right(self.steps, start) - 1)
        later = self.items[first + 1 : bisect.bisect_left(self.steps, end)]
        return ((0, *self.items[first][1:]), *((item[0] - start, *item[1:]) for item in later))


def _quantize_track(notes: Sequence[Note], steps_per_quarter: int) -> list[tuple[int, int, int, int]]:
    """``(pitch, start, end, velocity)`` on the grid; a note shorter than a step keeps one step."""
    out = []
    for n in notes:
        start = int(round(n.start_quarters * steps_per_quarter))
        end = max(int(round(n.end_quarters * steps_per_quarter)), start + 1)
        out.append((n.pitch, start, end, n.velocity))
    out.sort(key=lambda n: (n[1], -n[0]))
    return out


def _monophonic(quantized: list[tuple[int, int, int, int]], policy: str) -> list[tuple[int, int, int, int]] | None:
    """Reduces quantized notes to a monophonic line; None when `policy` is "drop" and notes overlap."""
    line: list[list[int]] = []
    for pitch, start, end, velocity in quantized:
        if line and start < line[-1][2]:
            if policy == "drop":
                return None
            prev = line[-1]
            if prev[1] == start or pitch < prev[0]:
                # Same onset (sorted highest first) or a lower note under a sustained one: ignore it.
                continue
            prev[2] = start  # a higher note cuts the sustained lower one
        line.append([pitch, start, end, velocity])
    return [(pitch, start, end, velocity) for pitch, start, end, velocity in line]


def score_to_melodies(
    score: Score,
    config: EncodingConfig = EncodingConfig(),
    extraction: ExtractionConfig = ExtractionConfig(),
    stats: Counter | None = None,
    choice: TrackChoice | None = None,
) -> list[Melody]:
    """Extracts monophonic melodies from the melody tracks of a score (`extraction.melody_tracks` chooses them).

    Notes are quantized to the grid (positions are in quarter notes, so tempo changes cannot shift them),
    reduced to one line by the polyphony policy, split at silences of at least `gap_bars`, started at the
    bar line before their first note, filtered by length and pitch variety, and truncated to `max_steps`.
    Melodies that do not fit the vocabulary's pitch range are moved by whole octaves when that makes them
    fit, and dropped otherwise.

    Args:
        score: from `read_midi`.
        config: the grid and the pitch range.
        extraction: the policies and filters.
        stats: if given, counts what was dropped or changed, by reason (``"drop_too_short"``, ...), and the
            pitched tracks left out by `choose_melody_tracks` (``"left_out_track: plays chords"``, ...).
        choice: the tracks to take, when the caller has chosen already (`choose_melody_tracks`).

    Returns:
        The melodies, in track order then time order; possibly empty.

    Raises:
        NoMelodyError: `extraction.melody_tracks` names a track or index the score does not have.
    """
    spq = config.steps_per_quarter
    stats = stats if stats is not None else Counter()
    tempos = [(int(round(q * spq)), qpm) for q, qpm in score.tempos]
    meters = [(int(round(q * spq)), n, d) for q, n, d in score.time_signatures]
    tempos = list({s: (s, q) for s, q in tempos}.values())  # later events at the same step win
    meters = list({s: (s, n, d) for s, n, d in meters}.values())
    meter_map, tempo_map = _StepMap(meters), _StepMap(tempos)
    melodies: list[Melody] = []
    choice = choice if choice is not None else choose_melody_tracks(score, extraction.melody_tracks)
    for index, track in enumerate(score.tracks):
        if track.is_drum:
            stats["skip_drum_track"] += 1
            continue
        if not track.notes:
            continue
        if index not in choice.taken:
            stats[f"left_out_track: {choice.verdicts[index].key}"] += 1
            continue
        line = _monophonic(_quantize_track(track.notes, spq), extraction.polyphony)
        if line is None:
            stats["drop_polyphonic_track"] += 1
            continue
        # Split at long silences.
        segments: list[list[tuple[int, int, int, int]]] = [[line[0]]]
        for note in line[1:]:
            gap = note[1] - segments[-1][-1][2]
            meter = meter_map.at(note[1])
            if gap >= extraction.gap_bars * steps_per_bar(spq, meter[1], meter[2]):
                segments.append([note])
            else:
                segments[-1].append(note)
        # The bar lines once per track, not once per segment from step 0 (which made sparse files quadratic).
        bars = _bar_starts(meters, spq, max(end for _, _, end, _ in line))
        for segment in segments:
            melody = _segment_to_melody(
                segment, track.program, score.source, tempo_map, meter_map, bars, config, extraction, stats
            )
            if melody is not None:
                melodies.append(melody)
    return melodies


def _segment_to_melody(
    segment, program, source, tempos: _StepMap, meters: _StepMap, bars: np.ndarray, config, extraction, stats
) -> Melody | None:
    spq = config.steps_per_quarter
    last_end = segment[-1][2]
    start = int(bars[np.searchsorted(bars, segment[0][1], side="right") - 1])
    following = np.searchsorted(bars, last_end, side="left")
    end = int(bars[following]) if following < bars.size else last_end
    if end - start > extraction.max_steps:
        stats["truncated_too_long"] += 1
        lo, hi = np.searchsorted(bars, [start, start + extraction.max_steps], side="right")
        end = int(bars[hi - 1]) if hi > lo else start + extraction.max_steps
        segment = [(p, s, min(e, end), v) for p, s, e, v in segment if s < end]
    seg_meters = meters.slice(start, end)
    bar_steps = steps_per_bar(spq, seg_meters[0][1], seg_meters[0][2])
    if (end - start) < extraction.min_bars * bar_steps:
        stats["drop_too_short"] += 1
        return None
    pitches = [p for p, _, _, _ in segment]
    if len(set(pitches)) < extraction.min_unique_pitches:
        stats["drop_too_few_pitches"] += 1
        return None
    shift = 0
    lo, hi = min(pitches), max(pitches)
    if lo < config.min_pitch or hi > config.max_pitch:
        if hi - lo > config.max_pitch - config.min_pitch:
            stats["drop_out_of_range"] += 1
            return None
        if lo < config.min_pitch:
            shift = 12 * math.ceil((config.min_pitch - lo) / 12)
        else:
            shift = -12 * math.ceil((hi - config.max_pitch) / 12)
        if lo + shift < config.min_pitch or hi + shift > config.max_pitch:
            stats["drop_out_of_range"] += 1
            return None
        stats["octave_shifted"] += 1
    notes = [(p + shift, s - start, e - start) for p, s, e, _ in segment]
    return Melody.from_notes(
        notes,
        num_steps=end - start,
        steps_per_quarter=spq,
        tempos=tempos.slice(start, end),
        time_signatures=seg_meters,
        velocity=int(np.median([v for _, _, _, v in segment])),
        program=program,
        source=source,
        start_step=start,
    )


def midi_to_melodies(
    source: str | os.PathLike | bytes,
    config: EncodingConfig = EncodingConfig(),
    extraction: ExtractionConfig = ExtractionConfig(),
    stats: Counter | None = None,
) -> list[Melody]:
    """Reads a MIDI file (path or bytes) and extracts its melodies.

    Raises:
        MidiReadError: the file cannot be read.
        NoMelodyError: the file holds no melody that passes the filters; the message says why.
    """
    stats = stats if stats is not None else Counter()
    score = read_midi(source)
    melodies = score_to_melodies(score, config, extraction, stats)
    if not melodies:
        if not any(t.notes for t in score.tracks):
            raise NoMelodyError(score.source, "the file has no notes")
        if all(t.is_drum for t in score.tracks if t.notes):
            raise NoMelodyError(score.source, "the file has only drum tracks")
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(stats.items()) if k.startswith("drop"))
        raise NoMelodyError(score.source, f"no melody passed the filters ({reasons})")
    return melodies
