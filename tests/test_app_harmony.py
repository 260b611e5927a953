"""The app's chords (`streamlit.testing.v1.AppTest`): the chord-progression field and the meter reach the model,
a bad progression is a message, **Harmonize** on a take and on an uploaded melody gives MIDI with a chord track
and audio with the chords, and the piano roll draws a melody's chords."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import mido
import numpy as np
import pytest
from conftest import midi_bytes, note_track, scale_notes
from test_scores import REEL

from melodyrnn.encoding import Melody
from melodyrnn.harmonize import QUALITIES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from piano_roll import CHORD_COLOURS, piano_roll  # noqa: E402

HARMONIZER_QUALITIES = set(QUALITIES) | {"N"}


def errors(at) -> str:
    return " | ".join(e.value for e in at.error)


def generate(at, melodies=1, bars=4):
    at.number_input(key="num_melodies").set_value(melodies)
    at.number_input(key="bars").set_value(bars)
    at.button(key="generate").click().run()
    assert not at.exception
    return at


def track_names(midi: bytes) -> list[str]:
    return [track.name for track in mido.MidiFile(file=io.BytesIO(midi)).tracks]


def chords_trace(figure_json: str) -> dict | None:
    return next((t for t in json.loads(figure_json)["data"] if t.get("name") == "chords"), None)


@pytest.fixture(scope="module")
def meter_bundle(tmp_path_factory) -> Path:
    """An untrained one-layer model that reads the meter and the chords (seeded, so its weights are fixed)."""
    import keras

    from melodyrnn.bundle import save_bundle
    from melodyrnn.model import ModelConfig, build_model

    keras.utils.set_random_seed(0)
    config = ModelConfig(units=16, num_layers=1, attention_window=64, condition_meter=True, condition_chords=True)
    path = tmp_path_factory.mktemp("conditioned") / "meter.melodyrnn"
    save_bundle(path, build_model(config))
    return path


# ----------------------------------------------------------------------------------------------------------
# The progression field and the meter


def test_a_progression_reaches_the_melodies_and_their_piano_rolls(app):
    app.text_input(key="chords").set_value("Am F | C G")
    generate(app)
    assert not errors(app)
    (take,) = app.session_state.takes
    (item,) = take["melodies"]
    # two chords a bar in 4/4 (8 steps each), repeated over the 4 bars asked for
    expected = tuple((8 * i, ("A:min", "F:maj", "C:maj", "G:maj")[i % 4]) for i in range(8))
    assert item["melody"].chords == expected and take["settings"]["chords"] == "Am F | C G"
    assert "Chords asked for: Am F | C G" in [c.value for c in app.caption]
    trace = chords_trace(app.get("plotly_chart")[0].proto.spec)
    assert trace["text"] == ["Am", "F", "C", "G"] * 2 and trace["base"] == [2.0 * i for i in range(8)]


def test_the_meter_the_chords_and_how_closely_to_follow_them_reach_a_chord_aware_model(app, meter_bundle, monkeypatch):
    from melodyrnn.sampling import Sampler

    monkeypatch.setenv("MELODYRNN_MODEL", str(meter_bundle))
    app.slider(key="temperature").set_value(0.0)
    app.text_input(key="chords").set_value("Am:2 F:1")
    app.slider(key="chord_guidance").set_value(1.5)
    app.selectbox(key="time_signature").set_value("3/4")
    generate(app, bars=2)
    app.selectbox(key="time_signature").set_value("6/8")
    generate(app, bars=2)
    assert not errors(app)
    three, six = (t["melodies"][0]["melody"] for t in app.session_state.takes)
    assert three.time_signature == (3, 4) and six.time_signature == (6, 8)
    # 3/4 beats in quarters (Am 2 beats = 8 steps); 6/8 beats in dotted quarters (Am 2 beats = 12 steps)
    assert three.chords == ((0, "A:min"), (8, "F:maj"), (12, "A:min"), (20, "F:maj"))
    assert six.chords == ((0, "A:min"), (12, "F:maj"), (18, "A:min"))
    # what the library writes with these arguments; and the model heard the meter (same length, same seed)
    options = dict(bars=2, temperature=0, time_signature=(6, 8), chords="Am:2 F:1", seed=0)
    (asked,) = Sampler(meter_bundle).generate(chord_guidance=1.5, **options)
    assert np.array_equal(six.events, asked.events) and not np.array_equal(three.events, six.events)
    assert app.session_state.takes[-1]["settings"]["chord_guidance"] == 1.5


def test_a_bad_progression_is_a_message_and_the_takes_stay(app):
    generate(app)
    app.text_input(key="chords").set_value("Am Hm7 F")
    generate(app)
    assert "Nothing generated" in errors(app) and "'Hm7'" in errors(app)
    assert len(app.session_state.takes) == 1 and len(app.get("audio")) == 1
    app.text_input(key="chords").set_value("Am F | C:3 G:2")
    generate(app)
    assert "holds more than its 4 beats" in errors(app) and len(app.session_state.takes) == 1
    app.text_input(key="chords").set_value("")
    generate(app)
    assert not errors(app) and len(app.session_state.takes) == 2
    assert app.session_state.takes[-1]["melodies"][0]["melody"].chords == ()


# ----------------------------------------------------------------------------------------------------------
# Harmonize


def test_harmonize_a_take_gives_a_chord_track_audio_and_chords_on_the_roll(app):
    generate(app, melodies=2)
    take = app.session_state.takes[0]
    before = [item["melody"].events.copy() for item in take["melodies"]]
    assert chords_trace(app.get("plotly_chart")[0].proto.spec) is None  # no chords yet: no chord row
    app.button(key="harmonize_1").click().run()
    assert not app.exception and not errors(app)
    take = app.session_state.takes[0]
    assert take["harmonized"]
    for item, events in zip(take["melodies"], before):
        melody = item["melody"]
        assert np.array_equal(melody.events, events)  # the notes stay; chords are added
        assert melody.chords and {label.split(":")[-1] for _, label in melody.chords} <= HARMONIZER_QUALITIES
        assert all(step % 8 == 0 for step, _ in melody.chords)  # one per half bar of 4/4
        assert track_names(item["midi"])[-2:] == ["chords", "bass"] and item["backing"] == "block"
        assert item["backed"] is not None and item["backed"][0].wav != item["wav"]  # a second player with them
        assert "<harmony" in item["musicxml"]  # the score's chord symbols
    assert len(app.get("audio")) == 4  # each melody alone and with its chords
    with zipfile.ZipFile(io.BytesIO(take["zip"])) as archive:
        assert f"{take['melodies'][0]['name']}_with_backing.wav" in archive.namelist()
    assert any(c.value.startswith("Harmonized (half bar chords, block backing") for c in app.caption)
    trace = chords_trace(app.get("plotly_chart")[0].proto.spec)
    assert trace is not None and len(trace["text"]) == len(take["melodies"][0]["melody"].chords)


def test_harmonize_keeps_the_takes_backing_and_a_second_take(app):
    app.selectbox(key="backing").set_value("waltz")
    app.selectbox(key="time_signature").set_value("3/4")
    generate(app)
    generate(app)
    app.button(key="harmonize_2").click().run()
    assert not errors(app)
    first, second = app.session_state.takes
    assert not first.get("harmonized") and first["melodies"][0]["melody"].chords == ()
    item = second["melodies"][0]
    assert item["backing"] == "waltz" and track_names(item["midi"])[-2:] == ["chords", "bass"]
    assert all(step % 12 == 0 for step, _ in item["melody"].chords)  # a half bar of 3/4 is the whole bar


def test_harmonize_an_uploaded_melody(app):
    tune = midi_bytes([note_track(scale_notes(n_bars=4, start_pitch=62))])
    assert app.button(key="harmonize_upload").disabled
    app.file_uploader(key="harmonize_file").set_value(("tune.mid", tune, "audio/midi")).run()
    app.selectbox(key="harmonize_backing").set_value("arpeggio")
    app.button(key="harmonize_upload").click().run()
    assert not app.exception and not errors(app)
    (entry,) = app.session_state.harmonized
    (item,) = entry["melodies"]
    assert entry["file"] == "tune.mid" and item["melody"].pitches[0] == 62 and len(item["melody"]) == 4 * 16
    assert item["melody"].chords and track_names(item["midi"])[-2:] == ["chords", "bass"]
    assert item["backing"] == "arpeggio" and item["backed"] is not None
    assert chords_trace(app.get("plotly_chart")[0].proto.spec) is not None
    assert app.session_state.takes == [] and "Download all as .zip" in [b.label for b in app.download_button]
    # an ABC tune too; the earlier result stays
    app.file_uploader(key="harmonize_file").set_value(("reel.abc", REEL.encode(), "text/vnd.abc")).run()
    app.button(key="harmonize_upload").click().run()
    assert not errors(app) and len(app.session_state.harmonized) == 2
    assert app.session_state.harmonized[-1]["melodies"][0]["melody"].chords


def test_a_bad_upload_to_harmonize_is_a_message(app):
    app.file_uploader(key="harmonize_file").set_value(("tune.mid", b"not a MIDI file", "audio/midi")).run()
    app.button(key="harmonize_upload").click().run()
    assert not app.exception and "Not harmonized" in errors(app) and "cannot read MIDI" in errors(app)
    assert app.session_state.harmonized == []
    generate(app)  # the page keeps working
    assert not errors(app) and len(app.session_state.takes) == 1


# ----------------------------------------------------------------------------------------------------------
# The piano roll


def test_the_piano_roll_draws_chords_in_a_row_above_the_notes():
    melody = Melody.from_notes([(60 + i, 4 * i, 4 * i + 4) for i in range(16)], steps_per_quarter=4)
    plain = piano_roll(melody)
    assert [t.name for t in plain.data] == ["generated"] and plain.layout.height == 240
    layout = plain.to_plotly_json()["layout"]
    assert "yaxis2" not in layout and "domain" not in layout["yaxis"]  # no chords: the figure is as it always was
    chorded = piano_roll(replace(melody, chords=((0, "C:maj"), (16, "N"), (24, "A:min7"), (40, "G:7/3"))))
    (row,) = [t for t in chorded.data if t.name == "chords"]
    # "N" spans are left out; spans last until the next change or the end, in beats
    assert list(row.text) == ["C", "Am7", "G7/B"] and list(row.customdata) == ["C:maj", "A:min7", "G:7/3"]
    assert list(row.base) == [0.0, 6.0, 10.0] and list(row.x) == [4.0, 4.0, 6.0]
    assert list(row.marker.color) == [CHORD_COLOURS[0], CHORD_COLOURS[1], CHORD_COLOURS[0]]
    assert row.yaxis == "y2" and not row.showlegend
    assert chorded.layout.height > 240 and chorded.layout.yaxis.domain[1] < chorded.layout.yaxis2.domain[0]
    assert chorded.layout.uniformtext.mode == "hide"  # a label too long for its span hides instead of overlapping
