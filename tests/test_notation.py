"""MusicXML and ABC out, checked by programs nobody here wrote: music21 reads both back, abc2midi turns the ABC into
MIDI, MuseScore 3 engraves and plays the MusicXML; spelling in sharp and flat keys, pickups, ties, 6/8."""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path

import music21
import pytest

from melodyrnn.chords import parse_label
from melodyrnn.encoding import Melody
from melodyrnn.errors import MelodyRNNError, NotationError
from melodyrnn.lead_sheet import lay_out, resolve_key, split_value
from melodyrnn.midi_io import read_midi
from melodyrnn.notation import melody_to_abc, melody_to_musicxml, parse_formats, write_melody
from melodyrnn.sampling import write_melodies

# D major with a one-beat pickup, a dotted rhythm, a note tied over a bar line and a chord change under a held note.
D_MAJOR_NOTES = [(69, 12, 16), (62, 16, 20), (64, 20, 24), (66, 24, 30), (67, 30, 32), (69, 32, 40), (71, 40, 44)]
D_MAJOR_NOTES += [(73, 44, 52), (74, 52, 68)]
D_MAJOR_CHORDS = ((0, "D:maj"), (16, "A:7"), (40, "B:min"), (52, "D:maj/3"))


def d_major() -> Melody:
    return Melody.from_notes(D_MAJOR_NOTES, num_steps=68, chords=D_MAJOR_CHORDS, tempos=((0, 96.0),), program=73)


def eb_minor_six_eight() -> Melody:
    """Eb minor in 6/8 (Gb, Cb, Db in the scale; a D natural leading note), with a rest and a bar-crossing tie."""
    notes = [(63, 0, 6), (66, 6, 12), (70, 12, 18), (71, 18, 20), (70, 20, 24), (62, 24, 28), (63, 32, 44)]
    notes += [(66, 44, 54), (63, 54, 60)]
    return Melody.from_notes(notes, num_steps=72, time_signatures=((0, 6, 8),), chords=((0, "D#:min"), (24, "A#:7")))


def sounding(melody: Melody) -> list[tuple[int, Fraction, Fraction]]:
    """The melody's notes as ``(pitch, start, length)`` in quarters from its first note."""
    spq, notes = melody.steps_per_quarter, melody.notes()
    first = notes[0][1]
    return [(p, Fraction(s - first, spq), Fraction(e - s, spq)) for p, s, e in notes]


def music21_notes(score) -> list[tuple[int, Fraction, Fraction]]:
    notes = [n for n in score.stripTies().flatten().notes if not isinstance(n, music21.harmony.ChordSymbol)]
    first = Fraction(notes[0].offset)
    return [(n.pitch.midi, Fraction(n.offset) - first, Fraction(n.quarterLength)) for n in notes]


def music21_chords(score) -> list[tuple[Fraction, tuple[int, ...]]]:
    """Chord symbols as (offset from the first note, sorted pitch classes); () for a no-chord symbol."""
    flat = score.flatten()
    first = Fraction(next(n for n in flat.notes if not isinstance(n, music21.harmony.ChordSymbol)).offset)
    return [
        (Fraction(c.offset) - first, tuple(sorted({p.pitchClass for p in c.pitches})))
        for c in flat.getElementsByClass(music21.harmony.ChordSymbol)
    ]


def expected_chords(melody: Melody) -> list[tuple[Fraction, tuple[int, ...]]]:
    spq, first = melody.steps_per_quarter, melody.notes()[0][1]
    out = []
    for step, label in melody.chords:
        chord = parse_label(label)
        out.append((Fraction(max(step, first) - first, spq), tuple(sorted(chord.pitch_classes)) if chord else ()))
    return out


def spelled(score) -> list[str]:
    return [n.pitch.name for n in score.stripTies().flatten().notes if not isinstance(n, music21.harmony.ChordSymbol)]


# --------------------------------------------------------------------------------------------------
# music21 reads back what was written


@pytest.mark.parametrize("build", [d_major, eb_minor_six_eight])
def test_musicxml_reads_back_in_music21_with_the_same_notes_meter_key_and_chords(build, tmp_path):
    melody = build()
    path = tmp_path / "tune.musicxml"
    text = melody_to_musicxml(melody, path, title="A & B")
    assert path.read_text() == text
    score = music21.converter.parse(str(path))
    assert music21_notes(score) == sounding(melody)
    assert music21_chords(score) == expected_chords(melody)
    meter = score.flatten().getElementsByClass(music21.meter.TimeSignature)[0]
    assert (meter.numerator, meter.denominator) == melody.time_signature
    key = score.flatten().getElementsByClass(music21.key.KeySignature)[0]
    assert key.sharps == (2 if build is d_major else -6)
    assert score.metadata.title == "A & B"
    assert "<time-modification>" not in text  # no tuplets, in 6/8 too


