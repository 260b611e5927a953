"""Shared fixtures: small MIDI files built in code with mido, so every test says what its input is."""

from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path

import mido
import numpy as np
import pytest


def midi_bytes(tracks, *, ticks_per_beat=480, file_type=1) -> bytes:
    """MIDI bytes from lists of (delta_ticks, message) or plain mido messages with their own `time`."""
    mf = mido.MidiFile(type=file_type, ticks_per_beat=ticks_per_beat)
    for events in tracks:
        track = mido.MidiTrack()
        for ev in events:
            track.append(ev)
        mf.tracks.append(track)
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


def note_track(notes, *, channel=0, program=0, ticks_per_beat=480, velocity=80):
    """A track from (pitch, start_quarters, end_quarters) notes; overlapping notes are allowed."""
    events = []
    for pitch, start, end in notes:
        on = mido.Message("note_on", note=pitch, velocity=velocity, channel=channel)
        off = mido.Message("note_off", note=pitch, velocity=0, channel=channel)
        events.append((round(start * ticks_per_beat), 1, on))
        events.append((round(end * ticks_per_beat), 0, off))
    events.sort(key=lambda e: (e[0], e[1]))
    out = [mido.Message("program_change", program=program, channel=channel, time=0)]
    last = 0
    for tick, _, msg in events:
        out.append(msg.copy(time=tick - last))
        last = tick
    return out


def scale_notes(n_bars=8, start_pitch=60, beats_per_bar=4):
    """A stepwise tune of quarter notes over `n_bars` bars, with varied pitches."""
    steps = [0, 2, 4, 5, 7, 9, 11, 12, 11, 9, 7, 5, 4, 2]
    total = n_bars * beats_per_bar
    return [(start_pitch + steps[i % len(steps)], float(i), float(i + 1)) for i in range(total)]


#: Sampling settings infill must honour while keeping every step outside the gap.
INFILL_SETTINGS = [
    {},
    {"temperature": 0},
    {"temperature": 1.5, "top_k": 3},
    {"top_p": 0.8, "key": "F major"},
    {"repetition_penalty": 2.0, "max_repeats": 0, "min_pitch": 55, "max_pitch": 75},
]


def assert_kept(version, melody, start: int, end: int) -> None:
    """`version` is `melody` outside steps [start, end): events bit for bit and every other field."""
    assert len(version) == len(melody)
    assert np.array_equal(version.events[:start], melody.events[:start])
    assert np.array_equal(version.events[end:], melody.events[end:])
    assert version.events.dtype == melody.events.dtype
    for field in ("tempos", "time_signatures", "chords", "program", "velocity", "steps_per_quarter", "source"):
        assert getattr(version, field) == getattr(melody, field), field


@pytest.fixture
def tune_bytes() -> bytes:
    """An 8-bar, 4/4, 100-qpm melody on one track."""
    conductor = [
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100), time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
    ]
    return midi_bytes([conductor, note_track(scale_notes())])


@pytest.fixture
def messy_folder(tmp_path) -> Path:
    """Good files (nested, odd suffix cases) mixed with every kind of bad one, plus non-MIDI files."""
    data = Path(__file__).parent / "data"
    root = tmp_path / "collection"
    (root / "sub" / "deeper").mkdir(parents=True)
    for i in range(12):
        notes = [(p + i % 5, s, e) for p, s, e in scale_notes(8)]
        name = ["tune{}.mid", "tune{}.MID", "tune{}.midi", "sub/deeper/tune{}.Kar"][i % 4].format(i)
        (root / name).write_bytes(midi_bytes([note_track(notes)]))
    for name in ("empty.mid", "corrupt.mid", "not_midi.mid", "drums_only.mid", "polyphonic.mid"):
        shutil.copy(data / name, root / "sub" / name)
    tune = (data / "tune.mid").read_bytes()
    (root / "truncated.mid").write_bytes(tune[:-9])
    (root / "lying_header.mid").write_bytes(tune[:10] + struct.pack(">H", 4) + tune[12:])
    (root / "short.mid").write_bytes(midi_bytes([note_track(scale_notes(2))]))
    (root / "notes.txt").write_text("not a MIDI file and not named like one")
    (root / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    return root


@pytest.fixture(scope="session")
def trained_tiny_bundle(tmp_path_factory) -> Path:
    """`test_sampling.train_tiny_bundle`'s model (seconds of training on fixed melodies), trained once for every
    module that samples from it: the same seed gives the same weights, so sharing it changes no test."""
    from test_sampling import train_tiny_bundle

    return train_tiny_bundle(tmp_path_factory.mktemp("trained") / "tiny.melodyrnn")


# -- the app's tests (test_app.py, test_app_scores.py) ---------------------------------------------------


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """An untrained one-layer model: enough to exercise every path of the app in seconds."""
    from melodyrnn.bundle import save_bundle  # here: most tests never load Keras
    from melodyrnn.model import ModelConfig, build_model

    path = tmp_path_factory.mktemp("bundle") / "tiny.melodyrnn"
    save_bundle(path, build_model(ModelConfig(units=16, num_layers=1, attention_window=64)))
    return path


@pytest.fixture
def app(tiny_bundle, monkeypatch, tmp_path):
    """The app on `tiny_bundle` with its own scratch folder, run once (`streamlit.testing.v1.AppTest`)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MELODYRNN_MODEL", str(tiny_bundle))
    monkeypatch.setenv("MELODYRNN_APP_SCRATCH", str(tmp_path / "scratch"))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py"), default_timeout=180)
    at.run()
    assert not at.exception
    return at
