"""The app takes MusicXML and ABC where it takes MIDI: the Train tab's upload and the Generate tab's primer file
(`streamlit.testing.v1.AppTest`), with the same messages for bad files."""

from __future__ import annotations

from test_scores import BAD_TUNE, JIG, MUSICXML, REEL


def test_training_upload_takes_abc_and_musicxml_and_reports_bad_ones(app):
    app.file_uploader(key="train_files").set_value(
        [
            ("book.abc", (REEL + "\n" + BAD_TUNE + "\n" + JIG).encode(), "text/vnd.abc"),
            ("piece.musicxml", MUSICXML.encode(), "application/vnd.recordare.musicxml+xml"),
            ("broken.abc", b"no tune in here", "text/vnd.abc"),
            ("notes.txt", b"C4 D4 E4", "text/plain"),
        ]
    ).run()
    app.button(key="prepare").click().run()
    assert not app.exception
    assert not app.error, [e.value for e in app.error]
    assert "`notes.txt`: not a MIDI file or a score" in " | ".join(w.value for w in app.warning)
    prepared = app.session_state.prepared
    assert prepared["melodies"] == 2 and prepared["files"] == 1  # the book's reel and jig
    assert "broken.abc: not an ABC file (no X: or K: field)" in prepared["report"]
    assert "skipped tune X:N: ZeroDivisionError" in prepared["report"]


def test_primer_from_an_abc_file_opens_the_melody(app):
    app.number_input(key="num_melodies").set_value(1)
    app.number_input(key="bars").set_value(12)
    app.file_uploader(key="primer_file").set_value(("reel.abc", REEL.encode(), "text/vnd.abc"))
    app.button(key="generate").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    take = app.session_state.takes[0]
    item = take["melodies"][0]
    assert take["settings"]["primer"] == "file reel.abc" and item["primer_steps"] == 16 + 62 + 64
    assert item["melody"].events[14] == 69 and item["melody"].events[16] == 74  # the pickup, then bar 1


def test_a_bad_score_primer_is_a_message_and_the_app_keeps_working(app):
    app.file_uploader(key="primer_file").set_value(("bad.musicxml", MUSICXML[:300].encode(), "application/xml"))
    app.button(key="generate").click().run()
    assert not app.exception
    assert "Nothing generated: cannot read score bad.musicxml: ParseError" in " | ".join(e.value for e in app.error)
