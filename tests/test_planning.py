"""How a run plans itself: where it starts (bundled model or scratch, and why), its budget in updates, and what
decides when it stops — checked on real (tiny) training runs where it matters."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from test_training import TINY_MODEL, tiny_melodies

import melodyrnn
from melodyrnn.bundle import DEFAULT_BUNDLE_PATH, load_bundle, save_bundle
from melodyrnn.collection import MIN_VALIDATION_STEPS
from melodyrnn.dataset import PreparedData
from melodyrnn.encoding import EncodingConfig
from melodyrnn.errors import MelodyRNNError
from melodyrnn.model import ModelConfig, build_model
from melodyrnn.planning import (
    AUTO_PATIENCE,
    FALLBACK_UPDATES,
    FINE_TUNE_LEARNING_RATE,
    FINE_TUNE_MAX_STEPS,
    MIN_ROUND_UPDATES,
    MIN_UPDATES,
    TrainConfig,
    choose_start,
    plan_run,
)
from melodyrnn.training import train

FAST = {"seq_len": 16, "batch_size": 4, "max_minutes": None}


def long_melodies(n: int, steps: int, low: int = 60) -> list[melodyrnn.Melody]:
    """`n` files of one melody each, `steps` long: scales up and down from `low`."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        pitches = low + rng.integers(0, 12, steps // 4)
        notes = [(int(p), 4 * k, 4 * k + 3) for k, p in enumerate(pitches)]
        out.append(melodyrnn.Melody.from_notes(notes, num_steps=steps, source=f"long{i}.mid"))
    return out


@pytest.fixture(scope="module")
def small():
    return PreparedData.from_melodies(tiny_melodies(8), validation_fraction=0.3)


# -- where a run starts --------------------------------------------------------------------------------------


def test_small_data_of_the_bundled_encoding_fine_tunes_the_bundled_model(small):
    start = choose_start(small)
    assert start.fine_tune and start.bundle == DEFAULT_BUNDLE_PATH
    assert (
        start.reason.startswith("fine-tuning the bundled default model") and f"{FINE_TUNE_MAX_STEPS:,}" in start.reason
    )


def test_asked_starts_win_and_exclude_each_other(small, tmp_path):
    assert choose_start(small, from_scratch=True).reason == "from scratch, as asked (--from-scratch)"
    other = tmp_path / "other.melodyrnn"
    start = choose_start(small, from_bundle=other)
    assert start.bundle == other and "as asked (--from)" in start.reason
    with pytest.raises(MelodyRNNError, match="exclude each other"):
        choose_start(small, from_bundle=other, from_scratch=True)


def test_another_steps_per_quarter_trains_from_scratch_and_says_why(tmp_path):
    data = PreparedData.from_melodies(tiny_melodies(8), EncodingConfig(steps_per_quarter=3), validation_fraction=0.3)
    start = choose_start(data)
    assert start.bundle is None
    assert (
        "encoding does not fit the bundled model" in start.reason and "steps_per_quarter 3 (it has 4)" in start.reason
    )
    # the same through a real run, which writes the reason into the run folder's bundles
    result = train(data, tmp_path / "run", train_config={**FAST, "updates": 2}, progress=False)
    assert result.start["from"] is None and "steps_per_quarter 3" in result.start["reason"]
    metadata = load_bundle(result.latest_path, compile=False).metadata
    assert metadata["training"]["start"] == result.start and "start: from scratch" in result.summary()


def test_notes_outside_what_the_bundled_model_learnt_train_from_scratch():
    bass = PreparedData.from_melodies(long_melodies(8, 64, low=28), validation_fraction=0.3)  # pitches 28-39
    start = choose_start(bass)
    assert start.bundle is None and "pitch range the bundled model learnt (55-93)" in start.reason


