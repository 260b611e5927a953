"""Tests for melodyrnn.training: configs, the run folder, resume after an interruption, fine-tuning, early
stopping, the time budget and mirrored training on 2 logical CPUs. (`melodyrnn train`, and resume after a SIGKILL,
are in test_cli.py; multi-worker training is in test_distribute.py.)"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import melodyrnn
from melodyrnn.bundle import load_bundle
from melodyrnn.dataset import PreparedData
from melodyrnn.encoding import NUM_SPECIAL, EncodingConfig
from melodyrnn.errors import BundleError, DataError, MelodyRNNError
from melodyrnn.evaluation import evaluate, summarize
from melodyrnn.model import ModelConfig
from melodyrnn.ngram import NGramModel
from melodyrnn.run_folder import read_run
from melodyrnn.training import TrainConfig, default_model_config, train

REPO = Path(__file__).resolve().parent.parent
TINY_MODEL = dict(units=12, num_layers=1, embedding_dim=8, attention_heads=2, attention_window=8, dropout=0.0)
TINY_TRAIN = dict(seq_len=16, batch_size=4, learning_rate=0.01, max_minutes=None, patience=None)
TINY_FLAGS = [
    "--units",
    "12",
    "--layers",
    "1",
    "--embedding-dim",
    "8",
    "--dropout",
    "0",
    "--seq-len",
    "16",
    "--batch-size",
    "4",
    "--learning-rate",
    "0.01",
    "--max-minutes",
    "0",
    "--patience",
    "0",
    "--no-progress",
]


def tiny_melodies(n=8, **metadata):
    riff = [(60, 0, 2), (64, 2, 4), (67, 4, 6), (72, 6, 8)]
    return [
        melodyrnn.Melody.from_notes(
            [(p + i % 3, s + 8 * k, e + 8 * k) for k in range(6) for p, s, e in riff],
            num_steps=48,
            source=f"f{i}.mid",
            **metadata,
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def data():
    prepared = PreparedData.from_melodies(tiny_melodies(), validation_fraction=0.3)
    assert prepared.indices("validation").size and prepared.indices("train").size
    return prepared


@pytest.fixture(scope="module")
def cache(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("cache") / "tiny.npz"
    data.save(path)
    return path


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    keras.utils.set_random_seed(0)
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    return train(data, run_dir, TINY_MODEL, dict(TINY_TRAIN, epochs=4), progress=False)


def ids(batch=2, steps=20, seed=0):
    return np.random.default_rng(seed).integers(0, 130, (batch, steps)).astype("int32")


# -- TrainConfig ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("batch_size", 1.5),
        ("seq_len", 1),
        ("learning_rate", 0),
        ("clipnorm", -1.0),
        ("patience", 0),
        ("transpose", 25),
        ("seed", "a"),
        ("strategy", "tpu"),
        ("steps_per_epoch", 0),
        ("max_minutes", 0),
    ],
)
def test_train_config_rejects_bad_fields_naming_them(field, value):
    with pytest.raises(MelodyRNNError, match=f"`{field}` must be .*, got {value!r}"):
        TrainConfig(**{field: value})


def test_train_config_round_trips_through_json():
    config = TrainConfig(epochs=3, clipnorm=None, patience=None, max_minutes=2.5, strategy="mirrored")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(MelodyRNNError, match="unknown train config fields \\['epoch'\\]"):
        TrainConfig.from_dict({"epoch": 3})


def test_default_model_grows_with_the_data(data):
    assert default_model_config(data).units < ModelConfig().units
    assert default_model_config(data).vocab_size == data.config.vocab_size


# -- a run ---------------------------------------------------------------------------------------------------


def test_loss_falls(run):
    trained = run.history[1:]
    losses = [row["loss"] for row in trained]
    assert losses[-1] < 0.7 * losses[0]
    assert trained[-1]["val_loss"] < trained[0]["val_loss"] < run.history[0]["val_loss"]


def test_a_new_model_is_scored_before_training_but_never_kept_as_best(run):
    start = run.history[0]
    assert [row["epoch"] for row in run.history] == [0, 1, 2, 3, 4]
    assert "loss" not in start and start["val_loss"] > 0 and start["val_event_accuracy"] >= 0
    assert run.best_epoch >= 1 and run.epochs == 4
    lines = run.summary().splitlines()
    table = next(i for i, line in enumerate(lines) if line.lstrip().startswith("epoch"))
    assert lines[table + 2].startswith("    0 ")  # the table's first row: epoch 0, not marked best


def test_the_summary_sets_the_run_beside_the_bundled_model_and_a_6_gram(run, data):
    assert re.search(
        r"\nbaselines \(val loss on the same melodies\): bundled default model \d+\.\d{4}, 6-gram \d+\.\d{4}$",
        run.summary(),
    )
    baselines = load_bundle(run.latest_path, compile=False).metadata["training"]["baselines"]
    assert baselines == run.baselines and set(baselines) == {"bundled_default", "ngram_6"}
    train_tokens = [data.melody_tokens(i) for i in data.indices("train")]
    val_tokens = [data.melody_tokens(i) for i in data.indices("validation")]
    ngram = NGramModel(order=6, vocab_size=data.config.vocab_size).fit(train_tokens)
    assert baselines["ngram_6"] == pytest.approx(
        summarize(val_tokens, ngram.score_token_lists(val_tokens))["nll_per_step"]
    )
    bundled = evaluate(melodyrnn.load(compile=False), data)["nll_per_step"]
    assert math.isfinite(bundled) and baselines["bundled_default"] == pytest.approx(bundled, rel=1e-5)


def test_the_bundled_model_is_not_compared_on_data_of_another_encoding(tmp_path):
    encoding = EncodingConfig(steps_per_quarter=3)
    data = PreparedData.from_melodies(tiny_melodies(steps_per_quarter=3), encoding, validation_fraction=0.3)
    result = train(data, tmp_path / "run", TINY_MODEL, dict(TINY_TRAIN, epochs=1), progress=False)
    assert result.baselines["bundled_default"] is None and result.baselines["ngram_6"] > 0
    assert result.summary().endswith(
        "bundled default model not comparable: it was trained on another encoding (steps_per_quarter 4 against "
        f"the data's 3), 6-gram {result.baselines['ngram_6']:.4f}"
    )


def test_run_folder_holds_bundles_logs_and_state(run):
    names = {p.name for p in run.run_dir.iterdir()}
    assert names == {"latest.melodyrnn", "best.melodyrnn", "log.csv", "train_state.json", "tensorboard"}
    with open(run.run_dir / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4]
    assert rows[0]["loss"] == "" and float(rows[0]["val_loss"]) == pytest.approx(run.history[0]["val_loss"])
    assert float(rows[-1]["val_loss"]) == pytest.approx(run.history[-1]["val_loss"])
    for column in (
        "loss",
        "perplexity",
        "accuracy",
        "val_perplexity",
        "val_accuracy",
        "val_event_accuracy",
        "val_no_event_accuracy",
    ):
        assert rows[-1][column] != ""
    state = json.loads((run.run_dir / "train_state.json").read_text())
    assert state["epoch"] == 4 and state["best"]["epoch"] == run.best_epoch
    assert TrainConfig.from_dict(state["train_config"]) == TrainConfig(**TINY_TRAIN, epochs=4)
    for split in ("train", "validation"):
        assert any((run.run_dir / "tensorboard" / split).glob("events.out.tfevents.*"))
    best = min(run.history[1:], key=lambda r: r["val_loss"])
    assert run.best_epoch == best["epoch"] and run.best_val_loss == best["val_loss"]
    assert run.stopped == "completed" and run.epochs == 4
    assert "val loss" in run.summary() and f"best epoch {run.best_epoch}" in run.summary()


def test_bundle_metadata_describes_the_run(run, data):
    metadata = load_bundle(run.latest_path, compile=False).metadata
    assert metadata["training"]["epoch"] == 4
    assert [row["epoch"] for row in metadata["training"]["history"]] == [0, 1, 2, 3, 4]
    assert metadata["data"]["train_melodies"] == data.indices("train").size
    openings = [data.melody_tokens(i)[0] < NUM_SPECIAL for i in data.indices("train")]
    assert metadata["data"]["pickup_share"] == round(float(np.mean(openings)), 4)
    assert metadata["data"]["report"]["melodies_kept"] == 8
    assert load_bundle(run.best_path, compile=False).metadata["training"]["epoch"] == run.best_epoch


def test_save_load_gives_identical_predictions_in_keras_safe_mode(run, tmp_path):
    expected = np.asarray(run.model(ids()))
    np.testing.assert_array_equal(np.asarray(load_bundle(run.latest_path).model(ids())), expected)
    with zipfile.ZipFile(run.latest_path) as zf:
        (tmp_path / "model.keras").write_bytes(zf.read("model.keras"))
    model = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(model(ids())), expected)
    assert model.optimizer is not None and int(model.optimizer.iterations) > 0


# -- resume, fine-tuning, errors -----------------------------------------------------------------------------


class _InterruptAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"at epoch {epoch}")


def test_resume_after_interrupt_continues_from_the_next_epoch(data, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt, match="at epoch 2"):
        train(data, run_dir, TINY_MODEL, dict(TINY_TRAIN, epochs=5), callbacks=[_InterruptAt(2)], progress=False)
    assert read_run(run_dir)["epoch"] == 2
    baselines = read_run(run_dir)["baselines"]
    iterations = int(load_bundle(run_dir / "latest.melodyrnn").model.optimizer.iterations)
    result = train(data, run_dir, train_config={"epochs": 4}, resume=True, progress=False)
    assert [row["epoch"] for row in result.history] == [0, 1, 2, 3, 4]
    assert result.epochs == 4 and result.baselines == baselines and "bundled default model" in result.summary()
    # the optimizer carried on: two more epochs' worth of steps, not a restart
    assert int(load_bundle(run_dir / "latest.melodyrnn").model.optimizer.iterations) == 2 * iterations
    assert TrainConfig.from_dict(read_run(run_dir)["train_config"]).learning_rate == TINY_TRAIN["learning_rate"]
    again = train(data, run_dir, train_config={"epochs": 4}, resume=True, progress=False)
    assert again.stopped == "nothing_to_do" and again.epochs == 4


def test_run_folder_misuse_raises(run, data, tmp_path):
    with pytest.raises(MelodyRNNError, match="already holds a run"):
        train(data, run.run_dir, TINY_MODEL, TINY_TRAIN, progress=False)
    with pytest.raises(MelodyRNNError, match="holds no latest.melodyrnn"):
        train(data, tmp_path / "empty", resume=True, progress=False)
    with pytest.raises(MelodyRNNError, match="exclude each other"):
        train(data, run.run_dir, resume=True, from_bundle=run.best_path, progress=False)
    with pytest.raises(MelodyRNNError, match="model config cannot change"):
        train(data, run.run_dir, {"units": 16}, resume=True, progress=False)


class _WeightsAtStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = [np.asarray(w) for w in self.model.weights]


def test_fine_tune_starts_from_the_bundle(run, data, tmp_path):
    start = _WeightsAtStart()
    result = train(
        data,
        tmp_path / "tuned",
        train_config=dict(TINY_TRAIN, epochs=1, learning_rate=0.001),
        from_bundle=run.best_path,
        callbacks=[start],
        progress=False,
    )
    source = load_bundle(run.best_path, compile=False).model
    for a, b in zip(start.weights, source.weights):
        np.testing.assert_array_equal(a, np.asarray(b))
    assert result.model.config == source.config
    assert read_run(tmp_path / "tuned")["fine_tuned_from"] == str(run.best_path)
    assert int(result.model.optimizer.iterations) < int(load_bundle(run.best_path).model.optimizer.iterations)


def test_a_fine_tune_that_only_gets_worse_keeps_the_bundle_it_started_from(run, data, tmp_path):
    # Adam's every step moves each weight by about the learning rate: at 50 each update wrecks the model.
    config = dict(TINY_TRAIN, epochs=5, learning_rate=50.0, patience=2)
    result = train(data, tmp_path / "tuned", train_config=config, from_bundle=run.best_path, progress=False)
    start = result.history[0]
    assert start["val_loss"] == pytest.approx(evaluate(run.best_path, data)["nll_per_step"])
    # patience counts the epochs after 0: two epochs that did not beat the starting model
    assert [row["epoch"] for row in result.history] == [0, 1, 2] and result.stopped == "early_stopping"
    assert all(row["val_loss"] > start["val_loss"] for row in result.history[1:])
    assert (result.best_epoch, result.best_val_loss) == (0, start["val_loss"]) and "best epoch 0" in result.summary()
    best = load_bundle(result.best_path, compile=False)
    assert best.metadata["training"]["best"] == {"epoch": 0, "val_loss": start["val_loss"]}
    expected = np.asarray(load_bundle(run.best_path, compile=False).model(ids()))
    np.testing.assert_array_equal(np.asarray(best.model(ids())), expected)
    # resumed, the run still knows its best is the starting model
    resumed = train(data, tmp_path / "tuned", train_config={"epochs": 3, "patience": None}, resume=True, progress=False)
    assert [row["epoch"] for row in resumed.history] == [0, 1, 2, 3] and resumed.best_epoch == 0
    np.testing.assert_array_equal(np.asarray(load_bundle(resumed.best_path, compile=False).model(ids())), expected)


def test_fine_tune_refuses_data_of_another_vocabulary(run, tmp_path):
    narrow = PreparedData.from_melodies(
        tiny_melodies(), EncodingConfig(min_pitch=48, max_pitch=84), validation_fraction=0.3
    )
    with pytest.raises(DataError, match="the model expects"):
        train(narrow, tmp_path / "tuned", train_config=TINY_TRAIN, from_bundle=run.best_path, progress=False)


def test_a_bad_bundle_raises_bundle_error(data, tmp_path):
    bad = tmp_path / "bad.melodyrnn"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(BundleError, match="not a melodyrnn bundle, or it is corrupt or truncated"):
        train(data, tmp_path / "tuned", train_config=TINY_TRAIN, from_bundle=bad, progress=False)
    with pytest.raises(BundleError, match="does not exist"):
        train(
            data,
            tmp_path / "tuned2",
            train_config=TINY_TRAIN,
            from_bundle=tmp_path / "missing.melodyrnn",
            progress=False,
        )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "latest.melodyrnn").write_bytes(b"garbage")
    with pytest.raises(MelodyRNNError, match="holds no training run"):
        train(data, run_dir, resume=True, progress=False)


def test_bad_data_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="neither a prepared cache"):
        train(tmp_path / "nothing", tmp_path / "run", progress=False)
    with pytest.raises(DataError, match="`data` must be PreparedData, .*got int"):
        train(42, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # a run that never started leaves no empty folder behind
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataError, match="neither a prepared cache"):
        train(tmp_path / "nothing", tmp_path / "mine", progress=False)
    assert (tmp_path / "mine").is_dir()  # a folder the user made stays


# -- stopping ------------------------------------------------------------------------------------------------


def test_early_stopping_on_validation_loss(data, tmp_path):
    # A learning rate far below float32 resolution leaves the validation loss where it is: no improvement.
    result = train(
        data, tmp_path / "run", TINY_MODEL, dict(TINY_TRAIN, epochs=10, learning_rate=1e-30, patience=2), progress=False
    )
    assert result.stopped == "early_stopping"
    assert result.epochs == 3 and result.best_epoch == 1
    assert read_run(tmp_path / "run")["stopped"] == "early_stopping"


def test_time_budget_stops_mid_epoch_and_saves(data, tmp_path):
    result = train(data, tmp_path / "run", TINY_MODEL, dict(TINY_TRAIN, epochs=5, max_minutes=1e-9), progress=False)
    assert result.stopped == "time_budget" and result.epochs == 1
    assert [row["epoch"] for row in result.history] == [0, 1] and result.history[-1]["partial"] is True
    assert load_bundle(result.latest_path).metadata["training"]["epoch"] == 1


def test_without_a_validation_split_the_training_loss_picks_the_best(tmp_path):
    data = PreparedData.from_melodies(tiny_melodies(4), validation_fraction=0.0)
    result = train(data, tmp_path / "run", TINY_MODEL, dict(TINY_TRAIN, epochs=2, steps_per_epoch=3), progress=False)
    assert "val_loss" not in result.history[0] and result.best_val_loss == min(r["loss"] for r in result.history)
    assert [row["epoch"] for row in result.history] == [1, 2]  # nothing to score the starting model on
    assert result.baselines == {} and "baselines" not in result.summary()
    assert int(result.model.optimizer.iterations) == 6


# -- mirrored training in a subprocess -----------------------------------------------------------------------


@pytest.mark.slow
def test_mirrored_training_on_two_logical_cpus(cache, tmp_path):
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from melodyrnn.training import train
        from melodyrnn.bundle import load_bundle
        result = train({str(cache)!r}, {str(tmp_path / "run")!r}, {TINY_MODEL!r},
                       dict({TINY_TRAIN!r}, epochs=3, strategy="mirrored"), progress=False)
        bundle = load_bundle(result.latest_path)
        print(json.dumps({{"replicas": result.replicas, "losses": [r["loss"] for r in result.history[1:]],
                          "epoch": bundle.metadata["training"]["epoch"]}}))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["epoch"] == 3
    assert report["losses"][-1] < report["losses"][0]
