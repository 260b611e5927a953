"""The harmonizer: built from melodyrnn's Bidirectional, safe-mode bundles of their own task, `harmonize` on a
melody, a file and from the CLI, key and vocabulary restrictions, training by `train(task="harmonize")`."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import melodyrnn
from melodyrnn import layers
from melodyrnn.bundle import DEFAULT_BUNDLE_PATH
from melodyrnn.chords import parse_label
from melodyrnn.cli import main
from melodyrnn.encoding import Melody, melody_to_midi
from melodyrnn.errors import BundleError, MelodyRNNError, MidiReadError
from melodyrnn.extraction import midi_to_melodies
from melodyrnn.harmonize import (
    NUM_CLASSES,
    NUM_FEATURES,
    QUALITIES,
    chords_to_classes,
    class_to_label,
    harmonize,
    label_to_class,
    load_harmonizer,
    melody_to_frames,
    transpose_classes,
    transpose_features,
)
from melodyrnn.harmonizer_training import train_harmonizer
from melodyrnn.midi_io import read_midi

PROGRESSION = [("C:maj", (60, 64, 67)), ("A:min", (57, 60, 64)), ("F:maj", (65, 69, 72)), ("G:7", (67, 71, 74))]


def chorale_like(seed: int, bars: int = 8, source: str = "") -> Melody:
    """A 4/4 melody of quarter notes on the tones of a chord a bar (C Am F G7 turning), with those chords."""
    rng = np.random.default_rng(seed)
    events, chords = [], []
    for bar in range(bars):
        label, tones = PROGRESSION[(bar + seed) % len(PROGRESSION)]
        chords.append((bar * 16, label))
        for _ in range(4):
            events += [int(rng.choice(tones)), -2, -2, -2]
    return Melody(np.array(events), chords=tuple(chords), source=source or f"tune{seed % 6}.mid")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("harmonizer_run")
    melodies = [chorale_like(seed) for seed in range(24)]
    harmonizer = train_harmonizer(melodies, run, units=8, updates=6, eval_every=3, batch_size=4, progress=False)
    return harmonizer, run / "best.melodyrnn"


def test_chord_classes_reduce_and_round_trip():
    assert NUM_CLASSES == 12 * len(QUALITIES) + 1
    assert all(label_to_class(class_to_label(i)) == i for i in range(NUM_CLASSES))
    assert class_to_label(label_to_class("C:maj7")) == "C:maj"
    assert class_to_label(label_to_class("A:hdim7")) == "A:dim"
    assert class_to_label(label_to_class("G:9/3")) == "G:7"
    assert class_to_label(label_to_class("N")) == "N"


def test_frames_follow_the_beat_and_transpose_with_the_chords():
    melody = chorale_like(1, bars=2)
    features, starts = melody_to_frames(melody)
    assert features.shape == (8, NUM_FEATURES) and features.dtype == np.float32
    assert starts.tolist() == list(range(0, 32, 4))
    assert (np.abs(features).sum(axis=1) > 0).all()  # zero rows mean padding
    six_eight = Melody(np.array([67, -2, -2, 69, -2, -2] * 4), time_signatures=((0, 6, 8),))
    assert melody_to_frames(six_eight)[1].tolist() == [0, 6, 12, 18]  # the dotted quarter is the beat
    moved = melody.transpose(3)
    assert np.allclose(melody_to_frames(moved)[0], transpose_features(features, 3))
    classes = chords_to_classes(melody, starts)
    assert chords_to_classes(moved, starts).tolist() == transpose_classes(classes, 3).tolist()


def test_harmonizer_is_built_from_the_projects_bidirectional_lstm(trained):
    harmonizer, _ = trained
    wrappers = [layer for layer in harmonizer.model.layers if isinstance(layer, layers.Bidirectional)]
    assert len(wrappers) == 1
    assert isinstance(wrappers[0].forward_layer, layers.LSTM)
    assert isinstance(wrappers[0].backward_layer, layers.LSTM)


def test_bundle_names_its_task_and_loads_in_safe_mode_with_the_same_predictions(trained):
    harmonizer, path = trained
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read("bundle.json"))
    assert header["task"] == "harmonize"
    assert header["task_config"]["bidirectional"] is True
    loaded = load_harmonizer(path)
    features = [melody_to_frames(chorale_like(3))[0]]
    assert np.allclose(loaded.logits(features)[0], harmonizer.logits(features)[0], atol=1e-5)
    assert (path.parent / "log.csv").read_text().startswith("update,train_loss,val_nll,val_accuracy")


def test_harmonize_a_melody_gives_one_chord_per_beat(trained):
    harmonizer, _ = trained
    melody = chorale_like(5)
    done = harmonize(melody, harmonizer)
    assert isinstance(done, Melody)
    assert np.array_equal(done.events, melody.events)
    assert done.chords and all(step % 4 == 0 for step, _ in done.chords)
    assert harmonize(melody, harmonizer).chords == done.chords  # temperature 0: the likeliest, every time
    drawn = harmonize(melody, harmonizer, temperature=1.5, seed=7)
    assert harmonize(melody, harmonizer, temperature=1.5, seed=7).chords == drawn.chords


def test_half_bars_change_only_at_half_bars(trained):
    harmonizer, _ = trained
    done = harmonize(chorale_like(2), harmonizer, per="half_bar", temperature=2.0, seed=1)
    assert all(step % 8 == 0 for step, _ in done.chords)


def test_key_and_vocabulary_restrictions_hold(trained):
    harmonizer, _ = trained
    c_major = {0, 2, 4, 5, 7, 9, 11}
    for seed in range(3):
        done = harmonize(chorale_like(seed), harmonizer, key="C major", temperature=3.0, seed=seed)
        chords = [parse_label(label) for _, label in done.chords]
        assert all(set(c.pitch_classes) <= c_major for c in chords if c is not None)
        done = harmonize(chorale_like(seed), harmonizer, vocabulary="min,dim", temperature=3.0, seed=seed)
        assert {label.split(":")[-1] for _, label in done.chords} <= {"min", "dim", "N"}
    e_chords = harmonize(chorale_like(0), harmonizer, key="A minor", vocabulary=["maj"], temperature=5.0, seed=3)
    assert {label for _, label in e_chords.chords} <= {"C:maj", "F:maj", "G:maj", "E:maj", "N"}


def test_harmonize_a_file_gives_a_list(trained, tmp_path):
    _, path = trained
    midi = tmp_path / "tune.mid"
    melody_to_midi(chorale_like(4, source="tune.mid"), midi)
    done = melodyrnn.harmonize(midi, path)
    assert isinstance(done, list) and len(done) == 1 and done[0].chords


def test_cli_writes_the_melody_with_a_chord_track(trained, tmp_path, capsys):
    _, path = trained
    midi = tmp_path / "tune.mid"
    melody_to_midi(chorale_like(4), midi)
    out = tmp_path / "out" / "harmonized.mid"
    assert main(["harmonize", str(midi), "-o", str(out), "--model", str(path), "--key", "C major"]) == 0
    assert "chord changes" in capsys.readouterr().out
    back = midi_to_melodies(out)
    assert len(back) == 1 and back[0].chords  # the chord track reads back as chords
    assert np.array_equal(back[0].events[: len(chorale_like(4))], chorale_like(4).events)


def test_cli_writes_lead_sheets_and_a_backing(trained, tmp_path, capsys):
    from music21 import converter, harmony

    _, path = trained
    midi = tmp_path / "tune.mid"
    melody_to_midi(chorale_like(4), midi)
    out = tmp_path / "out" / "sheet.mid"
    args = ["harmonize", str(midi), "-o", str(out), "--model", str(path), "--format", "mid,musicxml,abc"]
    assert main([*args, "--backing", "waltz"]) == 0
    done = melodyrnn.harmonize(midi, path)[0]
    symbols = list(converter.parse(out.with_suffix(".musicxml")).recurse().getElementsByClass(harmony.ChordSymbol))
    assert len(symbols) == len(done.chords)  # one chord symbol per change, as harmonized
    assert out.with_suffix(".abc").read_text().startswith("X:")
    assert len(read_midi(out).tracks) == 3  # melody, the waltz's chords and its bass line
    assert main([*args[:-2], "--format", "pdf"]) == 2


def test_cli_bad_input_is_one_line(trained, tmp_path, capsys):
    _, path = trained
    midi = tmp_path / "tune.mid"
    melody_to_midi(chorale_like(4), midi)
    assert main(["harmonize", str(midi), "-o", str(tmp_path / "x.mid"), "--model", str(DEFAULT_BUNDLE_PATH)]) == 2
    assert "not a 'harmonize' model" in capsys.readouterr().err
    assert main(["harmonize", str(midi), "-o", str(tmp_path / "x.txt"), "--model", str(path)]) == 2
    assert main(["harmonize", str(tmp_path / "missing.mid"), "-o", str(tmp_path / "x.mid"), "--model", str(path)]) == 2
    assert main(["harmonize", str(midi), "-o", str(tmp_path / "x.mid"), "--vocabulary", "sus9"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 3


def test_a_model_of_the_other_kind_is_refused_clearly(trained):
    _, path = trained
    with pytest.raises(BundleError, match="holds a 'melody' model, not a 'harmonize' model"):
        load_harmonizer(DEFAULT_BUNDLE_PATH)
    with pytest.raises(BundleError, match="holds a 'melody' model"):
        harmonize(chorale_like(0), DEFAULT_BUNDLE_PATH)
    with pytest.raises(BundleError, match="holds a 'harmonize' model, not a 'melody' model.*melodyrnn.harmonize"):
        melodyrnn.load(path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": -1}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"per": "bar"}, "per"),
        ({"vocabulary": ["sus9"]}, "vocabulary"),
        ({"vocabulary": []}, "vocabulary"),
        ({"key": "H major"}, "tonic"),
        ({"key": "C pentatonic major", "vocabulary": ["dim"]}, "no chord"),
    ],
)
def test_bad_arguments_raise(trained, kwargs, match):
    harmonizer, _ = trained
    with pytest.raises(MelodyRNNError, match=match):
        harmonize(chorale_like(0), harmonizer, **kwargs)


def test_bad_melodies_and_models_raise(trained, tmp_path):
    harmonizer, _ = trained
    with pytest.raises(MelodyRNNError, match="melody_or_path"):
        harmonize(42, harmonizer)
    with pytest.raises(MelodyRNNError, match="0 steps"):
        harmonize(Melody(np.zeros(0, np.int16)), harmonizer)
    with pytest.raises(MidiReadError):
        harmonize(tmp_path / "missing.mid", harmonizer)
    with pytest.raises(MelodyRNNError, match="`model`"):
        harmonize(chorale_like(0), 3)
    with pytest.raises(BundleError):
        harmonize(chorale_like(0), tmp_path / "missing.melodyrnn")


def test_training_needs_chords(tmp_path):
    plain = [replace_chords(chorale_like(seed)) for seed in range(4)]
    with pytest.raises(MelodyRNNError, match="no melody with chords"):
        train_harmonizer(plain, tmp_path / "run", updates=1, progress=False)
    with pytest.raises(MelodyRNNError, match="updates"):
        train_harmonizer([chorale_like(0)], tmp_path / "run", updates=0, progress=False)


def replace_chords(melody: Melody) -> Melody:
    from dataclasses import replace

    return replace(melody, chords=())


def test_train_task_harmonize_from_the_api_and_the_cli(tmp_path, capsys):
    melodies = [chorale_like(seed) for seed in range(8)]
    result = melodyrnn.train(
        melodies, tmp_path / "api", {"units": 4}, {"updates": 2, "eval_every": 1, "max_frames": 16}, task="harmonize"
    )
    assert isinstance(result, melodyrnn.Harmonizer) and result.config["units"] == 4
    with pytest.raises(MelodyRNNError, match="task"):
        melodyrnn.train(melodies, tmp_path / "bad", task="chords")
    folder = tmp_path / "songs"
    folder.mkdir()
    for seed, melody in enumerate(melodies):
        melody_to_midi(melody, folder / f"song{seed}.mid", chords=True)  # a melody track and a block-chord track
    run = tmp_path / "cli"
    args = ["train", str(folder), "--task", "harmonize", "-o", str(run), "--units", "4", "--updates", "2"]
    assert main([*args, "--no-progress"]) == 0
    assert "harmonizer:" in capsys.readouterr().out
    assert load_harmonizer(run / "best.melodyrnn").config["units"] == 4
    assert main([*args, "--resume"]) == 2
