"""extraction: melodies out of scores: the grid, the polyphony policy, splitting at gaps, filters, range."""

from __future__ import annotations

from collections import Counter

import mido
import numpy as np
import pytest
from conftest import midi_bytes, note_track, scale_notes

from melodyrnn import (
    EncodingConfig,
    ExtractionConfig,
    Melody,
    MelodyRNNError,
    midi_to_melodies,
    read_midi,
    score_to_melodies,
)
from melodyrnn.midi_io import Note, Score, Track

LOOSE = ExtractionConfig(min_bars=0, min_unique_pitches=0)


def test_extraction_config_validates():
    with pytest.raises(ValueError, match="`polyphony` must be 'highest' or 'drop', got 'lowest'"):
        ExtractionConfig(polyphony="lowest")
    with pytest.raises(ValueError, match="gap_bars"):
        ExtractionConfig(gap_bars=0)


def test_tempo_changes_do_not_shift_the_grid():
    # The same notes at 60 then 180 qpm: positions in quarters are unchanged, so steps are too.
    conductor = [
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60), time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(180), time=8 * 480),
    ]
    notes = scale_notes(8)
    (m,) = midi_to_melodies(midi_bytes([conductor, note_track(notes)]))
    assert [(p, s) for p, s, _ in m.notes()] == [(p, int(s * 4)) for p, s, _ in notes]
    assert m.tempos == ((0, 60.0), (32, 180.0))


def test_quantization_rounds_to_the_grid_and_keeps_short_notes():
    notes = [(60, 0.02, 0.98), (62, 1.01, 1.03), (64, 2.0, 3.0)]
    (m,) = midi_to_melodies(midi_bytes([note_track(notes)]), extraction=LOOSE)
    assert m.notes()[:3] == [(60, 0, 4), (62, 4, 5), (64, 8, 12)]


def test_highest_note_policy_keeps_the_top_line():
    chords = [(p, s, e) for p0, s, e in scale_notes(8) for p in (p0 - 12, p0 - 5, p0)]
    data = midi_bytes([note_track(chords)])
    (m,) = midi_to_melodies(data)
    assert [p for p, _, _ in m.notes()] == [p for p, _, _ in scale_notes(8)]
    stats = Counter()
    assert score_to_melodies(read_midi(data), extraction=ExtractionConfig(polyphony="drop"), stats=stats) == []
    assert stats["drop_polyphonic_track"] == 1


def test_lower_note_under_a_sustained_note_is_ignored_and_higher_one_cuts():
    notes = [(72, 0, 4), (60, 1, 2), (76, 2, 3), (65, 4, 5)]
    (m,) = midi_to_melodies(midi_bytes([note_track(notes)]), extraction=LOOSE)
    assert m.notes() == [(72, 0, 8), (76, 8, 12), (65, 16, 20)]


def test_drum_tracks_are_skipped_beside_melodies():
    data = midi_bytes([note_track(scale_notes(8)), note_track(scale_notes(8, 36), channel=9)])
    stats = Counter()
    melodies = score_to_melodies(read_midi(data), stats=stats)
    assert len(melodies) == 1 and stats["skip_drum_track"] == 1


def test_each_non_drum_track_gives_melodies_with_all_tracks():
    data = midi_bytes([note_track(scale_notes(8)), note_track(scale_notes(8, 48), channel=1, program=33)])
    melodies = midi_to_melodies(data, extraction=ExtractionConfig(melody_tracks="all"))
    assert [m.program for m in melodies] == [0, 33]
    # By default only the melody track: the other is a bass (lowest part, bass program).
    stats = Counter()
    assert [m.program for m in score_to_melodies(read_midi(data), stats=stats)] == [0]
    assert sum(v for k, v in stats.items() if k.startswith("left_out_track")) == 1


def test_split_at_gaps_and_start_at_bar_lines():
    first = scale_notes(8)
    second = [(p, s + 32 + 4 + 1, e + 32 + 4 + 1) for p, s, e in scale_notes(8)]  # 1-bar gap, off the bar line
    (a, b) = midi_to_melodies(midi_bytes([note_track(first + second)]))
    assert len(a) == 8 * 16 and a.start_step == 0
    assert b.start_step == 36 * 4  # the bar line before its first note (quarter 37)
    assert b.events[4] == 60  # first note one quarter into the bar
    # A gap shorter than gap_bars keeps one melody.
    (one,) = midi_to_melodies(midi_bytes([note_track(first + second)]), extraction=ExtractionConfig(gap_bars=2))
    assert one.start_step == 0


def test_length_and_variety_filters():
    stats = Counter()
    short = midi_bytes([note_track(scale_notes(4))])
    assert score_to_melodies(read_midi(short), stats=stats) == []
    assert stats["drop_too_short"] == 1
    dull = midi_bytes([note_track([(60 + i % 3, float(i), i + 1.0) for i in range(40)])])
    assert score_to_melodies(read_midi(dull), stats=stats) == []
    assert stats["drop_too_few_pitches"] == 1


def test_long_melodies_are_truncated_at_a_bar_line():
    stats = Counter()
    data = midi_bytes([note_track(scale_notes(40))])
    (m,) = score_to_melodies(read_midi(data), extraction=ExtractionConfig(max_steps=140), stats=stats)
    assert len(m) == 128 and stats["truncated_too_long"] == 1


