"""scores: MusicXML and ABC written here, read to the right notes, meters, tempos, parts and chord symbols; bad files
and bad tunes reported; the message when music21 is missing."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import zipfile
from collections import Counter

import pytest

from melodyrnn import ExtractionConfig, NoMelodyError, ScoreReadError, score_file_to_melodies
from melodyrnn.scores import chord_symbol_to_harte, read_scores, with_default_length

# A reel with a pickup, a repeat and quoted chords (one a slash chord): 4 bars played twice.
REEL = """X:1
T:Test reel
M:4/4
L:1/8
Q:1/4=132
K:D
A|:"D"d2fd "A7"cAce|"G"dBGB "D/F#"AFDF|"Em"EFGA "A7"BAGF|"D"D2F2 D3:|
"""
# Written from a note list so the expected pitches and starts are plain to read: (pitch, eighths).
REEL_PASS = [
    (74, 2), (78, 1), (74, 1), (73, 1), (69, 1), (73, 1), (76, 1),
    (74, 1), (71, 1), (67, 1), (71, 1), (69, 1), (66, 1), (62, 1), (66, 1),
    (64, 1), (66, 1), (67, 1), (69, 1), (71, 1), (69, 1), (67, 1), (66, 1),
    (62, 2), (66, 2), (62, 3),
]  # fmt: skip
JIG = """X:3
T:Jig without a default length
M:6/8
K:G
|:GAB dBG|ABA AGE|GAB dBd|e2d BAG:|
"""
BAD_TUNE = """X:2
T:Broken
M:4/4
L:1/0
K:C
abcd|
"""


def reel_notes(start: float) -> list[tuple[int, float, float]]:
    notes, t = [], start
    for pitch, eighths in REEL_PASS:
        notes.append((pitch, t, t + eighths / 2))
        t += eighths / 2
    return notes


def test_abc_tune_reads_notes_meter_tempo_pickup_repeats_and_chords():
    (score,) = read_scores(REEL.encode(), suffix=".abc", name="reel.abc").scores
    (track,) = score.tracks
    got = [(n.pitch, n.start_quarters, n.end_quarters) for n in track.notes]
    # The pickup ends on the first bar line (quarter 4); the second pass follows the short last bar (3.5 quarters).
    assert got == [(69, 3.5, 4.0), *reel_notes(4.0), *reel_notes(19.5)]
    assert score.time_signatures == [(0.0, 4, 4), (19.5, 4, 4)]  # bar lines re-laid where the repeat starts
    assert score.tempos == [(0.0, 132.0)]
    pass_chords = [(0.0, "D:maj"), (2.0, "A:7"), (4.0, "G:maj"), (6.0, "D:maj/3"), (8.0, "E:min"), (10.0, "A:7")]
    pass_chords.append((12.0, "D:maj"))
    assert score.chord_symbols == tuple((4.0 + q, c) for q, c in pass_chords) + tuple(
        (19.5 + q, c) for q, c in pass_chords
    )
    assert score.source == "reel.abc" and score.repairs == []


def test_abc_tune_book_gives_every_tune_and_reports_the_bad_one():
    book = read_scores(("%abc-2.1\n" + REEL + "\n" + BAD_TUNE + "\n" + JIG).encode(), suffix=".abc", name="b.abc")
    assert [s.source for s in book.scores] == ["b.abc X:1", "b.abc X:3"]
    assert book.skipped == [("b.abc X:2", "ZeroDivisionError: division by zero")]
    jig = book.scores[1]
    assert jig.time_signatures == [(0.0, 6, 8)]
    assert jig.tempos == [(0.0, 120.0)]  # no Q: field
    # No L: field: the standard's 1/8 under 6/8, and the repeat played twice.
    assert jig.tracks[0].num_notes == 2 * 23
    assert jig.tracks[0].notes[0].end_quarters == 0.5 and jig.tracks[0].notes[23].start_quarters == 12.0


def test_abc_default_length_follows_the_meter():
    assert "L:1/16\nK:C" in with_default_length("X:1\nM:2/4\nK:C\nabcd|\n")
    assert "L:1/8\nK:C" in with_default_length("X:1\nM:3/4\nK:C\nabcd|\n")
    assert with_default_length("X:1\nL:1/4\nM:2/4\nK:C\nabcd|\n").count("L:") == 1
    (score,) = read_scores(b"X:1\nM:2/4\nK:C\nCDEF GABc|", suffix=".abc").scores
    assert [n.end_quarters for n in score.tracks[0].notes][:2] == [0.25, 0.5]


def xml_part(part_id: str, pickup: str, bar1: str, bar2: str) -> str:
    return f"""
 <part id="{part_id}">
  <measure number="0" implicit="yes">
   <attributes><divisions>2</divisions><time><beats>3</beats><beat-type>4</beat-type></time></attributes>
   {pickup}
  </measure>
  <measure number="1"><barline location="left"><repeat direction="forward"/></barline>{bar1}</measure>
  <measure number="2">{bar2}<barline location="right"><repeat direction="backward"/></barline></measure>
 </part>"""


def note(step: str, octave: int, duration: int, extra: str = "", alter: int = 0) -> str:
    alter_xml = f"<alter>{alter}</alter>" if alter else ""
    pitch = f"<pitch><step>{step}</step>{alter_xml}<octave>{octave}</octave></pitch>"
    return f"<note>{extra[:7] if extra == '<chord/>' else ''}{pitch}<duration>{duration}</duration>{extra}</note>"


def harmony(root: str, kind: str, bass: str = "") -> str:
    bass_xml = f"<bass><bass-step>{bass}</bass-step></bass>" if bass else ""
    return f"<harmony><root><root-step>{root}</root-step></root><kind>{kind}</kind>{bass_xml}</harmony>"


TEMPO = "<direction><direction-type><metronome><beat-unit>quarter</beat-unit><per-minute>90</per-minute></metronome>"
TEMPO += '</direction-type><sound tempo="90"/></direction>'
FLUTE = xml_part(
    "P1",
    TEMPO + note("G", 4, 2),
    harmony("C", "major")
    + note("C", 5, 2, '<tie type="start"/>')
    + note("C", 5, 2, '<tie type="stop"/>')
    + "<note><grace/><pitch><step>D</step><octave>5</octave></pitch><type>eighth</type></note>"
    + note("E", 5, 2),
    harmony("G", "dominant", bass="B") + note("D", 5, 4) + harmony("A", "minor-seventh") + note("B", 4, 2, alter=-1),
)
VIOLIN = xml_part(
    "P2",
    "<note><rest/><duration>2</duration></note>",
    "<note><pitch><step>C</step><octave>4</octave></pitch><duration>6</duration></note>"
    "<note><chord/><pitch><step>E</step><octave>4</octave></pitch><duration>6</duration></note>",
    note("G", 3, 6),
)
MUSICXML = f"""<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="4.0">
 <part-list>
  <score-part id="P1"><part-name>Flute</part-name><score-instrument id="P1-I1"><instrument-name>Flute</instrument-name>
   </score-instrument><midi-instrument id="P1-I1"><midi-channel>1</midi-channel><midi-program>74</midi-program>
   </midi-instrument></score-part>
  <score-part id="P2"><part-name>Violin</part-name></score-part>
 </part-list>{FLUTE}{VIOLIN}
