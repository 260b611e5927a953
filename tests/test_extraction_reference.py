"""Vectorised extraction against the per-note reference it replaced: the same melodies, events and counts.

`_reference_melodies` is the extraction as it was written before numpy (a Python loop per note for the grid,
the polyphony policy, the split at silences and the events), kept here as the specification.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import mido
import numpy as np
import pytest
from conftest import midi_bytes, note_track, scale_notes

from melodyrnn import EncodingConfig, ExtractionConfig, Melody, read_midi, score_to_melodies
from melodyrnn.extraction import _bar_starts, _StepMap
from melodyrnn.midi_io import Note, Score, Track
from melodyrnn.theory import steps_per_bar

TRAINING = Path(__file__).parents[1] / "training_data" / "midi"


def _reference_line(notes, spq, policy):
    quantized = []
    for n in notes:
        start = int(round(n.start_quarters * spq))
        quantized.append((n.pitch, start, max(int(round(n.end_quarters * spq)), start + 1), n.velocity))
    quantized.sort(key=lambda n: (n[1], -n[0]))
    line: list[list[int]] = []
    for pitch, start, end, velocity in quantized:
        if line and start < line[-1][2]:
            if policy == "drop":
                return None
            prev = line[-1]
            if prev[1] == start or pitch < prev[0]:
                continue
            prev[2] = start
        line.append([pitch, start, end, velocity])
    return [tuple(n) for n in line]


def _reference_melody(segment, program, source, tempos, meters, bars, config, extraction, stats):
    spq = config.steps_per_quarter
    start = int(bars[np.searchsorted(bars, segment[0][1], side="right") - 1])
    following = np.searchsorted(bars, segment[-1][2], side="left")
    end = int(bars[following]) if following < bars.size else segment[-1][2]
    if end - start > extraction.max_steps:
        stats["truncated_too_long"] += 1
        lo, hi = np.searchsorted(bars, [start, start + extraction.max_steps], side="right")
        end = int(bars[hi - 1]) if hi > lo else start + extraction.max_steps
        segment = [(p, s, min(e, end), v) for p, s, e, v in segment if s < end]
    seg_meters = meters.slice(start, end)
    if (end - start) < extraction.min_bars * steps_per_bar(spq, seg_meters[0][1], seg_meters[0][2]):
        stats["drop_too_short"] += 1
        return None
    pitches = [p for p, _, _, _ in segment]
    if len(set(pitches)) < extraction.min_unique_pitches:
        stats["drop_too_few_pitches"] += 1
        return None
    shift, lo, hi = 0, min(pitches), max(pitches)
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
    return Melody.from_notes(
        [(p + shift, s - start, e - start) for p, s, e, _ in segment],
        num_steps=end - start,
        steps_per_quarter=spq,
        tempos=tempos.slice(start, end),
        time_signatures=seg_meters,
        velocity=int(np.median([v for _, _, _, v in segment])),
        program=program,
        source=source,
        start_step=start,
    )


def _reference_melodies(score, config, extraction, stats):
    """Every pitched track's melodies (``melody_tracks="all"``), one note at a time."""
    spq = config.steps_per_quarter
    tempos = [(int(round(q * spq)), qpm) for q, qpm in score.tempos]
    meters = [(int(round(q * spq)), n, d) for q, n, d in score.time_signatures]
    tempos = list({s: (s, q) for s, q in tempos}.values())  # later events at the same step win
    meters = list({s: (s, n, d) for s, n, d in meters}.values())
    meter_map, tempo_map = _StepMap(meters), _StepMap(tempos)
    melodies = []
    for track in score.tracks:
        if track.is_drum:
            stats["skip_drum_track"] += 1
            continue
        if not track.notes:
            continue
        line = _reference_line(track.notes, spq, extraction.polyphony)
        if line is None:
            stats["drop_polyphonic_track"] += 1
            continue
        segments = [[line[0]]]
        for note in line[1:]:
            meter = meter_map.at(note[1])
            if note[1] - segments[-1][-1][2] >= extraction.gap_bars * steps_per_bar(spq, meter[1], meter[2]):
                segments.append([note])
            else:
                segments[-1].append(note)
        bars = _bar_starts(meters, spq, max(end for _, _, end, _ in line))
        for segment in segments:
            context = (track.program, score.source, tempo_map, meter_map, bars, config, extraction, stats)
            m = _reference_melody(segment, *context)
            if m is not None:
                melodies.append(m)
    return melodies


def _assert_same(score, config=None, **options):
    config = config or EncodingConfig()
    extraction = ExtractionConfig(melody_tracks="all", **options)
    expected_stats, stats = Counter(), Counter()
    expected = _reference_melodies(score, config, extraction, expected_stats)
    got = score_to_melodies(score, config, extraction, stats)
    assert got == expected  # events, grid, tempos, meters, velocity, program
    assert [(m.start_step, m.source) for m in got] == [(m.start_step, m.source) for m in expected]
    assert stats == expected_stats
    return len(got)


