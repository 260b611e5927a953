"""The backing track: chords in a pattern and a bass on the roots, each on its own channel and program, lined up
with the melody; nothing invented for a melody without chords."""

from __future__ import annotations

import io

import mido
import numpy as np
import pytest

from melodyrnn.audio import render_midi
from melodyrnn.backing import BACKING_STYLES, backing_tracks, has_chords, melody_to_midi_with_backing
from melodyrnn.encoding import Melody
from melodyrnn.errors import MelodyRNNError, NotationError
from melodyrnn.midi_io import read_midi


def waltz_tune() -> Melody:
    """Two bars of 3/4 (12 steps a bar): C major, then G7 from the second bar."""
    notes = [(72, 0, 4), (76, 4, 8), (79, 8, 12), (74, 12, 24)]
    return Melody.from_notes(notes, num_steps=24, time_signatures=((0, 3, 4),), chords=((0, "C:maj"), (12, "G:7")))


def notes_of(track) -> list[tuple[int, float, float]]:
    return [(n.pitch, n.start_quarters, n.end_quarters) for n in track.notes]


def test_block_chords_and_bass_sit_on_their_own_channels_and_programs():
    data = melody_to_midi_with_backing(waltz_tune(), backing="block", chord_program=4, bass_program=33)
    channels = {}
    for track in mido.MidiFile(file=io.BytesIO(data)).tracks:
        for msg in track:
            if msg.type == "program_change":
                channels[msg.channel] = msg.program
    assert channels == {0: 0, 1: 4, 2: 33}
    melody, chords, bass = read_midi(data).tracks
    assert notes_of(melody)[0] == (72, 0.0, 1.0)
    assert sorted(notes_of(chords)) == [
        (48, 0.0, 3.0), (52, 0.0, 3.0), (55, 0.0, 3.0), (55, 3.0, 6.0), (59, 3.0, 6.0), (62, 3.0, 6.0), (65, 3.0, 6.0),
    ]  # fmt: skip
    assert notes_of(bass) == [(36, 0.0, 3.0), (43, 3.0, 6.0)]


def test_waltz_puts_the_bass_on_the_downbeat_and_the_chord_on_the_other_beats():
    chords, bass = backing_tracks(waltz_tune(), "waltz")
    assert notes_of(bass) == [(36, 0.0, 1.0), (43, 3.0, 4.0)]
    assert sorted({n.start_quarters for n in chords.notes}) == [1.0, 2.0, 4.0, 5.0]
    four_four = Melody.from_notes([(60, 0, 16)], num_steps=16, chords=((0, "A:min"),))
    chords, bass = backing_tracks(four_four, "waltz")
    assert notes_of(bass) == [(45, 0.0, 1.0), (40, 2.0, 3.0)]  # root, then fifth: oom-pah oom-pah
    assert sorted({n.start_quarters for n in chords.notes}) == [1.0, 3.0]


def test_arpeggio_runs_the_chord_tones_in_eighths_and_a_bar_of_six_eight_in_two_beats():
    chords, bass = backing_tracks(waltz_tune(), "arpeggio")
    first_bar = [n.pitch for n in chords.notes if n.start_quarters < 3]
    assert first_bar == [48, 52, 55, 60, 55, 52]
    assert all(n.end_quarters - n.start_quarters == 0.5 for n in chords.notes)
    six_eight = Melody.from_notes([(60, 0, 12)], num_steps=12, time_signatures=((0, 6, 8),), chords=((0, "F:maj"),))
    chords, bass = backing_tracks(six_eight, "waltz")
    assert notes_of(bass) == [(41, 0.0, 1.5)] and {n.start_quarters for n in chords.notes} == {1.5}


def test_a_melody_without_chords_gets_no_backing_and_rests_are_not_played():
    plain = Melody.from_notes([(60, 0, 4)], num_steps=16)
    assert not has_chords(plain) and backing_tracks(plain, "block") == []
    assert len(read_midi(melody_to_midi_with_backing(plain, backing="arpeggio")).tracks) == 1
    resting = Melody.from_notes([(60, 0, 16)], num_steps=16, chords=((0, "C:maj"), (8, "N")))
    chords, bass = backing_tracks(resting, "block")
    assert max(n.end_quarters for n in chords.notes + bass.notes) == 2.0
    assert backing_tracks(waltz_tune(), "none") == []


def test_bad_styles_and_programs_are_refused():
    with pytest.raises(NotationError, match="`backing` must be one of none, block, arpeggio, waltz, got 'polka'"):
        melody_to_midi_with_backing(waltz_tune(), backing="polka")
    with pytest.raises(MelodyRNNError, match="`bass_program` must be an integer in \\[0, 127\\]"):
        backing_tracks(waltz_tune(), "block", bass_program=200)
    assert BACKING_STYLES == ("none", "block", "arpeggio", "waltz")


def test_audio_renders_the_melody_and_its_backing_together():
    alone = render_midi(melody_to_midi_with_backing(waltz_tune(), backing="none"), backend="numpy")
    backed = render_midi(melody_to_midi_with_backing(waltz_tune(), backing="block"), backend="numpy")
    assert alone.duration_seconds == pytest.approx(backed.duration_seconds, abs=0.1)
    assert alone.wav != backed.wav
    samples = np.frombuffer(backed.wav[44:], np.int16)
    assert samples.size and np.abs(samples).max() > 0