def test_melodies_outside_a_narrow_range_move_by_octaves_or_drop():
    cfg = EncodingConfig(min_pitch=48, max_pitch=84)
    stats = Counter()
    (m,) = score_to_melodies(read_midi(midi_bytes([note_track(scale_notes(8, 88))])), cfg, stats=stats)
    assert m.pitch_range == (64, 76) and stats["octave_shifted"] == 1
    wide = [(30 + 7 * i % 80, float(i), i + 1.0) for i in range(32)]
    assert score_to_melodies(read_midi(midi_bytes([note_track(wide)])), cfg, stats=stats) == []
    assert stats["drop_out_of_range"] == 1


def test_bar_lines_are_laid_once_per_track_however_many_silences_split_it(monkeypatch):
    # Laying them again for every segment, from step 0, made a file of sparse notes cost the square of its notes.
    import melodyrnn.extraction as extraction

    calls = []
    original = extraction._bar_starts
    monkeypatch.setattr(extraction, "_bar_starts", lambda *args: calls.append(args) or original(*args))
    sparse = [(60 + i % 12, 8.0 * i, 8.0 * i + 0.5) for i in range(300)]  # a note every two bars of 4/4
    melodies = midi_to_melodies(midi_bytes([note_track(sparse)]), extraction=LOOSE)
    assert len(melodies) == 300 and len(calls) == 1
    assert [m.start_step for m in melodies[:3]] == [0, 32, 64]  # each on its bar line (8 quarters = 32 steps)


def _block_chords(roots_and_thirds, bars_from=0):
    """One block chord a bar (root in the bass, then root-third-fifth around middle C), from bar `bars_from`."""
    notes = []
    for k, (root, third) in enumerate(roots_and_thirds):
        start = (bars_from + k) * 4.0
        notes += [(p, start, start + 4.0) for p in (36 + root, 48 + root, 48 + root + third, 55 + root)]
    return notes


def test_each_melody_gets_the_chords_of_its_own_bars_rebased_to_its_start():
    # Two 8-bar tunes two bars apart over a chord track that changes every bar (C, F, G, A minor...).
    first = scale_notes(8, 72)
    second = [(p, s + 40, e + 40) for p, s, e in scale_notes(8, 72)]
    progression = [(0, 4), (5, 4), (7, 4), (9, 3)] * 5
    data = midi_bytes([note_track(first + second), note_track(_block_chords(progression), channel=1, program=24)])
    a, b = midi_to_melodies(data, extraction=LOOSE)
    names = {0: "C:maj", 5: "F:maj", 7: "G:maj", 9: "A:min"}
    assert a.chords == tuple((16 * k, names[root]) for k, (root, _) in enumerate(progression[:8]))
    assert b.start_step == 160 and b.chords[0] == (0, "G:maj")  # bar 10 plays the G chord
    assert b.chords == tuple((16 * k, names[root]) for k, (root, _) in enumerate(progression[10:18]))
    assert all(not m.chords for m in midi_to_melodies(data, extraction=ExtractionConfig(chords="none")))
    # "all" takes every pitched track as a melody: nothing is left to accompany them.
    assert all(not m.chords for m in midi_to_melodies(data, extraction=ExtractionConfig(melody_tracks="all")))
    with pytest.raises(ValueError, match="`chords` must be 'auto' or 'none', got 'guess'"):
        ExtractionConfig(chords="guess")


def test_chord_symbols_of_a_score_come_before_reading_the_accompaniment():
    data = midi_bytes([note_track(scale_notes(8, 72)), note_track(_block_chords([(0, 4)] * 8), channel=1)])
    score = read_midi(data)
    score.chord_symbols = ((0.0, "D:min7"), (8.0, "G:7"), (8.0, "Db:maj"), (16.0, "no chord at all"), (20.0, "N"))
    stats = Counter()
    (m,) = score_to_melodies(score, extraction=LOOSE, stats=stats)
    assert m.chords == ((0, "D:min7"), (32, "C#:maj"), (80, "N"))  # later symbols at one step win
    assert stats["chord_symbol_unreadable"] == 1
    (plain,) = score_to_melodies(read_midi(data), extraction=LOOSE)
    assert plain.chords == ((0, "C:maj"),)


def _hand_made_score(qpm=120.0, numerator=4, velocity=80, program=0):
    notes = [Note(p, velocity, s, e) for p, s, e in scale_notes(8)]
    return Score([Track(notes, program=program)], tempos=[(0.0, qpm)], time_signatures=[(0.0, numerator, 4)])


def test_melodies_from_hand_made_scores_are_checked_and_converted_as_melody_does():
    # Extraction builds melodies without a second check where every field is already as `Melody` keeps it; a
    # score built by hand with other types or values goes through `Melody` itself.
    (plain,) = score_to_melodies(_hand_made_score())
    rebuilt = Melody(plain.events, plain.steps_per_quarter, plain.tempos, plain.time_signatures, plain.velocity,
                     plain.program, plain.source, plain.start_step, plain.chords)  # fmt: skip
    assert plain == rebuilt and plain.events.dtype == np.int16 and plain.events.flags.owndata
    (odd,) = score_to_melodies(_hand_made_score(qpm=np.float32(120), numerator=np.int64(4)))
    assert odd == plain
    assert type(odd.tempos[0][1]) is float and all(type(v) is int for v in odd.time_signatures[0])
    with pytest.raises(MelodyRNNError, match="tempos must be > 0 qpm"):
        score_to_melodies(_hand_made_score(qpm=-1.0))
    with pytest.raises(MelodyRNNError, match="`velocity` must be in"):
        score_to_melodies(_hand_made_score(velocity=0))
    with pytest.raises(MelodyRNNError, match="`program` must be in"):
        score_to_melodies(_hand_made_score(program=300))