def test_training_data_gives_the_same_melodies():
    paths = sorted(TRAINING.rglob("*.mid"))
    melodies = sum(_assert_same(read_midi(p)) for p in random.Random(0).sample(paths, 300))
    assert melodies >= 300


@pytest.mark.parametrize(
    "options",
    [{"polyphony": "drop"}, {"gap_bars": 0.25, "min_bars": 1.0}, {"max_steps": 40, "min_bars": 0.5}],
)
def test_training_data_gives_the_same_melodies_under_other_policies(options):
    paths = sorted(TRAINING.rglob("*.mid"))
    for path in random.Random(1).sample(paths, 40):
        _assert_same(read_midi(path), **options)


@pytest.mark.filterwarnings("ignore::melodyrnn.MidiRepairWarning")  # chord tones re-struck while they sound
def test_polyphonic_multi_track_songs_give_the_same_melodies():
    rng = random.Random(2)
    meters = [mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0)]
    meters.append(mido.MetaMessage("time_signature", numerator=7, denominator=8, time=480 * 24))
    for _ in range(6):
        # Chords, legato overlaps, notes struck together, short notes off the grid, long rests.
        chords = [(p + d, s, e + rng.choice([0, 0.3, 1.5])) for p, s, e in scale_notes(12, 48) for d in (0, 3, 7)]
        lead = [(p, s + rng.choice([0, 0.1, 0.05]), e + rng.choice([-0.9, 0, 0.6])) for p, s, e in scale_notes(12, 67)]
        lead += [(p + 12, s + 60, e + 60) for p, s, e in scale_notes(10, 60)]  # after a 12-quarter rest
        data = midi_bytes([meters, note_track(chords, channel=1), note_track(lead, channel=2)])
        score = read_midi(data)
        for options in ({}, {"min_bars": 1.0, "gap_bars": 0.5}, {"polyphony": "drop"}, {"max_steps": 50}):
            _assert_same(score, **options)
        _assert_same(score, EncodingConfig(steps_per_quarter=3, min_pitch=60, max_pitch=84), min_bars=1.0)


def test_random_note_soups_give_the_same_melodies():
    # Scores built directly, so same-pitch notes may overlap (a MIDI channel cannot hold that) and notes are
    # struck together, under, over and exactly at the ends of others.
    rng = np.random.default_rng(3)
    for _ in range(40):
        tracks = []
        for _ in range(3):
            count = int(rng.integers(1, 120))
            starts = np.sort(rng.integers(0, 200, count)) / rng.choice([2, 3, 4, 8])
            ends = starts + rng.choice([0.1, 0.25, 0.5, 1.0, 3.0], count)
            pitches = rng.integers(58, 66, count)
            notes = [Note(int(p), 80, float(s), float(e)) for p, s, e in zip(pitches, starts, ends)]
            tracks.append(Track(sorted(notes, key=lambda n: (n.start_quarters, n.pitch))))
        score = Score(tracks, time_signatures=[(0.0, 4, 4), (float(rng.integers(1, 40)), 3, 4)])
        for options in ({"min_bars": 0.5, "min_unique_pitches": 2}, {"gap_bars": 0.25, "min_bars": 0.0}):
            _assert_same(score, **options)
        _assert_same(score, polyphony="drop", min_bars=0.0, min_unique_pitches=0)


def _reference_bar_lines(meters, spq, end_step):
    """Bar lines bar by bar: each meter's start plus whole bars (rounded half to even) until the next meter, and
    the first at or past `end_step`."""
    lines = set()
    for i, (step, numerator, denominator) in enumerate(meters):
        meter_end = meters[i + 1][0] if i + 1 < len(meters) else math.inf
        bar, k = steps_per_bar(spq, numerator, denominator), 0
        while (line := round(step + k * bar)) < meter_end:
            lines.add(line)
            if line >= end_step:
                break
            k += 1
    return sorted(lines) or [0]


def test_bar_lines_equal_a_bar_by_bar_reference_under_odd_meters_and_grids():
    # Grids where bars are not whole steps (7/8 at 3 steps a quarter is 10.5 steps), changes mid-bar, a meter map
    # out of order, and an end before, at and past each change.
    rng = random.Random(5)
    meters_pool = [(4, 4), (3, 4), (7, 8), (5, 4), (6, 8), (3, 8), (2, 2), (9, 16), (1, 4)]
    for _ in range(300):
        spq = rng.choice([1, 2, 3, 4, 12])
        steps = sorted(rng.sample(range(1, 300), rng.randint(0, 4)))
        meters = [(s, *rng.choice(meters_pool)) for s in [0, *steps]]
        if rng.random() < 0.1:
            rng.shuffle(meters)
        end_step = rng.randint(1, 400)
        assert _bar_starts(meters, spq, end_step).tolist() == _reference_bar_lines(meters, spq, end_step)
