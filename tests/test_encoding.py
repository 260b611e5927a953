"""encoding: the event vocabulary, id and MIDI round trips, transposition, and Melody metadata."""

from __future__ import annotations

import mido
import numpy as np
import pytest

from melodyrnn import (
    EncodingConfig,
    ExtractionConfig,
    Melody,
    MelodyRNNError,
    OutOfRangeError,
    melody_to_midi,
    melody_to_tokens,
    midi_to_melodies,
    tokens_to_melody,
)
from melodyrnn.encoding import NO_EVENT, NOTE_OFF
from melodyrnn.errors import ChordLabelError
from melodyrnn.midi_io import read_midi

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


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps_per_quarter": 0}, "steps_per_quarter"),
        ({"min_pitch": -1}, "min_pitch"),
        ({"min_pitch": 70, "max_pitch": 60}, "max_pitch"),
    ],
)
def test_encoding_config_validates(kwargs, match):
    with pytest.raises(MelodyRNNError, match=match):
        EncodingConfig(**kwargs)


def test_melody_midi_melody_round_trip_with_tempo_and_meter_maps():
    rng = np.random.default_rng(1)
    for _ in range(10):
        m = random_melody(
            rng,
            steps=96,
            lo=40,
            hi=90,
            tempos=((0, 97.0), (48, 123.5)),
            time_signatures=((0, 3, 4), (48, 6, 8)),
            velocity=77,
            program=41,
        )
        m = Melody.from_notes(
            m.notes(), num_steps=96, tempos=m.tempos, time_signatures=m.time_signatures, velocity=77, program=41
        )
        back = midi_to_melodies(melody_to_midi(m), extraction=LOOSE)
        assert len(back) == 1
        got = back[0]
        # Extraction starts at the bar line before the first note, so compare from there.
        assert got.start_step % 12 == 0
        assert np.array_equal(got.events, m.events[got.start_step : got.start_step + len(got)])
        assert got.velocity == 77 and got.program == 41


def test_round_trip_exact_when_melody_starts_with_a_note():
    m = Melody.from_notes(
        [(60, 0, 4), (62, 4, 6), (64, 8, 16), (65, 16, 20)],
        num_steps=28,
        tempos=((0, 90.0), (16, 100.0)),
        time_signatures=((0, 3, 4), (12, 4, 4)),
    )
    (back,) = midi_to_melodies(melody_to_midi(m), extraction=LOOSE)
    assert back == m
    assert back.tempos == ((0, 90.0), (16, 100.0))
    assert back.time_signatures == ((0, 3, 4), (12, 4, 4))


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


def _melody_with_chords() -> Melody:
    notes = [(72 + (i * 5) % 12, 4 * i, 4 * i + 3) for i in range(32)]
    chords = (
        (0, "C:maj"), (16, "A:min7"), (32, "F:maj/3"), (48, "G:7"), (64, "N"), (80, "D:min"), (96, "G:sus4"),
        (104, "B:dim7"), (112, "C:maj"),
    )  # fmt: skip
    return Melody.from_notes(notes, num_steps=128, chords=chords, source="tune.mid")


def test_melody_chords_are_checked_compared_and_shown():
    m = Melody(np.array([60, NO_EVENT, 62, NO_EVENT] * 8), chords=((0, "Db:maj"), (16, "G:7/3")))
    assert m.chords == ((0, "C#:maj"), (16, "G:7/3"))  # stored as written back
    assert m != Melody(m.events) and m == Melody(m.events, chords=((0, "C#:maj"), (16, "G:7/3")))
    assert "2 chords" in repr(m) and "chords" not in repr(Melody(m.events))
    with pytest.raises(ChordLabelError, match="'C:major'"):
        Melody(m.events, chords=((0, "C:major"),))
    with pytest.raises(MelodyRNNError, match="`chords` steps must rise"):
        Melody(m.events, chords=((4, "C:maj"), (4, "G:maj")))
    with pytest.raises(MelodyRNNError, match="inside the melody's 32 steps"):
        Melody(m.events, chords=((40, "C:maj"),))


def test_transposition_moves_the_chords_with_the_notes():
    m = Melody(np.array([60, NO_EVENT, 64, 67] * 4), chords=((0, "C:maj"), (8, "G:7/3"), (12, "N")))
    up = m.transpose(3)
    assert up.chords == ((0, "Eb:maj"), (8, "Bb:7/3"), (12, "N"))
    assert up.transpose(-3) == m
    folded = m.transpose(5, min_pitch=60, max_pitch=71, on_out_of_range="fold")
    assert folded.chords == ((0, "F:maj"), (8, "C:7/3"), (12, "N"))


def test_tokens_hold_events_only_and_leave_chords_alone():
    m = _melody_with_chords()
    ids = melody_to_tokens(m)
    assert np.array_equal(ids, melody_to_tokens(Melody(m.events)))
    assert tokens_to_melody(ids).chords == ()
    assert tokens_to_melody(ids, chords=m.chords) == Melody(m.events, chords=m.chords)


def test_the_chord_track_written_by_melody_to_midi_reads_back_as_the_same_chords(tmp_path):
    m = _melody_with_chords()
    data = melody_to_midi(m, tmp_path / "song.mid", chords=True)
    assert (tmp_path / "song.mid").read_bytes() == data
    score = read_midi(data)
    assert [(t.name, t.program) for t in score.tracks] == [("tune.mid", 0), ("chords", 0)]
    channels = [
        {msg.channel for msg in track if msg.type == "note_on"}
        for track in mido.MidiFile(tmp_path / "song.mid").tracks[1:]
    ]
    assert channels == [{0}, {1}]  # its own channel
    (back,) = midi_to_melodies(data, extraction=LOOSE)
    assert np.array_equal(back.events, m.events)
    assert back.chords == m.chords
    assert read_midi(melody_to_midi(m, chords=48)).tracks[1].program == 48
    assert len(read_midi(melody_to_midi(m)).tracks) == 1
    with pytest.raises(MelodyRNNError, match="`chords` must be True, False or a program in \\[0, 127\\], got 200"):
        melody_to_midi(m, chords=200)