</score-partwise>
"""


def check_two_part_piece(score) -> None:
    flute, violin = score.tracks
    assert (flute.name, flute.program, violin.name, violin.program) == ("Flute", 73, "Violin", 40)
    # Pickup shifted to end on the first bar line; tie merged; grace note dropped; repeat played out.
    passes = [(72, 3.0, 5.0), (76, 5.0, 6.0), (74, 6.0, 8.0), (70, 8.0, 9.0)]
    again = [(p, s + 6.0, e + 6.0) for p, s, e in passes]
    assert [(n.pitch, n.start_quarters, n.end_quarters) for n in flute.notes] == [(67, 2.0, 3.0), *passes, *again]
    chords = [(60, 3.0, 6.0), (64, 3.0, 6.0), (55, 6.0, 9.0)]
    expected = chords + [(p, s + 6.0, e + 6.0) for p, s, e in chords]
    assert [(n.pitch, n.start_quarters, n.end_quarters) for n in violin.notes] == expected
    assert score.time_signatures == [(0.0, 3, 4)] and score.tempos == [(0.0, 90.0)]
    once = [(3.0, "C:maj"), (6.0, "G:7/3"), (8.0, "A:min7")]
    assert score.chord_symbols == tuple(once) + tuple((q + 6.0, c) for q, c in once)
    assert score.repairs == []


def test_musicxml_reads_parts_programs_ties_repeats_tempo_and_chord_symbols(tmp_path):
    path = tmp_path / "piece.musicxml"
    path.write_text(MUSICXML)
    (score,) = read_scores(path).scores
    check_two_part_piece(score)
    assert score.source == str(path)


def mxl_bytes(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


CONTAINER = '<container><rootfiles><rootfile full-path="music/piece.xml"/></rootfiles></container>'


def test_compressed_musicxml_reads_the_score_its_container_names():
    data = mxl_bytes({"META-INF/container.xml": CONTAINER, "music/piece.xml": MUSICXML})
    check_two_part_piece(read_scores(data, suffix=".mxl").scores[0])


def test_repeats_that_do_not_line_up_are_kept_as_written_with_a_note():
    one_sided = MUSICXML.replace(VIOLIN, VIOLIN.replace('<repeat direction="forward"/>', "").replace(
        '<repeat direction="backward"/>', ""))  # fmt: skip
    (score,) = read_scores(one_sided.encode(), suffix=".xml").scores
    assert score.repairs == ["repeats kept in written order: the parts' repeats do not line up"]
    assert [t.num_notes for t in score.tracks] == [5, 3]


def test_a_repeat_played_absurdly_often_is_kept_as_written():
    hostile = MUSICXML.replace('<repeat direction="backward"/>', '<repeat direction="backward" times="100000"/>')
    (score,) = read_scores(hostile.encode(), suffix=".musicxml").scores
    assert score.repairs == ["repeats kept in written order: one is played 100000 times (at most 16)"]
    assert [t.num_notes for t in score.tracks] == [5, 3]


@pytest.mark.parametrize(
    ("data", "suffix", "reason"),
    [
        (MUSICXML[: len(MUSICXML) // 2].encode(), ".musicxml", "ParseError"),
        (b"<html><body>hello</body></html>", ".xml", "not a MusicXML file"),
        (b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]><score-partwise/>", ".xml", "declares entities"),
        (b"<score-timewise></score-timewise>", ".xml", "timewise MusicXML is not supported"),
        (mxl_bytes({"readme.txt": "hello"}), ".mxl", "the zip names no score"),
        (b"PK\x03\x04 not really a zip", ".mxl", "not a compressed MusicXML file"),
        (b"just some text, no tune here", ".abc", "not an ABC file"),
        (BAD_TUNE.encode(), ".abc", "ZeroDivisionError"),
        (b"   \n", ".abc", "the file is empty"),
        (b"X:1\nT:rests only\nL:1/8\nK:C\nz8|z8|\n", ".abc", "the piece has no notes"),
        ((BAD_TUNE + "\n" + BAD_TUNE.replace("X:2", "X:4")).encode(), ".abc", "none of its 2 tunes can be read"),
    ],
)
def test_bad_files_raise_score_read_error(data, suffix, reason):
    with pytest.raises(ScoreReadError, match=reason):
        read_scores(data, suffix=suffix)


def test_size_cap_and_suffix_are_checked(tmp_path):
    path = tmp_path / "big.abc"
    path.write_text(REEL * 10)
    with pytest.raises(ScoreReadError, match="at most 100 allowed"):
        read_scores(path, max_file_bytes=100)
    with pytest.raises(ScoreReadError, match="at most 100 allowed"):
        read_scores(REEL.encode() * 10, suffix=".abc", max_file_bytes=100)
    with pytest.raises(ValueError, match="`suffix` must be one of"):
        read_scores(b"X:1", suffix=".txt")
    with pytest.raises(ScoreReadError, match="No such file"):
        read_scores(tmp_path / "missing.abc")


def test_chord_kinds_become_harte_labels():
    from music21 import harmony

    cases = {
        "C": "C:maj", "Am": "A:min", "B-m7": "Bb:min7", "F#dim7": "F#:dim7", "G7/B": "G:7/3", "E-maj7": "Eb:maj7",
        "Bm7b5": "B:hdim7", "Dsus4": "D:sus4", "E+": "E:aug", "C6": "C:maj6", "D9": "D:9", "Cm/E-": "C:min/b3",
        "C7b5": "C:(3,b5,b7)", "Cadd9": "C:(2,3,5)",
    }  # fmt: skip
    assert {figure: chord_symbol_to_harte(harmony.ChordSymbol(figure)) for figure in cases} == cases
    assert chord_symbol_to_harte(harmony.NoChord()) == "N"


def test_score_file_to_melodies_takes_every_tune_and_counts_the_bad_one():
    stats: Counter = Counter()
    book = (REEL + "\n" + BAD_TUNE + "\n" + JIG).encode()
    melodies = score_file_to_melodies(book, stats=stats, suffix=".abc")
    # The reel from its pickup's bar: 16 steps, a first pass of 15.5 quarters, a second ending on a full bar.
    assert [len(m) for m in melodies] == [16 + 62 + 64, 8 * 12]
    assert stats["skip_unreadable_tune"] == 1
    first = melodies[0]
    assert first.events[14] == 69 and first.events[16] == 74  # the pickup, then the first full bar
    with pytest.raises(NoMelodyError, match="no melody passed the filters"):
        score_file_to_melodies(b"X:1\nL:1/4\nK:C\nCDEF|GABc|\n", suffix=".abc")


def test_a_missing_music21_names_the_extra_to_install(tmp_path):
    (tmp_path / "tune.abc").write_text(REEL)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["music21"] = None  # what an environment without music21 looks like to `import music21`
        from melodyrnn import MissingExtraError, read_midi, score_file_to_melodies
        try:
            score_file_to_melodies({str(tmp_path / "tune.abc")!r})
        except MissingExtraError as err:
            print(err)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == 'reading MusicXML and ABC needs music21: pip install "melodyrnn[scores]"'


def test_prepare_reads_scores_beside_midi_and_reports_bad_ones(tmp_path):
    from conftest import midi_bytes, note_track, scale_notes

    from melodyrnn import prepare

    root = tmp_path / "mixed"
    (root / "books").mkdir(parents=True)
    (root / "books" / "reels.abc").write_text("%abc\n" + REEL + "\n" + BAD_TUNE + "\n" + JIG)
    (root / "piece.musicxml").write_text(MUSICXML)
    (root / "broken.abc").write_text("just words, no tune")
    (root / "truncated.xml").write_text(MUSICXML[:400])
    (root / "tune.mid").write_bytes(midi_bytes([note_track(scale_notes(8))]))
    data = prepare(root, tmp_path / "data.npz", workers=1, progress=False)
    r = data.report
    assert r.files_found == 5 and r.files_read == 3 and r.files_with_melodies == 2
    assert r.files_skipped == {
        "unreadable: not an ABC file": 1,
        "unreadable: ParseError: unclosed token: line N, column N": 1,
        "no melody: no melody passed the filters": 1,  # a 2-bar piece: too short to learn from
    }, r.files_skipped
    assert r.repairs == {"skipped tune X:N: ZeroDivisionError: division by zero": 1}
    assert r.melodies_kept == 3  # the reel and the jig of the book, and the MIDI tune
    sources = sorted({m.source for m in data.melodies()})
    assert sources == ["books/reels.abc", "tune.mid"]  # a book's tunes are melodies of that file: split by file


def test_prepare_without_music21_still_reads_the_midi_files(tmp_path):
    from conftest import midi_bytes, note_track, scale_notes

    (tmp_path / "tune.abc").write_text(REEL)
    (tmp_path / "tune.mid").write_bytes(midi_bytes([note_track(scale_notes(8))]))
    code = textwrap.dedent(f"""
        import sys
        sys.modules["music21"] = None
        from melodyrnn import EncodingConfig, ExtractionConfig
        from melodyrnn.collection import read_collection
        for r in read_collection({str(tmp_path)!r}, EncodingConfig(), ExtractionConfig(), workers=1, progress=False):
            print(r.path, len(r.melodies), r.error_type, r.reason)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        'tune.abc 0 ScoreReadError reading MusicXML and ABC needs music21: pip install "melodyrnn[scores]"',
        "tune.mid 1 None ",
    ]


