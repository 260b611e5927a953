"""chords: Harte labels (parse, write, transpose) and chords read from the accompaniment of real MIDI files."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest
from conftest import midi_bytes, note_track, scale_notes

from melodyrnn.chords import (
    QUALITY_TONES,
    ROOT_NAMES,
    VOCABULARY,
    Chord,
    canonical_label,
    chord_arrays_problem,
    chords_to_arrays,
    format_label,
    parse_label,
    score_to_chords,
    scores_to_chords,
    slice_changes,
    transpose_label,
)
from melodyrnn.errors import ChordLabelError, MelodyRNNError
from melodyrnn.midi_io import read_midi

# (root pitch class, quality) per bar, and the chord tones voiced around middle C with the root in the bass.
PROGRESSION = [(0, "maj"), (5, "maj"), (7, "7"), (9, "min"), (2, "min7"), (7, "maj"), (0, "maj"), (0, "maj")]
EXPECTED = (
    (0.0, "C:maj"), (4.0, "F:maj"), (8.0, "G:7"), (12.0, "A:min"), (16.0, "D:min7"), (20.0, "G:maj"),
    (24.0, "C:maj"), (31.9, "N"),
)  # fmt: skip


def _tones(root: int, quality: str) -> list[int]:
    return [60 + (root + i) % 12 - (12 if (root + i) % 12 > 7 else 0) for i in QUALITY_TONES[quality]]


def _chord_track_notes(progression=PROGRESSION, bar_quarters=4.0):
    """Block chords, one per bar, struck on every beat, the root an octave or two down in the bass."""
    notes = []
    for bar, (root, quality) in enumerate(progression):
        for beat in range(int(bar_quarters)):
            start = bar * bar_quarters + beat
            notes += [(p, start, start + 0.9) for p in [36 + root, *_tones(root, quality)]]
    return notes


def _melody_and(accompaniment, **kwargs):
    return read_midi(midi_bytes([note_track(scale_notes(8, 72)), note_track(accompaniment, channel=1, **kwargs)]))


def test_every_vocabulary_label_round_trips_and_reads_as_mir_eval_reads_it():
    for quality in VOCABULARY:
        for root, name in enumerate(ROOT_NAMES):
            assert parse_label(f"{name}:{quality}") == Chord(root, quality)
            for bass in sorted({0, *QUALITY_TONES[quality][1:]}):
                chord = Chord(root, quality, bass)
                label = format_label(chord)
                assert parse_label(label) == chord and canonical_label(label) == label
                mir_root, bitmap, mir_bass = mir_eval.chord.encode(label)
                assert mir_root == root and mir_bass == bass
                assert np.flatnonzero(bitmap).tolist() == sorted(QUALITY_TONES[quality])
    assert format_label(None) == "N" and parse_label("N") is None


@pytest.mark.parametrize(
    "label, chord",
    [
        ("G:7/3", Chord(7, "7", 4)),
        ("Db:maj", Chord(1, "maj", 0)),
        ("C", Chord(0, "maj", 0)),
        ("A:min/b3", Chord(9, "min", 3)),
        ("B#:dim7", Chord(0, "dim7", 0)),
        ("Cb:hdim7", Chord(11, "hdim7", 0)),
        ("E:maj6", Chord(4, "maj6", 0)),
        ("F:aug/#5", Chord(5, "aug", 8)),
    ],
)
def test_labels_parse_as_harte_syntax(label, chord):
    assert parse_label(label) == chord
    assert parse_label(format_label(chord)) == chord


@pytest.mark.parametrize(
    "label, match",
    [
        ("H:maj", "bad chord label 'H:maj': expected Harte syntax"),
        ("C:major", "bad chord label 'C:major': unknown quality 'major'"),
        ("C:maj/15", r"bad chord label 'C:maj/15': the bass degree must be 1-13"),
        ("C:(1,3,5)", r"bad chord label 'C:\(1,3,5\)'"),
        ("", "bad chord label ''"),
        ("X", "bad chord label 'X'"),
        (7, "a chord label must be a string, got int"),
    ],
)
def test_a_bad_label_raises_a_clear_error(label, match):
    with pytest.raises(ChordLabelError, match=match):
        parse_label(label)
    assert issubclass(ChordLabelError, MelodyRNNError) and issubclass(ChordLabelError, ValueError)


def test_transposing_a_label_moves_its_root_and_keeps_its_bass_degree():
    assert transpose_label("G:7/3", 2) == "A:7/3"
    assert transpose_label("C:maj", -1) == "B:maj"
    assert transpose_label("Bb:min7", 12) == "Bb:min7"
    assert transpose_label("N", 5) == "N"
    with pytest.raises(ChordLabelError, match="'Q'"):
        transpose_label("Q", 1)


def test_slice_changes_keeps_the_chord_in_force_rebased():
    changes = ((0, "C:maj"), (16, "G:maj"), (32, "N"))
    assert slice_changes(changes, 8, 40) == ((0, "C:maj"), (8, "G:maj"), (24, "N"))
    assert slice_changes(changes, 16, 32) == ((0, "G:maj"),)
    assert slice_changes((), 0, 10) == ()


def test_chords_from_a_chord_track():
    score = _melody_and(_chord_track_notes(), program=24)
    assert score_to_chords(score, exclude=[0]) == EXPECTED


def test_chords_from_a_piano_part_with_passing_notes():
    # One piano track: a bass note on each downbeat, the chord on beats 2-4 and, on beat 4 of every bar, an
    # eighth-note passing tone a step above the chord's top note: the chord must not flip.
    notes = []
    for bar, (root, quality) in enumerate(PROGRESSION):
        start = bar * 4.0
        notes.append((36 + root, start, start + 2.0))
        for beat in (1, 2, 3):
            notes += [(p, start + beat, start + beat + 0.9) for p in _tones(root, quality)]
        top = max(_tones(root, quality))
        notes.append((top + 2, start + 3.5, start + 3.9))
    score = _melody_and(notes, program=0)
    assert score_to_chords(score, exclude=[0]) == EXPECTED


def test_nothing_playing_is_no_chord_and_no_accompaniment_is_no_chords():
    # The chord track rests in bars 3-4: "N" there, and the chords pick up again after.
    notes = [n for n in _chord_track_notes() if not 8.0 <= n[1] < 16.0]
    changes = score_to_chords(_melody_and(notes), exclude=[0])
    assert changes == (
        (0.0, "C:maj"), (4.0, "F:maj"), (8.0, "N"), (16.0, "D:min7"), (20.0, "G:maj"), (24.0, "C:maj"), (31.9, "N")
    )  # fmt: skip
    melody_only = read_midi(midi_bytes([note_track(scale_notes(8))]))
    assert score_to_chords(melody_only, exclude=[0]) == ()
    # A lone bass line names no chord: never a guessed progression.
    bass_only = [(36 + root, bar * 4.0 + beat, bar * 4.0 + beat + 1) for bar, (root, _) in enumerate(PROGRESSION)
                 for beat in range(4)]  # fmt: skip
    assert score_to_chords(_melody_and(bass_only, program=33), exclude=[0]) == ()
    drums = read_midi(midi_bytes([note_track(scale_notes(8)), note_track(_chord_track_notes(), channel=9)]))
    assert score_to_chords(drums, exclude=[0]) == ()


def test_the_bass_gives_inversions():
    # C major over E, then G7 over B: the bass holds the third.
    notes = []
    for bar, (root, quality, bass) in enumerate([(0, "maj", 4), (7, "7", 4), (0, "maj", 0), (0, "maj", 0)]):
        for beat in range(4):
            start = bar * 4.0 + beat
            notes += [(p, start, start + 1.0) for p in [36 + (root + bass) % 12, *_tones(root, quality)]]
    changes = score_to_chords(_melody_and(notes), exclude=[0])
    assert changes == ((0.0, "C:maj/3"), (4.0, "G:7/3"), (8.0, "C:maj"), (16.0, "N"))


def test_compound_meters_read_by_dotted_quarter_beats():
    six_eight = [(0.0, 6, 8)]
    notes = _chord_track_notes(PROGRESSION[:4], bar_quarters=3.0)
    score = _melody_and(notes)
    score.time_signatures = six_eight
    assert [label for _, label in score_to_chords(score, exclude=[0])] == ["C:maj", "F:maj", "G:7", "A:min", "N"]


def test_scores_read_together_give_each_its_own_chords():
    # Recognition of scores of different lengths read together changes no score's chords,
    # and a score with no accompaniment or no evidence stays chordless among the others.
    long = _melody_and(_chord_track_notes() + [(n[0], n[1] + 32.0, n[2] + 32.0) for n in _chord_track_notes()])
    short = _melody_and(_chord_track_notes(PROGRESSION[:3]), program=24)
    melody_only = read_midi(midi_bytes([note_track(scale_notes(8))]))
    bass_only = _melody_and([(36 + root, bar * 4.0, bar * 4.0 + 4) for bar, (root, _) in enumerate(PROGRESSION)])
    requests = [
        (short, [0]),
        (melody_only, [0]),
        (long, [0]),
        (bass_only, [0]),
        (_melody_and(_chord_track_notes()), [0]),
    ]
    together = scores_to_chords(requests)
    assert together == [score_to_chords(score, exclude) for score, exclude in requests]
    assert together[4] == EXPECTED and together[1] == together[3] == ()
    assert [label for _, label in together[0]] == ["C:maj", "F:maj", "G:7", "N"]


def test_chord_arrays_round_trip_and_report_what_is_wrong():
    per_melody = [((0, "C:maj"), (16, "G:7")), (), ((0, "N"), (4, "C:maj"))]
    offsets, steps, ids, labels = chords_to_arrays(per_melody)
    assert offsets.tolist() == [0, 2, 2, 4] and labels == ["C:maj", "G:7", "N"]
    lengths = np.array([32, 8, 8])
    assert chord_arrays_problem(offsets, steps, ids, labels, lengths) is None
    assert "rise within each melody" in chord_arrays_problem(offsets, steps[::-1].copy(), ids, labels, lengths)
    assert "lie inside" in chord_arrays_problem(offsets, steps, ids, labels, np.array([8, 8, 8]))
    assert "point past" in chord_arrays_problem(offsets, steps, ids + 5, labels, lengths)
    assert "bad chord label 'Z'" in chord_arrays_problem(offsets, steps, ids, ["C:maj", "G:7", "Z"], lengths)
    assert "offsets do not match" in chord_arrays_problem(offsets[:-1], steps, ids, labels, lengths)


def test_an_arpeggio_two_tones_a_beat_adds_up_to_its_chords():
    # A monophonic broken chord in eighths (the bass, then the chord's tones up from the root and down again): no
    # beat holds a whole chord.
    notes = []
    for bar, (root, quality) in enumerate(PROGRESSION):
        tones = [48 + root + i for i in QUALITY_TONES[quality]]
        cycle = [36 + root, *tones, *tones[-2:0:-1]]
        notes += [(cycle[k % len(cycle)], bar * 4.0 + k / 2, bar * 4.0 + (k + 1) / 2) for k in range(8)]
    changes = score_to_chords(_melody_and(notes, program=46), exclude=[0])
    assert changes == (*EXPECTED[:-1], (32.0, "N"))  # the last eighth ends on the bar line
