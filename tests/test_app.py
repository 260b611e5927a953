"""The Streamlit app through `streamlit.testing.v1.AppTest`: generation and each control, the model choices,
every bad input (the app shows a message and keeps working), and training in the page."""

from __future__ import annotations

import io
import os
import time
import wave
import zipfile
from pathlib import Path

import mido
import numpy as np
import pytest
from conftest import midi_bytes, note_track, scale_notes
from streamlit.testing.v1 import AppTest

from melodyrnn.encoding import NO_EVENT
from melodyrnn.sample_config import primer_to_melody
from melodyrnn.theory import key_pitch_classes

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


def errors(at: AppTest) -> str:
    return " | ".join(e.value for e in at.error)


def warnings_(at: AppTest) -> str:
    return " | ".join(w.value for w in at.warning)


def generate(at: AppTest) -> AppTest:
    at.button(key="generate").click().run()
    assert not at.exception
    return at


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


def tune(start_pitch=60, bars=8) -> bytes:
    return midi_bytes([note_track(scale_notes(n_bars=bars, start_pitch=start_pitch))])


# ----------------------------------------------------------------------------------------------------------
# Generate


def test_default_generation_gives_playable_visible_downloadable_melodies(app):
    assert "default model is missing" not in warnings_(app)
    generate(app)
    assert not errors(app)
    (take,) = app.session_state.takes
    assert len(take["melodies"]) == 4  # the defaults: 4 melodies of 16 bars
    for item in take["melodies"]:
        assert len(item["melody"]) == 16 * 16
        parsed = mido.MidiFile(file=io.BytesIO(item["midi"]))
        assert any(m.type == "note_on" for m in parsed)
        assert item["backend"] == "fluidsynth"
        assert wav_seconds(item["wav"]) == pytest.approx(item["seconds"]) and item["seconds"] > 16 * 2 * 0.9
        # the player streams Ogg Vorbis, far smaller than the WAV that stays a download
        assert item["player_format"] == "audio/ogg" and item["player"][:4] == b"OggS"
        assert len(item["player"]) * 5 < len(item["wav"])
    with zipfile.ZipFile(io.BytesIO(take["zip"])) as archive:
        suffixes = ("mid", "wav", "musicxml", "abc")
        assert sorted(archive.namelist()) == sorted(f"{i['name']}.{x}" for i in take["melodies"] for x in suffixes)
        first = take["melodies"][0]
        assert archive.read(f"{first['name']}.mid") == first["midi"]
        assert archive.read(f"{first['name']}.musicxml").decode() == first["musicxml"]
    assert len(app.get("audio")) == 4 and len(app.get("plotly_chart")) == 4
    labels = [b.label for b in app.download_button]
    assert all(labels.count(label) == 4 for label in ("MIDI", "WAV", "MusicXML", "ABC"))
    assert "Download all as .zip" in labels
    # each melody's engraved score, as an SVG in the page
    scores = [m.value for m in app.markdown if "melody-score" in m.value]
    assert len(scores) == 4 and all("<svg" in score for score in scores)
    assert all(i["abc"].startswith("X:1\nT:" + i["name"]) for i in take["melodies"])


