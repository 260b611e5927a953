"""The app's infill panel and originality line through `AppTest`: new versions of some bars keep every other bar,
Keep adds one as a take, bad ranges are errors that lose nothing, and a melody copied from the model's training
data says so beside it."""

from __future__ import annotations

import numpy as np
from conftest import midi_bytes, note_track, scale_notes
from streamlit.testing.v1 import AppTest


def errors(at: AppTest) -> str:
    return " | ".join(e.value for e in at.error)


def captions(at: AppTest) -> str:
    return " | ".join(c.value for c in at.caption)


def generate(at: AppTest, bars: int) -> None:
    at.number_input(key="num_melodies").set_value(1)
    at.number_input(key="bars").set_value(bars)
    at.button(key="generate").click().run()
    assert not at.exception and not errors(at)


def rewrite(at: AppTest, first: int, last: int, versions: int = 2) -> None:
    at.number_input(key="infill_first").set_value(first)
    at.number_input(key="infill_last").set_value(last)
    at.number_input(key="infill_versions").set_value(versions)
    at.button(key="infill_run").click().run()
    assert not at.exception


def assert_kept_outside(version, melody, start: int, end: int) -> None:
    assert len(version) == len(melody) and version.time_signatures == melody.time_signatures
    assert np.array_equal(version.events[:start], melody.events[:start])
    assert np.array_equal(version.events[end:], melody.events[end:])


def test_new_versions_of_some_bars_keep_the_others_and_keep_adds_a_take(app):
    generate(app, bars=6)
    melody = app.session_state.takes[0]["melodies"][0]["melody"]
    assert app.selectbox(key="infill_melody").value == "Take 1 · melody 1"
    rewrite(app, 2, 3, versions=3)  # bars 2 and 3, counted from 1: steps 16-47
    assert not errors(app)
    result = app.session_state.infill
    assert result["steps"] == (16, 48) and len(result["versions"]) == 3
    for version in result["versions"]:
        assert_kept_outside(version["melody"], melody, 16, 48)
        assert version["player"][:4] == b"OggS"  # the whole melody plays, so the new bars are heard in context
    assert len(app.get("audio")) == 1 + 3 and len(app.get("plotly_chart")) == 1 + 3
    app.button(key="infill_keep_1").click().run()
    assert not app.exception
    takes = app.session_state.takes
    assert len(takes) == 2 and takes[-1]["infill"] == {"from": "Take 1 · melody 1", "bars": (2, 3), "version": 2}
    kept = takes[-1]["melodies"][0]
    assert kept["melody"] == result["versions"][1]["melody"] and kept["midi"][:4] == b"MThd"
    assert app.button(key="infill_keep_1").label == "Kept as take 2" and app.button(key="infill_keep_1").disabled
    assert "bars 2-3 of Take 1 · melody 1 rewritten" in " ".join(m.value for m in app.markdown)
    # learning the melody's style first (adaptation) still keeps every other bar
    app.checkbox(key="infill_adapt").check().run()
    rewrite(app, 4, 5, versions=2)
    assert not errors(app)
    assert app.session_state.infill["steps"] == (48, 80)
    for version in app.session_state.infill["versions"]:
        assert_kept_outside(version["melody"], melody, 48, 80)


def test_bad_ranges_are_errors_that_lose_nothing_and_a_file_can_be_rewritten(app):
    generate(app, bars=4)
    rewrite(app, 2, 2)
    before = app.session_state.infill["versions"]
    rewrite(app, 3, 2)
    assert "No new versions of bars 3-2: the first bar (3) comes after the last (2)" in errors(app)
    rewrite(app, 2, 9)
    assert "this melody has 4 bars, so the last bar to rewrite can be at most 4, not 9" in errors(app)
    assert app.session_state.infill["versions"] is before and len(app.session_state.takes) == 1
    # a file of its own: the first melody of an upload; a file that is not one is an error
    app.radio(key="infill_source").set_value("A file").run()
    app.file_uploader(key="infill_file").set_value(("bad.mid", b"not MIDI", "audio/midi")).run()
    assert "Cannot use this file" in errors(app) and app.button(key="infill_run").disabled
    song = midi_bytes([note_track(scale_notes(n_bars=4, start_pitch=62))])
    app.file_uploader(key="infill_file").set_value(("song.mid", song, "audio/midi")).run()
    rewrite(app, 1, 2)
    assert not errors(app)
    result = app.session_state.infill
    source = result["source"].melody
    assert len(source) == 64 and source.notes()[0] == (62, 0, 4)  # the file's 4 bars, as read on the model's grid
    for version in result["versions"]:
        assert_kept_outside(version["melody"], source, 0, 32)
    app.button(key="infill_keep_0").click().run()
    assert not app.exception and app.session_state.takes[-1]["infill"]["from"] == "`song.mid`"
    assert "General MIDI program 0" in captions(app)


def test_each_melody_says_how_much_it_copies_the_models_training_data(app, monkeypatch, tmp_path):
    generate(app, bars=2)
    assert "Originality: unknown" in captions(app)  # the page does not know what this tiny model learnt from
    planted = midi_bytes([note_track(scale_notes(n_bars=8, start_pitch=60))])
    data = tmp_path / "learnt"
    data.mkdir()
    (data / "planted.mid").write_bytes(planted)
    other = [(60 + (7 * i) % 12, 2.0 * i, 2.0 * i + 1.5) for i in range(16)]  # another tune, in half notes
    (data / "other.mid").write_bytes(midi_bytes([note_track(other)]))
    monkeypatch.setenv("MELODYRNN_MODEL_DATA", str(data))
    # a melody that IS a training tune: the planted tune as a primer as long as the melody
    app.file_uploader(key="primer_file").set_value(("planted.mid", planted, "audio/midi"))
    generate(app, bars=8)
    line = [c for c in captions(app).split(" | ") if c.startswith("Originality, against the training data")]
    assert line and "longest copied run: 32 notes (8.0 bars) of planted.mid" in line[0]
