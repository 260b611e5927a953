"""encoding: melody extraction policies, the event vocabulary, round trips and transposition."""

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
    OutOfRangeError,
    melody_to_midi,
    melody_to_tokens,
    midi_to_melodies,
    read_midi,
    score_to_melodies,
    tokens_to_melody,
)
from melodyrnn.encoding import NO_EVENT, NOTE_OFF

LOOSE = ExtractionConfig(min_bars=0, min_unique_pitches=0)


def random_melody(rng, steps=64, lo=0, hi=127, **meta) -> Melody:
    events = np.full(steps, NO_EVENT)
    onsets = rng.random(steps) < 0.4
    events[onsets] = rng.integers(lo, hi + 1, onsets.sum())
    offs = (~onsets) & (rng.random(steps) < 0.1)
    events[offs] = NOTE_OFF
    return Melody(events, **meta)


def test_vocabulary_follows_melodyrnn():
    cfg = EncodingConfig()
    assert cfg.vocab_size == 130
    m = Melody(np.array([60, NO_EVENT, NOTE_OFF, 0, 127]))
    assert melody_to_tokens(m, cfg).tolist() == [62, 0, 1, 2, 129]
    narrow = EncodingConfig(min_pitch=48, max_pitch=84)
    assert narrow.vocab_size == 39
    assert melody_to_tokens(Melody(np.array([48, 84])), narrow).tolist() == [2, 38]


def test_melody_ids_melody_round_trip_is_lossless():
    rng = np.random.default_rng(0)
    for cfg in (EncodingConfig(), EncodingConfig(min_pitch=36, max_pitch=96)):
        for _ in range(20):
            m = random_melody(rng, lo=cfg.min_pitch, hi=cfg.max_pitch)
            ids = melody_to_tokens(m, cfg)
            assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < cfg.vocab_size
            assert tokens_to_melody(ids, cfg) == m


def test_out_of_range_pitch_and_id_raise():
    with pytest.raises(OutOfRangeError, match="outside \\[48, 84\\]"):
        melody_to_tokens(Melody(np.array([40, 60])), EncodingConfig(min_pitch=48, max_pitch=84))
    with pytest.raises(MelodyRNNError, match="token ids must be in \\[0, 130\\)"):
        tokens_to_melody([0, 130])


@pytest.mark.parametrize("kwargs, match", [
    ({"steps_per_quarter": 0}, "steps_per_quarter"),
    ({"min_pitch": -1}, "min_pitch"),
    ({"min_pitch": 70, "max_pitch": 60}, "max_pitch"),
])
def test_encoding_config_validates(kwargs, match):
    with pytest.raises(MelodyRNNError, match=match):
        EncodingConfig(**kwargs)


def test_extraction_config_validates():
    with pytest.raises(ValueError, match="`polyphony` must be 'highest' or 'drop', got 'lowest'"):
        ExtractionConfig(polyphony="lowest")
    with pytest.raises(ValueError, match="gap_bars"):
        ExtractionConfig(gap_bars=0)


def test_melody_midi_melody_round_trip_with_tempo_and_meter_maps():
    rng = np.random.default_rng(1)
    for _ in range(10):
        m = random_melody(rng, steps=96, lo=40, hi=90, tempos=((0, 97.0), (48, 123.5)),
                          time_signatures=((0, 3, 4), (48, 6, 8)), velocity=77, program=41)
        m = Melody.from_notes(m.notes(), num_steps=96, tempos=m.tempos, time_signatures=m.time_signatures,
                              velocity=77, program=41)
        back = midi_to_melodies(melody_to_midi(m), extraction=LOOSE)
        assert len(back) == 1
        got = back[0]
        # Extraction starts at the bar line before the first note, so compare from there.
        assert got.start_step % 12 == 0
        assert np.array_equal(got.events, m.events[got.start_step:got.start_step + len(got)])
        assert got.velocity == 77 and got.program == 41


def test_round_trip_exact_when_melody_starts_with_a_note():
    m = Melody.from_notes([(60, 0, 4), (62, 4, 6), (64, 8, 16), (65, 16, 20)], num_steps=28,
                          tempos=((0, 90.0), (16, 100.0)), time_signatures=((0, 3, 4), (12, 4, 4)))
    (back,) = midi_to_melodies(melody_to_midi(m), extraction=LOOSE)
    assert back == m
    assert back.tempos == ((0, 90.0), (16, 100.0))
    assert back.time_signatures == ((0, 3, 4), (12, 4, 4))


def test_tempo_changes_do_not_shift_the_grid():
    # The same notes at 60 then 180 qpm: positions in quarters are unchanged, so steps are too.
    conductor = [mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60), time=0),
                 mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(180), time=8 * 480)]
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


def test_each_non_drum_track_gives_melodies():
    data = midi_bytes([note_track(scale_notes(8)), note_track(scale_notes(8, 48), channel=1, program=33)])
    melodies = midi_to_melodies(data)
    assert [m.program for m in melodies] == [0, 33]


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


def test_transpose_rule():
    m = Melody.from_notes([(60, 0, 2), (72, 2, 4), (126, 4, 6)], num_steps=8)
    assert m.transpose(1).pitches.tolist() == [61, 73, 127]
    with pytest.raises(OutOfRangeError, match="128"):
        m.transpose(2)
    assert m.transpose(2, on_out_of_range="fold").pitches.tolist() == [62, 74, 116]
    low = m.transpose(-5, min_pitch=60, max_pitch=84, on_out_of_range="fold")
    assert low.pitches.tolist() == [67, 67, 73]
    assert np.array_equal(m.transpose(-3).transpose(3).events, m.events)


def test_melody_metadata_and_notes():
    m = Melody.from_notes([(60, 0, 3), (64, 4, 8)], num_steps=16, time_signatures=((0, 6, 8),))
    assert m.events.tolist()[:5] == [60, NO_EVENT, NO_EVENT, NOTE_OFF, 64]
    assert m.steps_per_bar == 12 and m.pitch_range == (60, 64)
    with pytest.raises(MelodyRNNError, match="velocity"):
        Melody(np.array([60]), velocity=0)
    with pytest.raises(MelodyRNNError, match="sorted"):
        Melody.from_notes([(60, 4, 6), (62, 2, 3)])


def test_overrides_when_writing():
    import io

    import pretty_midi

    m = Melody.from_notes([(60, 0, 4), (67, 4, 8)], num_steps=16)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(melody_to_midi(m, qpm=150, program=73, velocity=55, time_signature=(6, 8))))
    assert pm.instruments[0].program == 73 and pm.instruments[0].notes[0].velocity == 55
    assert pm.get_tempo_changes()[1][0] == pytest.approx(150, abs=1e-3)
    with pytest.raises(MelodyRNNError, match="qpm"):
        melody_to_midi(m, qpm=0)