def test_every_control_reaches_the_melodies(app):
    app.number_input(key="num_melodies").set_value(2)
    app.number_input(key="bars").set_value(4)
    app.number_input(key="qpm").set_value(90)
    app.selectbox(key="time_signature").set_value("3/4")
    app.slider(key="temperature").set_value(0.8)
    app.number_input(key="top_k").set_value(12)
    app.slider(key="top_p").set_value(0.9)
    app.number_input(key="seed").set_value(7)
    app.selectbox(key="tonic").set_value("D")
    app.selectbox(key="scale").set_value("minor")
    app.selectbox(key="instrument").set_value("Flute")
    app.text_input(key="primer_text").set_value("D4 F4 A4")
    generate(app)
    assert not errors(app)
    (take,) = app.session_state.takes
    s = take["settings"]
    assert (s["temperature"], s["top_k"], s["top_p"], s["key"], s["seed"], s["primer"]) == (
        0.8,
        12,
        0.9,
        "D minor",
        7,
        "D4 F4 A4",
    )
    d_minor = key_pitch_classes("D minor")
    for item in take["melodies"]:
        melody = item["melody"]
        assert len(melody) == 4 * 12 and melody.time_signature == (3, 4)  # 4 bars of 3/4, 4 steps per quarter
        assert melody.qpm == 90 and melody.program == 73
        assert item["primer_steps"] == 12 and [p for p, s, _ in melody.notes() if s < 12] == [62, 65, 69]
        assert all(p % 12 in d_minor for p in melody.pitches)
        back = primer_to_melody(item["midi"])  # what was written is what was shown (no length filter)
        assert back.qpm == 90 and back.program == 73
    # the same seed and settings give the same melodies; another seed does not
    generate(app)
    first, second = (t["melodies"] for t in app.session_state.takes)
    assert all(np.array_equal(a["melody"].events, b["melody"].events) for a, b in zip(first, second))
    app.number_input(key="seed").set_value(8)
    generate(app)
    third = app.session_state.takes[-1]["melodies"]
    assert not all(np.array_equal(a["melody"].events, b["melody"].events) for a, b in zip(first, third))


def test_temperature_zero_is_greedy_and_identical_across_melodies(app):
    app.number_input(key="num_melodies").set_value(3)
    app.number_input(key="bars").set_value(2)
    app.slider(key="temperature").set_value(0.0)
    generate(app)
    events = [i["melody"].events for i in app.session_state.takes[0]["melodies"]]
    assert all(np.array_equal(events[0], e) for e in events[1:])


def test_primer_from_an_uploaded_midi_file(app):
    app.number_input(key="num_melodies").set_value(1)
    app.number_input(key="bars").set_value(12)
    app.file_uploader(key="primer_file").set_value(("tune.mid", tune(start_pitch=62), "audio/midi"))
    generate(app)
    assert not errors(app)
    item = app.session_state.takes[0]["melodies"][0]
    assert item["primer_steps"] == 8 * 16 and app.session_state.takes[0]["settings"]["primer"] == "file tune.mid"
    opening = item["melody"].events[: 8 * 16]
    assert opening[0] == 62 and (opening[opening != NO_EVENT] >= -1).all()


def test_melodies_stay_listed_until_cleared(app):
    app.number_input(key="num_melodies").set_value(1)
    app.number_input(key="bars").set_value(2)
    generate(app)
    generate(app)
    assert [t["id"] for t in app.session_state.takes] == [1, 2]
    app.number_input(key="bars").set_value(3)  # changing a control keeps what is there
    app.run()
    assert len(app.session_state.takes) == 2 and len(app.get("audio")) == 2
    app.button(key="clear").click().run()
    assert app.session_state.takes == [] and len(app.get("audio")) == 0


def test_an_uploaded_bundle_generates(app, tiny_bundle):
    app.radio(key="model_source").set_value("Upload a bundle").run()
    app.file_uploader(key="bundle_upload").set_value(("mine.melodyrnn", tiny_bundle.read_bytes(), "application/zip"))
    app.run()
    app.number_input(key="num_melodies").set_value(1)
    generate(app)
    assert not errors(app)
    assert app.session_state.takes[0]["model"] == "uploaded mine.melodyrnn"


def test_a_bundle_from_a_run_folder_generates(app, tiny_bundle, tmp_path):
    (tmp_path / "best.melodyrnn").write_bytes(tiny_bundle.read_bytes())
    app.radio(key="model_source").set_value("Bundle from a run folder").run()
    app.text_input(key="run_folder").set_value(str(tmp_path)).run()
    app.number_input(key="num_melodies").set_value(1)
    generate(app)
    assert not errors(app) and len(app.session_state.takes) == 1


