"""midi_io: reading (with one test per malformed input and its documented outcome) and writing."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
from conftest import midi_bytes, note_track, scale_notes

from melodyrnn import MelodyRNNError, MidiReadError, MidiRepairWarning, NoMelodyError, midi_to_melodies, read_midi
from melodyrnn.midi_io import Note, Score, Track, notes_to_score, score_to_midi

DATA = Path(__file__).parent / "data"


def test_read_path_and_bytes_agree(tune_bytes, tmp_path):
    path = tmp_path / "t.mid"
    path.write_bytes(tune_bytes)
    a, b = read_midi(path), read_midi(tune_bytes)
    assert a.tracks[0].notes == b.tracks[0].notes
    assert a.source == str(path) and b.source == "<bytes>"
    assert a.tempos == [(0.0, 100.0)] and a.time_signatures == [(0.0, 4, 4)]
    assert len(a.tracks[0].notes) == 32
    assert a.tracks[0].notes[1] == Note(62, 80, 1.0, 2.0)


def test_missing_file_is_a_midi_read_error(tmp_path):
    with pytest.raises(MidiReadError, match="nope.mid"):
        read_midi(tmp_path / "nope.mid")


def test_not_midi_at_all():
    with pytest.raises(MidiReadError, match="not a MIDI file"):
        read_midi(DATA / "not_midi.mid")


def test_midi_read_error_is_a_value_error():
    with pytest.raises(ValueError, match="not a MIDI file"):
        read_midi(b"GIF89a....")
    assert issubclass(MidiReadError, MelodyRNNError)


def test_empty_file():
    with pytest.raises(MidiReadError, match="empty"):
        read_midi(DATA / "empty.mid")


def test_truncated_file(tune_bytes):
    with pytest.raises(MidiReadError, match="truncated"):
        read_midi(tune_bytes[:-7])


def test_corrupt_track_data():
    with pytest.raises(MidiReadError, match="corrupt.mid"):
        read_midi(DATA / "corrupt.mid")


def test_header_only():
    header = b"MThd" + struct.pack(">IHHH", 6, 1, 2, 480)
    with pytest.raises(MidiReadError, match="no tracks"):
        read_midi(header)
    with pytest.raises(MidiReadError, match="truncated header"):
        read_midi(header[:10])


def test_header_announcing_more_tracks_than_exist_is_repaired(tune_bytes):
    lying = tune_bytes[:10] + struct.pack(">H", 5) + tune_bytes[12:]
    with pytest.warns(MidiRepairWarning, match="announces 5 tracks but the file holds 2"):
        score = read_midi(lying)
    assert len(score.tracks[0].notes) == 32
    assert score.repairs == ["header announces 5 tracks but the file holds 2"]


def test_drums_only_has_no_melody():
    score = read_midi(DATA / "drums_only.mid")
    assert score.tracks and all(t.is_drum for t in score.tracks)
    with pytest.raises(NoMelodyError, match="only drum tracks"):
        midi_to_melodies(DATA / "drums_only.mid")


def test_only_zero_velocity_notes():
    track = [mido.Message("note_on", note=60 + i % 5, velocity=0, time=120) for i in range(20)]
    score = read_midi(midi_bytes([track]), name="silent.mid")
    assert all(not t.notes for t in score.tracks)
    assert any("note-offs without a note-on" in r for r in score.repairs)
    with pytest.raises(NoMelodyError, match="no notes"):
        midi_to_melodies(midi_bytes([track]))


def test_overlapping_same_pitch_notes_are_closed_before_restrike():
    track = [
        mido.Message("note_on", note=60, velocity=90, time=0),
        mido.Message("note_on", note=60, velocity=70, time=240),  # re-struck before its note-off
        mido.Message("note_off", note=60, time=240),
        mido.Message("note_off", note=60, time=10),
    ]  # a stray second note-off
    with pytest.warns(MidiRepairWarning):
        score = read_midi(midi_bytes([track]))
    assert score.tracks[0].notes == [Note(60, 90, 0.0, 0.5), Note(60, 70, 0.5, 1.0)]
    assert any("re-struck" in r for r in score.repairs)


def test_zero_length_notes_are_dropped():
    track = [
        mido.Message("note_on", note=64, velocity=90, time=0),
        mido.Message("note_off", note=64, time=0),
        mido.Message("note_on", note=65, velocity=90, time=0),
        mido.Message("note_off", note=65, time=480),
    ]
    with pytest.warns(MidiRepairWarning, match="zero-length"):
        score = read_midi(midi_bytes([track]))
    assert score.tracks[0].notes == [Note(65, 90, 0.0, 1.0)]


def test_unclosed_notes_end_with_their_track():
    track = [mido.Message("note_on", note=64, velocity=90, time=0), mido.MetaMessage("text", text="x", time=960)]
    with pytest.warns(MidiRepairWarning, match="never switched off"):
        score = read_midi(midi_bytes([track]))
    assert score.tracks[0].notes == [Note(64, 90, 0.0, 2.0)]


def test_huge_tick_values_are_refused_before_exhausting_memory():
    track = [mido.Message("note_on", note=60, velocity=90, time=0)]
    track += [mido.Message("note_off", note=60, time=0x0FFFFFFF)] * 4  # max variable-length deltas
    with pytest.raises(MidiReadError, match="over the 100000 limit"):
        read_midi(midi_bytes([track], ticks_per_beat=96))


def test_a_file_of_absurdly_many_notes_or_meter_changes_is_refused(monkeypatch):
    import melodyrnn.midi_io as midi_io

    monkeypatch.setattr(midi_io, "MAX_NOTES", 100)  # the real caps are too large for a quick test file
    monkeypatch.setattr(midi_io, "MAX_MAP_EVENTS", 10)
    notes = [(60 + i % 12, i / 4, i / 4 + 0.25) for i in range(101)]
    with pytest.raises(MidiReadError, match="it holds more than 100 notes"):
        read_midi(midi_bytes([note_track(notes)]))
    assert len(read_midi(midi_bytes([note_track(notes[:100])])).tracks[0].notes) == 100
    meters = [mido.MetaMessage("time_signature", numerator=3 + i % 2, denominator=4, time=480) for i in range(11)]
    with pytest.raises(MidiReadError, match="more than 10 tempo and meter changes"):
        read_midi(midi_bytes([meters, note_track(notes[:8])]))


def test_oversized_file_is_refused_before_parsing(tmp_path, tune_bytes):
    path = tmp_path / "big.mid"
    path.write_bytes(tune_bytes)
    with pytest.raises(MidiReadError, match="over the 100-byte limit"):
        read_midi(path, max_file_bytes=100)


def test_tempo_and_meter_changes_mid_piece():
    score = read_midi(DATA / "tempo_meter_changes.mid")
    assert score.tempos == [(0.0, 90.0), (16.0, 140.0)]
    assert score.time_signatures == [(0.0, 4, 4), (16.0, 3, 4)]
    # Seconds follow the tempo map: 16 quarters at 90 qpm, then 4 at 140.
    assert score.quarters_to_seconds(20.0) == pytest.approx(16 * 60 / 90 + 4 * 60 / 140)
    pm = pretty_midi.PrettyMIDI(str(DATA / "tempo_meter_changes.mid"))
    starts = np.array([n.start for n in pm.instruments[0].notes])
    ours = score.quarters_to_seconds(np.array([n.start_quarters for n in score.tracks[0].notes]))
    np.testing.assert_allclose(ours, starts, atol=1e-4)


def test_type_2_file_reads_patterns_together():
    data = midi_bytes([note_track(scale_notes(2)), note_track(scale_notes(2, 48))], file_type=2)
    with pytest.warns(MidiRepairWarning, match="type-2"):
        score = read_midi(data)
    assert [t.notes[0].pitch for t in score.tracks] == [60, 48]
    assert all(t.notes[0].start_quarters == 0.0 for t in score.tracks)


def test_ticks_per_beat_of_one():
    notes = [(60 + i, float(i), float(i + 1)) for i in range(8)]
    score = read_midi(midi_bytes([note_track(notes, ticks_per_beat=1)], ticks_per_beat=1))
    assert score.ticks_per_quarter == 1
    expected = [(float(i), float(i + 1)) for i in range(8)]
    assert [(n.start_quarters, n.end_quarters) for n in score.tracks[0].notes] == expected


def test_smpte_division_is_a_clear_error(tune_bytes):
    smpte = tune_bytes[:12] + struct.pack(">H", 0xE728) + tune_bytes[14:]
    with pytest.raises(MidiReadError, match="SMPTE"):
        read_midi(smpte)


def test_score_to_midi_reads_back_in_pretty_midi_mido_and_music21():
    import music21

    notes = [Note(67, 100, 0.0, 1.5), Note(69, 100, 1.5, 2.0), Note(71, 90, 2.0, 3.0)]
    score = notes_to_score(notes, qpm=132.0, time_signature=(3, 4), program=73)
    data = score_to_midi(score)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert pm.instruments[0].program == 73
    expected = [(67, 0.0), (69, round(1.5 * 60 / 132, 4)), (71, round(2 * 60 / 132, 4))]
    assert [(n.pitch, round(n.start, 4)) for n in pm.instruments[0].notes] == expected
    assert pm.get_tempo_changes()[1][0] == pytest.approx(132.0, abs=1e-3)
    assert (pm.time_signature_changes[0].numerator, pm.time_signature_changes[0].denominator) == (3, 4)
    mf = mido.MidiFile(file=io.BytesIO(data))
    assert sum(1 for m in mf.tracks[1] if m.type == "note_on") == 3
    s = music21.converter.parseData(data, format="midi")
    m21_notes = list(s.recurse().notes)
    assert [n.pitch.midi for n in m21_notes] == [67, 69, 71]
    assert [float(n.quarterLength) for n in m21_notes] == [1.5, 0.5, 1.0]
    assert s.recurse().getElementsByClass("TimeSignature")[0].ratioString == "3/4"
    assert s.metronomeMarkBoundaries()[0][2].number == pytest.approx(132.0, abs=0.01)


def test_score_round_trip_keeps_drums_and_programs():
    score = Score(
        tracks=[Track([Note(60, 80, 0, 1)], program=40), Track([Note(36, 100, 0, 0.25)], is_drum=True)],
        tempos=[(0.0, 75.0)],
        time_signatures=[(0.0, 6, 8)],
    )
    back = read_midi(score_to_midi(score))
    assert [(t.program, t.is_drum) for t in back.tracks] == [(40, False), (0, True)]
    assert back.tempos == [(0.0, 75.0)] and back.time_signatures == [(0.0, 6, 8)]
    assert back.tracks[1].notes == [Note(36, 100, 0.0, 0.25)]


def test_writer_refuses_values_midi_cannot_hold_and_replaces_unencodable_names():
    good = Note(60, 90, 0.0, 1.0)
    for bad, message in (
        (notes_to_score([Note(128, 90, 0, 1)]), "notes need pitch in"),
        (notes_to_score([Note(60, 0, 0, 1)]), "velocity in"),
        (notes_to_score([good], time_signature=(3, 6)), "time signature must be"),
        (notes_to_score([good], program=128), "`program` must be"),
        (notes_to_score([good], qpm=0), r"tempo must be in \[3.58, 60000000\] qpm"),
        (notes_to_score([good], qpm=2), r"tempo must be in \[3.58, 60000000\] qpm"),
    ):
        with pytest.raises(MelodyRNNError, match=message):
            score_to_midi(bad)
    back = read_midi(score_to_midi(notes_to_score([good], name="Ōmagari reel")))
    assert back.tracks[0].name == "?magari reel" and back.tracks[0].notes == [good]


@pytest.mark.parametrize("numerator, log2_denominator", [(0, 2), (4, 255), (4, 15), (65, 2)])
def test_unusable_time_signatures_are_repaired_not_looped_on(tune_bytes, numerator, log2_denominator):
    # A 0/4 bar has no length, and 4/2**255 almost none: bar-line loops over them would never end.
    usable = bytes([0xFF, 0x58, 0x04, 4, 2])
    assert tune_bytes.count(usable) == 1
    data = tune_bytes.replace(usable, bytes([0xFF, 0x58, 0x04, numerator, log2_denominator]))
    with pytest.warns(MidiRepairWarning, match="ignored 1 unusable time signatures"):
        score = read_midi(data, name="odd-meter.mid")
    assert score.time_signatures == [(0.0, 4, 4)]
    assert any("unusable time signature" in r for r in score.repairs)
    assert len(midi_to_melodies(data)[0]) == 8 * 16


def test_the_slowest_and_fastest_tempos_midi_holds_round_trip():
    for tempo in (0xFFFFFF, 1):
        data = midi_bytes([[mido.MetaMessage("set_tempo", tempo=tempo, time=0)], note_track(scale_notes(1))])
        score = read_midi(data)
        again = read_midi(score_to_midi(score))  # the rounded qpm must not fall outside MIDI's range
        assert again.tempos == score.tempos and score.tempos[0][1] == round(60_000_000 / tempo, 3)