@pytest.mark.parametrize("build", [d_major, eb_minor_six_eight])
def test_abc_reads_back_in_music21_with_the_same_notes_meter_key_and_chords(build, tmp_path):
    melody = build()
    text = melody_to_abc(melody, tmp_path / "tune.abc", title="Tune")
    score = music21.converter.parse(str(tmp_path / "tune.abc"))
    assert music21_notes(score) == sounding(melody)
    assert music21_chords(score) == expected_chords(melody)
    meter = score.flatten().getElementsByClass(music21.meter.TimeSignature)[0]
    assert (meter.numerator, meter.denominator) == melody.time_signature
    header = dict(line.split(":", 1) for line in text.splitlines() if line[1:2] == ":")
    assert header["X"] == "1" and header["T"] == "Tune" and header["L"] == "1/8"
    assert header["M"] == "{}/{}".format(*melody.time_signature) and header["Q"] == f"1/4={melody.qpm:g}"
    assert header["K"] == ("D" if build is d_major else "Ebm")
    assert text.rstrip().endswith("|]") and "(3" not in text


def test_notes_are_spelled_in_the_key_sharp_or_flat(tmp_path):
    d = music21.converter.parse(melody_to_musicxml(d_major(), key="D major"), format="musicxml")
    assert spelled(d) == ["A", "D", "E", "F#", "G", "A", "B", "C#", "D"]
    eb = music21.converter.parse(melody_to_musicxml(eb_minor_six_eight()), format="musicxml")
    assert spelled(eb) == ["E-", "G-", "B-", "C-", "B-", "D", "E-", "G-", "E-"]
    # in ABC the key signature carries F# and C#: no accidental is written for them, Gb/Cb in Eb minor likewise
    assert "^" not in melody_to_abc(d_major(), key="D major").split("K:D", 1)[1]
    body = melody_to_abc(eb_minor_six_eight()).split("K:Ebm", 1)[1]
    assert "_" not in body and "=D" in body  # the leading note D natural needs its natural sign
    # chord roots follow the key too: D#:min is Ebm in Eb minor
    assert '"Ebm"' in body and '"Bb7"' in body


def test_key_is_estimated_from_the_notes_when_not_given():
    assert resolve_key(d_major()).name == "D major"
    assert resolve_key(eb_minor_six_eight()).name == "Eb minor"
    assert resolve_key(d_major(), "D dorian").fifths == 0 and resolve_key(d_major(), "F# major").fifths == 6
    assert resolve_key(d_major(), "D# major").tonic == "Eb"  # nine sharps are written as three flats
    with pytest.raises(MelodyRNNError, match="unknown scale"):
        melody_to_abc(d_major(), key="D majestic")


def test_a_melody_that_opens_off_the_beat_gets_a_pickup_bar(tmp_path):
    sheet = lay_out(d_major())
    assert sheet.bars[0].pickup and sheet.bars[0].quarters == 1 and not sheet.bars[1].pickup
    xml = melody_to_musicxml(d_major())
    assert '<measure number="0" implicit="yes">' in xml
    score = music21.converter.parse(xml, format="musicxml")
    assert score.parts[0].getElementsByClass(music21.stream.Measure)[0].duration.quarterLength == 1
    # the pickup opens the first line, which then holds four whole bars
    assert melody_to_abc(d_major()).splitlines()[6] == '"D"A2 | "A7"D2 E2 F3G | A4 "Bm"B2 c2- | c2 "D/F#"d6- | d2 z6 |]'


def test_notes_are_tied_across_bar_lines_and_chord_changes():
    bars = lay_out(d_major()).bars
    # C#5 (steps 44-52) crosses the bar line at step 48: tied from bar 2 into bar 3
    assert [(i.pitch, i.tie_start) for i in bars[2].items][-1] == (73, True)
    assert (bars[3].items[0].pitch, bars[3].items[0].tie_stop) == (73, True)
    held = melody_to_abc(Melody.from_notes([(60, 0, 16)], num_steps=16, chords=((0, "C:maj"), (8, "F:maj"))))
    assert '"C"C4- "F"C4 |]' in held


def test_six_eight_is_written_in_dotted_beats_without_triplets():
    melody = Melody.from_notes([(66, 0, 6), (66, 6, 20), (71, 20, 24)], num_steps=24, time_signatures=((0, 6, 8),))
    body = melody_to_abc(melody, key="D major").split("K:D\n", 1)[1]
    assert body.strip() == "F3 F3- | F3- FB2 |]"  # a note held past the bar's middle is tied at it