def test_large_data_and_a_missing_bundle_train_from_scratch(tmp_path):
    large = PreparedData.from_melodies(long_melodies(4, FINE_TUNE_MAX_STEPS // 3), validation_fraction=0.0)
    reason = choose_start(large).reason
    assert reason.startswith("from scratch: ") and "training steps, enough to beat the bundled model" in reason
    small = PreparedData.from_melodies(tiny_melodies(4))
    assert "no bundled default model" in choose_start(small, default_bundle=tmp_path / "none.melodyrnn").reason


def test_a_model_config_means_a_new_model(small, tmp_path):
    result = train(small, tmp_path / "run", TINY_MODEL, {**FAST, "updates": 2}, progress=False)
    assert result.start == {
        "from": None,
        "reason": "from scratch: a model config was given (a new model of that shape)",
    }
    with pytest.raises(MelodyRNNError, match="a warm start can only add conditions"):
        train(small, tmp_path / "run2", TINY_MODEL, from_bundle=DEFAULT_BUNDLE_PATH, progress=False)


# -- the plan --------------------------------------------------------------------------------------------------


def test_too_little_validation_falls_back_to_a_fixed_budget(small):
    assert int(small.lengths[small.indices("validation")].sum()) < MIN_VALIDATION_STEPS
    windows = small.num_windows("train", 16)
    tuned = plan_run(small, TrainConfig(**FAST), True, windows)
    assert tuned.updates >= FALLBACK_UPDATES and tuned.patience is None
    assert tuned.updates_per_round == MIN_ROUND_UPDATES and tuned.learning_rate == FINE_TUNE_LEARNING_RATE
    assert "too few to stop on" in tuned.notes[0] and tuned.transpose > 0
    scratch = plan_run(small, TrainConfig(**FAST), False, windows)
    assert scratch.updates >= MIN_UPDATES and scratch.warmup_updates == 0 and scratch.learning_rate == 3e-3
    # what the config states is kept: an explicit patience still stops early on the little validation there is
    assert plan_run(small, TrainConfig(**FAST, patience=2), True, windows).patience == 2


def test_enough_validation_decides_and_the_budget_grows_with_the_data():
    data = PreparedData.from_melodies(long_melodies(40, 512), validation_fraction=0.1)  # 20,480 steps
    assert int(data.lengths[data.indices("validation")].sum()) >= MIN_VALIDATION_STEPS  # topped up to the minimum
    windows = data.num_windows("train", 256)
    plan = plan_run(data, TrainConfig(), True, windows)
    assert plan.patience == AUTO_PATIENCE and plan.updates >= MIN_UPDATES and "its loss stops the run" in plan.notes[0]
    assert plan_run(data, TrainConfig(epochs=3), True, windows).rounds == 3
    explicit = plan_run(data, TrainConfig(updates=100, steps_per_epoch=30), True, windows)
    assert (explicit.rounds, explicit.updates) == (4, 120)
    with pytest.raises(MelodyRNNError, match="`updates` must be None when `epochs` is given"):
        TrainConfig(epochs=3, updates=100)


def test_a_run_on_a_handful_of_tiny_melodies_makes_the_minimum_of_updates(small, tmp_path):
    keras.utils.set_random_seed(0)
    result = train(small, tmp_path / "run", TINY_MODEL, {"seq_len": 16, "max_minutes": None}, progress=False)
    assert int(result.model.optimizer.iterations) >= MIN_UPDATES
    assert result.plan["patience"] is None and "too few to stop on" in result.plan["notes"][0]
    assert result.stopped == "completed" and result.epochs == result.plan["rounds"]


def test_small_data_repeats_with_a_fresh_transposition_every_pass(small):
    windows = small.num_windows("train", 16)
    batches = list(small.dataset(16, windows, transpose=5, seed=3, drop_remainder=True).repeat(3).as_numpy_iterator())
    assert len(batches) == 3
    passes = [np.sort(b[0], axis=0) for b in batches]  # the same windows each pass, moved by other shifts
    assert not np.array_equal(passes[0], passes[1]) and not np.array_equal(passes[1], passes[2])


# -- fine-tuning settings -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "tiny.melodyrnn"
    save_bundle(path, build_model(ModelConfig(**TINY_MODEL)))
    return path


class _LearningRates(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_warm_up_raises_the_learning_rate_then_holds_it(small, tiny_bundle, tmp_path):
    rates = _LearningRates()
    config = {**FAST, "updates": 30, "warmup_updates": 10, "learning_rate": 0.01}
    train(small, tmp_path / "run", train_config=config, from_bundle=tiny_bundle, callbacks=[rates], progress=False)
    assert rates.rates[:10] == pytest.approx([0.001 * (i + 1) for i in range(10)], rel=1e-5)
    assert rates.rates[10:] == pytest.approx([0.01] * (len(rates.rates) - 10))


@pytest.mark.parametrize("freeze", [1, 2])
def test_frozen_layers_keep_their_weights(small, tmp_path, freeze):
    two = tmp_path / "two.melodyrnn"
    save_bundle(two, build_model(ModelConfig(**{**TINY_MODEL, "num_layers": 2})))
    before = load_bundle(two, compile=False).model
    result = train(small, tmp_path / "run", train_config={**FAST, "updates": 5, "freeze": freeze}, from_bundle=two,
                   progress=False)  # fmt: skip
    after = result.model
    for layer, frozen in [("embedding", True), ("lstm_0", freeze >= 2), ("lstm_1", False)]:
        same = all(
            np.array_equal(a, b)
            for a, b in zip(before.get_layer(layer).get_weights(), after.get_layer(layer).get_weights())
        )
        assert same == frozen, layer


def test_a_cosine_schedule_falls_to_a_tenth_at_the_last_update(small, tiny_bundle, tmp_path):
    rates = _LearningRates()
    config = {**FAST, "updates": 30, "warmup_updates": 5, "learning_rate": 0.01, "schedule": "cosine"}
    train(small, tmp_path / "run", train_config=config, from_bundle=tiny_bundle, callbacks=[rates], progress=False)
    assert rates.rates[:5] == pytest.approx([0.002 * (i + 1) for i in range(5)], rel=1e-5)
    after = rates.rates[5:]
    assert after[0] == pytest.approx(0.01) and all(a >= b for a, b in zip(after, after[1:]))
    assert after[-1] == pytest.approx(0.001, rel=0.05)
