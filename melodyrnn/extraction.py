"""Melody extraction: from any MIDI score to monophonic, quantized `Melody` objects.

Start at `score_to_melodies` (a `Score` → melodies, counting what it drops) or `midi_to_melodies` (a file or
bytes, raising `NoMelodyError` when nothing survives); `ExtractionConfig` holds the policies and filters.
Kept apart from `encoding`, which owns the `Melody` type and its ids, because only this half reads scores.
"""

from __future__ import annotations

import bisect
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from melodyrnn.chords import ChordLabelError, canonical_label, score_to_chords, slice_changes
from melodyrnn.configs import Config, check, is_int
from melodyrnn.encoding import EncodingConfig, Melody
from melodyrnn.errors import NoMelodyError
from melodyrnn.lines import KEPT, OUT_OF_RANGE, TOO_FEW_PITCHES, TOO_SHORT, bar_lines, quantized_line, segment_lines
from melodyrnn.midi_io import Score, read_midi
from melodyrnn.scores import read_scores
from melodyrnn.theory import is_usable_time_signature, steps_per_bar
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
        chords: "auto" gives each melody its chords (`Melody.chords`): the score's chord symbols when it has
            them (MusicXML, ABC), else the chords the tracks not taken as melody play (`score_to_chords`; none
            when every pitched track is taken, as "all" does); "none" skips them.
    """

    polyphony: Literal["highest", "drop"] = "highest"
    gap_bars: float = 1.0
    min_bars: float = 7.0
    min_unique_pitches: int = 5
    max_steps: int = 2048
    melody_tracks: str | int = "auto"
    chords: Literal["auto", "none"] = "auto"

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
        check(self.chords in ("auto", "none"), f"`chords` must be 'auto' or 'none', got {self.chords!r}")


def _bar_starts(time_signatures: Sequence[tuple[int, int, int]], steps_per_quarter: int, end_step: int) -> np.ndarray:
    """Bar-line steps up to `end_step` under a map of ``(step, numerator, denominator)``, int64, sorted.

    Includes the first bar line at or past `end_step`. A time-signature change restarts the bar grid
    where it occurs (`melodyrnn.lines.bar_lines`, compiled: a long piece costs no Python loop per bar).
    """
    if not time_signatures:
        return np.zeros(1, np.int64)
    steps = np.array([step for step, _, _ in time_signatures], dtype=np.int64)
    bars = np.array([steps_per_bar(steps_per_quarter, n, d) for _, n, d in time_signatures], dtype=np.float64)
    return bar_lines(steps, bars, end_step)


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


_DROPPED = {TOO_SHORT: "drop_too_short", TOO_FEW_PITCHES: "drop_too_few_pitches", OUT_OF_RANGE: "drop_out_of_range"}


class MelodyDraft(NamedTuple):
    """A melody as extraction finds it, before its chords are read and it becomes a `Melody` (its fields)."""

    events: np.ndarray  # int16 (steps,)
    tempos: tuple[tuple[int, float], ...]
    time_signatures: tuple[tuple[int, int, int], ...]
    velocity: int
    program: int
    start_step: int


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
    stats = stats if stats is not None else Counter()
    choice = choice if choice is not None else choose_melody_tracks(score, extraction.melody_tracks)
    drafts = score_to_drafts(score, config, extraction, stats, choice)
    # Chords are read only for a score that gave melodies.
    changes = chord_changes(score, choice.taken, config, stats) if drafts and extraction.chords == "auto" else ()
    return drafts_to_melodies(drafts, changes, config, score.source)


def score_to_drafts(
    score: Score, config: EncodingConfig, extraction: ExtractionConfig, stats: Counter, choice: TrackChoice
) -> list[MelodyDraft]:
    """`score_to_melodies` without the chords, as drafts: what a caller reading many files extracts from each
    before reading the chords of them all at once (`melodyrnn.chords.scores_to_chords`)."""
    spq = config.steps_per_quarter
    tempos = [(int(round(q * spq)), qpm) for q, qpm in score.tempos]
    meters = [(int(round(q * spq)), n, d) for q, n, d in score.time_signatures]
    tempos = list({s: (s, q) for s, q in tempos}.values())  # later events at the same step win
    meters = list({s: (s, n, d) for s, n, d in meters}.values())
    meter_map, tempo_map = _StepMap(meters), _StepMap(tempos)
    meter_steps = np.array([step for step, _, _ in meters], dtype=np.int64)
    bar_lengths = np.array([steps_per_bar(spq, n, d) for _, n, d in meters], dtype=np.float64)
    limits = np.array(
        [extraction.gap_bars, extraction.max_steps, extraction.min_bars, extraction.min_unique_pitches,
         config.min_pitch, config.max_pitch], dtype=np.float64,
    )  # fmt: skip
    drafts: list[MelodyDraft] = []
    bars = np.zeros(0, np.int64)
    for index, track in enumerate(score.tracks):
        if track.is_drum:
            stats["skip_drum_track"] += 1
            continue
        if not track.num_notes:
            continue
        if index not in choice.taken:
            stats[f"left_out_track: {choice.verdicts[index].key}"] += 1
            continue
        a = track.arrays
        pitches, starts, ends, velocities, kept = quantized_line(
            a.pitches, a.start_quarters, a.end_quarters, a.velocities, spq, extraction.polyphony == "drop"
        )
        if not kept:
            stats["drop_polyphonic_track"] += 1
            continue
        # The bar lines once per score (again only for a track that ends later), not once per segment from
        # step 0 (which made sparse files quadratic); segments only look up to the first bar line past their end.
        last_end = int(ends.max())
        if bars.size == 0 or bars[-1] < last_end:
            bars = _bar_starts(meters, spq, last_end)
        table, events = segment_lines(pitches, starts, ends, velocities, bars, meter_steps, bar_lengths, limits)
        for status, start, end, truncated, shift, velocity, at in table.tolist():
            if truncated:
                stats["truncated_too_long"] += 1
            if status != KEPT:
                stats[_DROPPED[status]] += 1
                continue
            if shift:
                stats["octave_shifted"] += 1
            tempo_slice, meter_slice = tempo_map.slice(start, end), meter_map.slice(start, end)
            drafts.append(
                MelodyDraft(events[at : at + end - start], tempo_slice, meter_slice, velocity, track.program, start)
            )
    return drafts


def chord_changes(
    score: Score,
    taken: Sequence[int],
    config: EncodingConfig,
    stats: Counter,
    recognized: Sequence[tuple[float, str]] | None = None,
) -> tuple[tuple[int, str], ...]:
    """The score's ``(step, label)`` chord changes: its chord symbols if it has any, else the chords its tracks
    other than `taken` play (`recognized`, when the caller has read them already with `score_to_chords`). A symbol
    that is no Harte label is dropped and counted (the chord before it goes on)."""
    spq = config.steps_per_quarter
    by_step: dict[int, str] = {}  # later chords at the same step win
    if score.chord_symbols:
        for quarters, label in score.chord_symbols:
            try:
                by_step[int(round(quarters * spq))] = canonical_label(label)
            except ChordLabelError:
                stats["chord_symbol_unreadable"] += 1
    else:  # recognized chords' labels are written by `format_label`: canonical already
        found = recognized if recognized is not None else score_to_chords(score, exclude=taken)
        by_step = {int(round(quarters * spq)): label for quarters, label in found}
    changes = sorted(by_step.items())
    return tuple(c for i, c in enumerate(changes) if i == 0 or c[1] != changes[i - 1][1])


def drafts_to_melodies(
    drafts: Sequence[MelodyDraft],
    changes: Sequence[tuple[int, str]],
    config: EncodingConfig,
    source: str,
    *,
    first_maps_only: bool = False,
) -> list[Melody]:
    """The `Melody` of each draft, with the chords of `changes` over its steps (re-based to its first step).

    Takes drafts as `score_to_drafts` makes them and changes as `chord_changes` writes them, and checks only what
    came from the score as it was given (its tempo and meter maps, velocities and programs).

    Args:
        first_maps_only: keep only the tempo and time signature at each melody's start (what a cache stores).
    """
    melodies = []
    positions = [step for step, _ in changes]
    spq = config.steps_per_quarter
    for d in drafts:
        chords = slice_changes(changes, d.start_step, d.start_step + len(d.events), positions) if changes else ()
        tempos, meters = (d.tempos[:1], d.time_signatures[:1]) if first_maps_only else (d.tempos, d.time_signatures)
        fields = (spq, tempos, meters, d.velocity, d.program, source, d.start_step, chords)
        if _plain_maps(tempos, meters) and 1 <= d.velocity <= 127 and type(d.program) is int and 0 <= d.program < 128:
            # `segment_lines` wrote the events and `chord_changes` the chords: only the score's own values need a look
            melodies.append(Melody.from_valid_fields(d.events.copy(), *fields))
        else:  # what `Melody` would refuse or convert (a hand-made score's odd values): it says which
            melodies.append(Melody(d.events, *fields))
    return melodies


def _plain_maps(tempos: Sequence[tuple], meters: Sequence[tuple]) -> bool:
    """Whether a melody's tempo and meter maps are as `Melody` keeps them: from step 0, plain ints and float qpm
    above 0, usable meters."""
    return (
        bool(tempos) and tempos[0][0] == 0 and bool(meters) and meters[0][0] == 0
        and all(type(step) is int and type(qpm) is float and qpm > 0 for step, qpm in tempos)
        and all(type(step) is int and is_usable_time_signature(n, d) for step, n, d in meters)
    )  # fmt: skip


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
        if not any(t.num_notes for t in score.tracks):
            raise NoMelodyError(score.source, "the file has no notes")
        if all(t.is_drum for t in score.tracks if t.num_notes):
            raise NoMelodyError(score.source, "the file has only drum tracks")
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(stats.items()) if k.startswith("drop"))
        raise NoMelodyError(score.source, f"no melody passed the filters ({reasons})")
    return melodies


def score_file_to_melodies(
    source: str | os.PathLike | bytes,
    config: EncodingConfig = EncodingConfig(),
    extraction: ExtractionConfig = ExtractionConfig(),
    stats: Counter | None = None,
    *,
    suffix: str | None = None,
    name: str | None = None,
) -> list[Melody]:
    """Reads a MusicXML (.musicxml, .xml, .mxl) or ABC (.abc) file and extracts the melodies of every piece or
    tune in it (`melodyrnn.scores.read_scores`), as `midi_to_melodies` does for MIDI.

    Args:
        source: a path, or the file's bytes (then `suffix`, e.g. ".abc", says the format).
        config, extraction: as `score_to_melodies`; each piece's parts go through the same track choice.
        stats: as `score_to_melodies`, plus ``skip_unreadable_tune`` for the tunes of a tune book that
            cannot be read (the others still give their melodies).
        suffix: the format when `source` is bytes (or to override a path's suffix).
        name: what errors and `Melody.source` call the file; None: the path, or "<bytes>".

    Returns:
        The melodies, in file order (tune by tune, then track and time).

    Raises:
        ScoreReadError: the file, or every tune in it, cannot be read.
        MissingExtraError: music21 is not installed (``pip install "melodyrnn[scores]"``).
        NoMelodyError: no melody passes the filters.
    """
    stats = stats if stats is not None else Counter()
    book = read_scores(source, suffix=suffix, name=name)
    if book.skipped:
        stats["skip_unreadable_tune"] += len(book.skipped)
    melodies = [m for score in book.scores for m in score_to_melodies(score, config, extraction, stats)]
    if not melodies:
        where = name or ("<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source))
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(stats.items()) if k.startswith("drop"))
        raise NoMelodyError(where, f"no melody passed the filters ({reasons})")
    return melodies