def test_quoted_chords_and_harmony_elements_become_the_melodys_chords():
    (reel,) = score_file_to_melodies(REEL.encode(), suffix=".abc")
    once = ["D:maj", "A:7", "G:maj", "D:maj/3", "E:min", "A:7", "D:maj"]
    # Steps from the melody's first step (the pickup's bar); the repeat's first D continues the last one.
    assert reel.chords == tuple(zip([16, 24, 32, 40, 48, 56, 64], once)) + tuple(
        zip([86, 94, 102, 110, 118, 126], once[1:])
    )
    # A two-part score goes through the melody-track choice: the flute's line, not the violin's chords.
    loose = ExtractionConfig(min_bars=1, min_unique_pitches=1)
    (flute,) = score_file_to_melodies(MUSICXML.encode(), extraction=loose, suffix=".xml")
    assert flute.program == 73 and flute.events[8] == 67
    assert flute.chords == ((12, "C:maj"), (24, "G:7/3"), (32, "A:min7"), (36, "C:maj"), (48, "G:7/3"), (56, "A:min7"))


@pytest.mark.parametrize("fmt", ["abc", "musicxml"])
def test_a_melody_written_as_a_lead_sheet_reads_back_the_same(fmt):
    from melodyrnn.notation import melody_to_abc, melody_to_musicxml

    (melody,) = score_file_to_melodies(REEL.encode(), suffix=".abc")
    text = melody_to_abc(melody) if fmt == "abc" else melody_to_musicxml(melody)
    (back,) = score_file_to_melodies(text.encode(), suffix=f".{fmt}")
    assert back.events.tolist() == melody.events.tolist()
    assert (back.chords, back.time_signatures, back.tempos) == (melody.chords, melody.time_signatures, melody.tempos)