def test_missing_default_model_is_announced_and_the_app_keeps_working(monkeypatch, tmp_path):
    monkeypatch.setenv("MELODYRNN_MODEL", str(tmp_path / "nowhere.melodyrnn"))
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception and "The default model is missing" in warnings_(at)
    generate(at)
    assert "Choose a model first" in errors(at) and at.session_state.takes == []
    assert [t.label for t in at.tabs] == ["Generate", "Train"]


# ----------------------------------------------------------------------------------------------------------
# Bad input: a message in the page, and the app keeps working


def test_unknown_note_names_in_the_primer(app):
    app.text_input(key="primer_text").set_value("C4 H4 E4")
    generate(app)
    assert "unknown note name 'H4'" in errors(app) and app.session_state.takes == []
    app.text_input(key="primer_text").set_value("C4 D4 E4")
    app.number_input(key="num_melodies").set_value(1)
    generate(app)
    assert not errors(app) and len(app.session_state.takes) == 1


def test_a_non_midi_primer_file(app):
    app.file_uploader(key="primer_file").set_value(("notes.mid", b"these are not MIDI bytes", "audio/midi"))
    generate(app)
    assert "cannot read MIDI" in errors(app) and app.session_state.takes == []


def test_a_primer_file_over_the_size_limit(app, monkeypatch):
    monkeypatch.setenv("MELODYRNN_APP_MAX_UPLOAD_MB", "0.001")  # 1 kB
    app.run()  # the uploaders take the new limit (a widget whose limit changes starts empty)
    app.file_uploader(key="primer_file").set_value(("big.mid", tune(bars=40), "audio/midi"))
    generate(app)
    assert "over the 1.0 kB limit" in errors(app) and app.session_state.takes == []


def test_a_bundle_that_is_not_a_bundle(app):
    app.radio(key="model_source").set_value("Upload a bundle").run()
    app.file_uploader(key="bundle_upload").set_value(("fake.melodyrnn", b"PK\x03\x04 not really", "application/zip"))
    app.run()
    assert not app.exception and "Cannot load this model" in errors(app)
    generate(app)
    assert "Choose a model first" in errors(app)
    app.radio(key="model_source").set_value("Default model").run()
    app.number_input(key="num_melodies").set_value(1)
    generate(app)
    assert not errors(app) and len(app.session_state.takes) == 1


def test_a_folder_that_is_not_a_run(app, tmp_path):
    app.radio(key="model_source").set_value("Bundle from a run folder").run()
    app.text_input(key="run_folder").set_value(str(tmp_path)).run()
    assert "is not a training run folder" in errors(app)