def test_values_that_need_tuplets_are_refused_and_odd_lengths_are_tied():
    assert split_value(Fraction(5, 4)) == [1, Fraction(1, 4)]
    assert split_value(Fraction(7, 2)) == [Fraction(7, 2)]  # a double-dotted half
    triplets = Melody.from_notes([(60, 0, 1), (62, 1, 3)], num_steps=3, steps_per_quarter=3)
    with pytest.raises(NotationError, match="tuplets"):
        melody_to_musicxml(triplets)


def test_a_tune_book_numbers_its_tunes_and_music21_reads_each(tmp_path):
    text = melody_to_abc([d_major(), eb_minor_six_eight()], tmp_path / "book.abc", title="Reel")
    assert [line for line in text.splitlines() if line[:2] in ("X:", "T:")] == ["X:1", "T:Reel 1", "X:2", "T:Reel 2"]
    book = music21.converter.parse(str(tmp_path / "book.abc"))
    assert [music21_notes(s) for s in book.scores] == [sounding(d_major()), sounding(eb_minor_six_eight())]
    with pytest.raises(NotationError, match="one title per melody"):
        melody_to_abc([d_major(), d_major()], title=["only one"])
    with pytest.raises(NotationError, match="non-empty"):
        melody_to_abc([])


def test_a_melody_without_notes_or_chords_is_a_bar_of_rest():
    empty = Melody.from_notes([], num_steps=16)
    assert melody_to_abc(empty).splitlines()[-1] == "z8 |]"
    assert "<rest/>" in melody_to_musicxml(empty)


# --------------------------------------------------------------------------------------------------
# abc2midi and MuseScore 3


def _melody_notes_from_midi(path: Path) -> list[tuple[int, float, float]]:
    track = max(read_midi(path).tracks, key=lambda t: t.num_notes)
    first = track.notes[0].start_quarters
    return [(n.pitch, n.start_quarters - first, n.end_quarters - n.start_quarters) for n in track.notes]


def _close(got: list[tuple[int, float, float]], melody: Melody) -> bool:
    want = sounding(melody)
    return len(got) == len(want) and all(
        p == q and abs(s - float(t)) < 0.02 and abs(d - float(e)) < 0.02 for (p, s, d), (q, t, e) in zip(got, want)
    )


@pytest.mark.parametrize("build", [d_major, eb_minor_six_eight])
def test_abc2midi_plays_the_abc_with_the_same_pitches_and_durations(build, tmp_path):
    melody_to_abc(build(), tmp_path / "tune.abc")
    done = subprocess.run(
        ["abc2midi", str(tmp_path / "tune.abc"), "-NGUI", "-o", str(tmp_path / "tune.mid")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "rror" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "arning" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert _close(_melody_notes_from_midi(tmp_path / "tune.mid"), build())


@pytest.mark.slow
def test_musescore_engraves_the_musicxml_to_pdf_and_plays_the_same_notes(tmp_path):
    melody_to_musicxml(eb_minor_six_eight(), tmp_path / "tune.musicxml")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    for out in ("tune.pdf", "tune.mid"):
        done = subprocess.run(
            ["mscore3", "-o", str(tmp_path / out), str(tmp_path / "tune.musicxml")],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "tune.pdf").read_bytes()[:5] == b"%PDF-"
    assert _close(_melody_notes_from_midi(tmp_path / "tune.mid"), eb_minor_six_eight())


# --------------------------------------------------------------------------------------------------
# Files in several formats


def test_write_melody_writes_one_file_per_format(tmp_path):
    paths = write_melody(d_major(), tmp_path / "tune", "abc,mid,musicxml", backing="block", title="T")
    assert [p.name for p in paths] == ["tune.abc", "tune.mid", "tune.musicxml"]
    assert len(read_midi(paths[1]).tracks) == 3  # melody, chords, bass
    assert parse_formats(["MIDI", "xml", "mid"]) == ("mid", "musicxml")
    with pytest.raises(NotationError, match="unknown output format 'pdf'"):
        write_melody(d_major(), tmp_path / "x", "mid,pdf")
    with pytest.raises(NotationError, match="at least one"):
        parse_formats("")


def test_write_melodies_names_files_alike_and_returns_the_first_format(tmp_path):
    paths = write_melodies([d_major(), eb_minor_six_eight()], tmp_path / "out", format="musicxml,abc,mid")
    assert [p.name for p in paths] == ["melody_001.musicxml", "melody_002.musicxml"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"melody_00{i}.{ext}" for i in (1, 2) for ext in ("abc", "mid", "musicxml")
    ]
    assert "T:Melody 2" in (tmp_path / "out" / "melody_002.abc").read_text()
    with pytest.raises(NotationError, match="backing"):
        write_melodies([d_major()], tmp_path / "x", backing="polka")
