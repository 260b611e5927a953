"""The fast reader (symusic, vouched for by midi_scan) against the exact mido reader, file by file.

Every file must give the same `Score` — notes, programs, names, maps, repairs — or the same error. The odd
files are built byte by byte, so each says exactly which MIDI oddity it holds.
"""

from __future__ import annotations

import random
import struct
import warnings
from pathlib import Path

import mido
import numpy as np
import pytest
from conftest import midi_bytes, note_track, scale_notes

import melodyrnn.midi_io as midi_io
from melodyrnn import MidiReadError, read_midi

DATA = Path(__file__).parent / "data"
TRAINING = Path(__file__).parents[1] / "training_data" / "midi"


def _mido_read(data: bytes, name: str = "<bytes>"):
    """The reader before symusic: mido's parse and the per-message loop (kept as the exact fallback)."""
    repairs: list[str] = []
    data, file_type, _ = midi_io._checked_header(data, name, repairs)
    midi = midi_io._parse_with_mido(data, name, repairs)
    return midi_io._midi_to_score(midi, file_type, name, repairs, midi_io.MAX_QUARTERS)


def _outcome(reader, data: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return reader(data)
        except MidiReadError as err:
            return f"MidiReadError: {err}"


def _fast_path_taken(data: bytes) -> bool:
    repairs: list[str] = []
    data, file_type, n_tracks = midi_io._checked_header(data, "<bytes>", repairs)
    return midi_io._read_fast(data, file_type, n_tracks, "<bytes>", repairs, midi_io.MAX_QUARTERS) is not None


def _assert_same(data: bytes) -> None:
    new, old = _outcome(read_midi, data), _outcome(_mido_read, data)
    assert new == old


def _raw(*tracks: bytes, file_type: int = 1, tpq: int = 96, header_length: int = 6) -> bytes:
    """A MIDI file from raw track bodies (delta-time + event bytes, written by hand)."""
    header = b"MThd" + struct.pack(">IHHH", header_length, file_type, len(tracks), tpq) + bytes(header_length - 6)
    return header + b"".join(b"MTrk" + struct.pack(">I", len(t)) + t for t in tracks)


EOT = b"\x00\xff\x2f\x00"
# Two quarter notes on channel 0, the second in running status: C4 then D4, note-offs as note-on velocity 0.
TUNE = b"\x00\x90\x3c\x50\x60\x3c\x00\x00\x3e\x50\x60\x3e\x00"


def test_every_file_in_tests_data_reads_the_same():
    for path in sorted(DATA.glob("*.mid")):
        _assert_same(path.read_bytes())


def test_a_sample_of_training_data_reads_the_same_and_fast():
    paths = sorted(TRAINING.rglob("*.mid"))
    for path in random.Random(0).sample(paths, 150):
        data = path.read_bytes()
        _assert_same(data)
        assert _fast_path_taken(data), path


def test_song_sized_multi_track_files_read_the_same_and_fast():
    conductor = [mido.MetaMessage("set_tempo", tempo=500_000), mido.MetaMessage("key_signature", key="Bb")]
    conductor.append(mido.MetaMessage("time_signature", numerator=6, denominator=8, time=960))
    parts = [note_track(scale_notes(40, 36 + 6 * c), channel=c, program=10 * c) for c in (0, 1, 2, 9, 10)]
    parts[1] = [mido.MetaMessage("track_name", name="Bäss")] + parts[1]
    chords = [(p + d, s, e) for p, s, e in scale_notes(40, 55) for d in (0, 4, 7)]  # overlapping chord tones
    data = midi_bytes([conductor, *parts, note_track(chords, channel=3, program=48)])
    _assert_same(data)
    assert _fast_path_taken(data)
    score = read_midi(data)
    assert [t.name for t in score.tracks][:3] == ["track 1", "Bäss", "track 3"]
    assert [t.program for t in score.tracks] == [0, 10, 20, 90, 100, 48] and score.tracks[3].is_drum


def test_one_track_holding_several_channels_splits_like_before():
    merged = mido.merge_tracks([note_track(scale_notes(4, 60 + 5 * c), channel=c, program=c + 1) for c in (3, 1, 9)])
    data = midi_bytes([merged], file_type=0)
    _assert_same(data)
    assert _fast_path_taken(data)
    assert [(t.program, t.is_drum) for t in read_midi(data).tracks] == [(2, False), (4, False), (10, True)]


@pytest.mark.parametrize(
    "body, fast",
    [
        (TUNE + EOT, True),
        (b"\x00\xf0\x05\x7e\x7f\x09\x01\xf7" + TUNE + EOT, True),  # a GM-reset sysex first
        (b"\x00\xff\x03\x00\x00\xff\x03\x02Ab" + TUNE + EOT, True),  # the first non-empty name counts
        (b"\x00\xff\x59\x02\xfd\x01" + TUNE + EOT, True),  # key signature: 3 flats, minor
        (b"\x00\x90\x3c\x50\x00\xff\x01\x01x\x60\x3c\x00" + EOT, True),  # running status over a meta event
        (b"\x00\xc0\x05\x00\x06" + TUNE + EOT, False),  # running status after a program change (1 data byte)
        (b"\x00\x3c\x50" + EOT, False),  # running status with no status before it
        (b"\x00\xf0\x02\x01\x80" + TUNE + EOT, False),  # a sysex byte above 127
        (b"\x00\x90\x3c\xd0\x60\x3c\x00" + EOT, False),  # a data byte above 127: clipped
        (b"\x00\xff\x59\x02\x09\x00" + TUNE + EOT, False),  # a key with 9 sharps: mido refuses it
        (b"\x00\xff\x54\x05\x60\x00\x00\x00\x00" + TUNE + EOT, False),  # SMPTE offset: left to mido
        (b"\x00\xff\x51\x02\x07\xa1" + TUNE + EOT, False),  # a tempo too short to decode
        (b"\x00\xf2\x00\x00" + TUNE + EOT, False),  # a system message inside a file
        (b"\x80\x80\x80\x80\x00\x90\x3c\x50\x60\x3c\x00" + EOT, False),  # a five-byte number
        (TUNE + b"\x00\xff\x2f\x05\x00", False),  # the last event runs past the chunk's end
        (b"\x00\x90\x3c\x50\x00\x3c\x00\x00\x3e\x50\x60\x3e\x00" + EOT, False),  # zero-length note
        (b"\x00\x90\x3c\x50\x30\x3c\x40\x30\x3c\x00\x30\x3c\x00" + EOT, False),  # re-struck, stray off
        (b"\x00\x90\x3c\x50\x60\x3e\x00\x00\x3c\x00" + EOT, False),  # an off without its on
        (b"\x00\x90\x3c\x50\x60\x3e\x50\x60\x3e\x00" + EOT, False),  # C4 never switched off
        (b"\x00\x90\x3c\x50\x30\xc0\x07\x30\x90\x3c\x00" + EOT, False),  # program change mid-note
        (b"\x00\xff\x51\x03\x00\x00\x00\x00\xff\x58\x04\x00\x02\x18\x08" + TUNE + EOT, True),  # tempo 0, 0/4
    ],
)
def test_hand_written_tracks_read_the_same(body, fast):
    data = _raw(b"\x00\xff\x03\x05tempo" + EOT, body)
    _assert_same(data)
    assert _fast_path_taken(data) == fast


def test_files_whose_chunks_are_odd_read_the_same():
    track = TUNE + EOT
    _assert_same(_raw(track, header_length=8))  # a longer header than 6 bytes
    _assert_same(_raw(track, track, file_type=2))  # type 2
    _assert_same(_raw(track)[: -len(track) - 8] + b"MTrx" + struct.pack(">I", len(track)) + track)  # not MTrk
    _assert_same(_raw(track) + b"XTRA" + struct.pack(">I", 2) + b"\x00\x00")  # a chunk after the tracks
    _assert_same(_raw(track, b""))  # an empty track chunk
    lying = _raw(track)
    _assert_same(lying[:10] + struct.pack(">H", 3) + lying[12:])  # header announces more tracks than exist


def test_caps_refuse_the_same_way(monkeypatch):
    far = b"\x00\x90\x3c\x50" + b"\x8f\xff\xff\x7f\x3c\x00" * 40 + EOT  # each delta is 2**28 - 1 ticks
    _assert_same(_raw(far))
    monkeypatch.setattr(midi_io, "MAX_NOTES", 3)
    monkeypatch.setattr(midi_io, "MAX_MAP_EVENTS", 1)
    _assert_same(_raw(TUNE + TUNE + EOT))
    tempos = b"\x00\xff\x51\x03\x07\xa1\x20" * 2
    _assert_same(_raw(tempos + EOT, TUNE + EOT))


def test_tracks_sharing_a_channel_and_files_without_tracks_read_the_same_and_fast():
    for data in (
        _raw(TUNE + EOT, TUNE + EOT, TUNE + EOT),  # one channel, three tracks
        _raw(b"\x00\xc0\x05" + TUNE + EOT, TUNE + EOT),  # a program change holds in its own track only
        _raw(b"\x00\x9f\x3c\x50\x60\x8f\x3c\x00\x00\xcf\x10" + EOT),  # channel 16; a program change after the notes
        _raw(TUNE + EOT, TUNE + EOT, file_type=0),  # type 0 with two tracks
        _raw(TUNE + EOT)[:10] + struct.pack(">H", 0) + _raw(TUNE + EOT)[12:],  # the header announces no track
    ):
        _assert_same(data)
        assert _fast_path_taken(data)


def test_chords_written_top_note_first_on_several_channels_read_the_same_and_fast():
    chords = [[(p + d, s, e) for p, s, e in scale_notes(6, 55) for d in (12, 7, 4, 0)]]  # each chord top down
    chords.append([(p - d, s + 0.5, e) for p, s, e in scale_notes(6, 48) for d in (0, 5, 3)])
    merged = mido.merge_tracks([note_track(c, channel=ch, program=ch) for ch, c in zip((5, 2), chords)])
    for data in (midi_bytes([merged], file_type=0), midi_bytes([note_track(chords[0], channel=9)])):
        _assert_same(data)
        assert _fast_path_taken(data)
    tracks = read_midi(midi_bytes([merged], file_type=0)).tracks
    assert [t.program for t in tracks] == [2, 5]
    for track in tracks:
        a = track.arrays
        assert np.all(np.diff(a.start_quarters * 128 + a.pitches) > 0)  # sorted by start, then pitch


def test_clusters_of_hundreds_of_notes_starting_together_read_the_same_and_fast():
    # Top down, on two channels of one track: more notes than one note-on moves past, sorted once complete.
    cluster = [(p, s, s + 1.0) for s in (0.0, 2.0) for p in range(120, 20, -1)]
    merged = mido.merge_tracks([note_track(cluster, channel=ch) for ch in (3, 0)])
    data = midi_bytes([merged], file_type=0)
    _assert_same(data)
    assert _fast_path_taken(data)
    assert [t.arrays.pitches[:3].tolist() for t in read_midi(data).tracks] == [[21, 22, 23]] * 2


def test_files_holding_every_kind_of_event_symusic_keeps_read_the_same_and_fast():
    # symusic keeps controls, pitch bends, pedals, lyrics, markers, keys: the fast path reads past them all.
    extras = [mido.MetaMessage("marker", text="verse"), mido.MetaMessage("key_signature", key="E")]
    extras += [mido.MetaMessage("lyrics", text="la"), mido.MetaMessage("text", text="é")]
    extras += [
        mido.Message("control_change", control=7, value=90),
        mido.Message("control_change", control=64, value=127),
    ]
    extras += [mido.Message("pitchwheel", pitch=-300), mido.Message("control_change", control=64, value=0, time=240)]
    extras += [mido.MetaMessage("set_tempo", tempo=400_000, time=240), mido.MetaMessage("marker", text="")]
    data = midi_bytes([extras, extras + note_track(scale_notes(4)), note_track(scale_notes(4, 50), channel=1)])
    _assert_same(data)
    assert _fast_path_taken(data)