def test_training_uploads_that_cannot_be_used(app, monkeypatch, tmp_path):
    stale = tmp_path / "scratch" / "session-left-by-a-killed-server"
    stale.mkdir(parents=True)
    os.utime(stale, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    empty_zip = io.BytesIO()
    zipfile.ZipFile(empty_zip, "w").close()
    text_zip = io.BytesIO()
    with zipfile.ZipFile(text_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    app.file_uploader(key="train_files").set_value(
        [
            ("empty.zip", empty_zip.getvalue(), "application/zip"),
            ("texts.zip", text_zip.getvalue(), "application/zip"),
            ("broken.zip", b"PK\x05\x06 truncated", "application/zip"),
            ("notes.txt", b"C4 D4 E4", "text/plain"),
        ]
    ).run()
    app.button(key="prepare").click().run()
    assert not app.exception
    shown = warnings_(app)
    assert "`empty.zip`: the zip is empty" in shown
    assert "`texts.zip`: the zip holds no MIDI files" in shown
    assert "`broken.zip`: not a readable zip file" in shown
    assert "`notes.txt`: not a MIDI file" in shown
    assert "No MIDI files to prepare" in errors(app)
    assert app.button(key="train").disabled
    # the uploads went to this session's scratch folder, which goes when the session does; a stale one is swept
    assert not stale.exists()
    scratch = app.session_state.scratch
    assert scratch.path.parent == tmp_path / "scratch" and scratch.path.is_dir()


def test_training_uploads_over_the_size_limit_and_not_midi(app, monkeypatch):
    monkeypatch.setenv("MELODYRNN_APP_MAX_UPLOAD_MB", "0.001")  # 1 kB
    app.run()  # the uploaders take the new limit (a widget whose limit changes starts empty)
    app.file_uploader(key="train_files").set_value(
        [
            ("big.mid", tune(bars=40), "audio/midi"),
            ("garbage.mid", b"not MIDI at all", "audio/midi"),
        ]
    ).run()
    app.button(key="prepare").click().run()
    assert not app.exception
    assert "`big.mid`: the file is 1.4 kB, over the 1.0 kB limit" in warnings_(app)
    # the .mid that is not MIDI reaches the library, whose report names it
    assert "No training data: no melody survived in `the upload`" in errors(app)
    assert "garbage.mid: not a MIDI file" in app.code[0].value
    assert app.button(key="train").disabled


# ----------------------------------------------------------------------------------------------------------
# Train


@pytest.mark.slow
def test_train_in_the_page_stop_it_and_generate_with_the_new_model(app):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(10):
            z.writestr(f"tunes/tune{i}.mid", tune(start_pitch=55 + i))
        z.writestr("tunes/notes.txt", "not music")
    app.file_uploader(key="train_files").set_value(
        [("tunes.zip", archive.getvalue(), "application/zip"), ("extra.mid", tune(start_pitch=70), "audio/midi")]
    )
    app.run()
    app.button(key="prepare").click().run()
    assert not errors(app), errors(app)
    assert "1 file(s) in the zip are not MIDI files" in warnings_(app)
    assert app.session_state.prepared["melodies"] == 11
    assert "melodies kept: 11" in app.code[0].value
    assert app.radio(key="start").value.startswith("Fine-tune")  # small uploads fine-tune the default model
    app.button(key="train").click().run()
    job = app.session_state.job
    assert job.running and app.button(key="train").disabled and job.from_bundle is not None

    deadline = time.monotonic() + 300  # a ceiling so a hang fails instead of blocking CI; not a speed test
    while job.running and not job.progress()["history"] and time.monotonic() < deadline:
        time.sleep(0.5)
        app.run()  # the page answers while training runs
        assert not app.exception
    assert job.progress()["history"], "no epoch finished"
    app.run()
    assert any("Training: epoch" in p.proto.text for p in app.get("progress"))
    app.button(key="stop_training").click().run()
    job.join(timeout=300)
    assert job.done and job.error is None and job.stop_requested
    assert len(job.progress()["history"]) < job.epochs
    assert job.result.start["from"] == str(job.from_bundle) and job.result.plan["updates"] >= 150
    app.run()
    label = f"Trained here: {job.run_dir.name}"
    assert app.radio(key="model_source").value == label
    assert "Model trained (stopped by you" in " ".join(s.value for s in app.success)
    # the page sets the run beside the untouched bundled model and a 6-gram, as `melodyrnn train` does
    baselines = job.result.baselines
    assert set(baselines) == {"bundled_default", "ngram_6"}
    shown = " ".join(c.value for c in app.caption)
    assert "start: fine-tuning" in shown and "budget:" in shown  # the start and the plan, and why
    assert f"bundled default model {baselines['bundled_default']:.4f}, 6-gram {baselines['ngram_6']:.4f}" in shown

    app.number_input(key="num_melodies").set_value(2)
    generate(app)
    assert not errors(app)
    assert app.session_state.takes[-1]["model"] == label and len(app.session_state.takes[-1]["melodies"]) == 2


def test_backing_is_offered_and_melodies_without_chords_say_so(app):
    app.number_input(key="num_melodies").set_value(1)
    app.number_input(key="bars").set_value(2)
    app.selectbox(key="backing").set_value("waltz")
    generate(app)
    (item,) = app.session_state.takes[0]["melodies"]
    assert item["backed"] is None and len(mido.MidiFile(file=io.BytesIO(item["midi"])).tracks) == 2  # maps + melody
    assert "No backing: this melody has no chords." in [c.value for c in app.caption]
    assert len(app.get("audio")) == 1
