"""Tests for melodyrnn.model: the config, shapes, causality, step-by-step == full call, and a short fit.

The layers have their own files (test_attention.py, test_lookback.py) and so do bundles (test_bundle.py), which
reuses this file's `VARIANTS` and helpers.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import melodyrnn
from melodyrnn.bundle import load
from melodyrnn.encoding import EncodingConfig
from melodyrnn.errors import MelodyRNNError
from melodyrnn.model import ModelConfig, build_model

VOCAB = EncodingConfig().vocab_size
STEPS = 12
TINY = dict(units=8, embedding_dim=6, attention_heads=2, vocab_size=VOCAB, dropout=0.0)

VARIANTS = {
    "plain_lstm": ModelConfig(**TINY, attention=False),
    "plain_gru": ModelConfig(**TINY, cell="gru", attention=False),
    "plain_rnn": ModelConfig(**TINY, cell="rnn", attention=False),
    "norm_residual_3_layers": ModelConfig(**TINY, num_layers=3, attention=False, layer_norm=True, residual=True),
    "lookback": ModelConfig(**TINY, attention=False, lookback=True, steps_per_bar=4),
    "lookback_3_4": ModelConfig(**TINY, attention=False, lookback=True, steps_per_bar=3, cell="gru"),
    "attention": ModelConfig(**TINY),
    "attention_content_only": ModelConfig(**TINY, attention_relative_bias=False, attention_previous_key=False),
    "attention_relative_bias_only": ModelConfig(**TINY, attention_previous_key=False, attention_window=5),
    "attention_previous_key_only": ModelConfig(**TINY, attention_relative_bias=False, cell="gru"),
    "attention_window": ModelConfig(**TINY, attention_window=5),
    "attention_one_layer": ModelConfig(**TINY, num_layers=1, attention_window=4, cell="rnn"),
    "everything": ModelConfig(
        **TINY, lookback=True, steps_per_bar=4, attention_window=5, layer_norm=True, residual=True, cell="gru"
    ),
}


def random_ids(batch=3, steps=STEPS, seed=0):
    return np.random.default_rng(seed).integers(0, VOCAB, (batch, steps)).astype("int32")


def step_through(model, ids, steps_per_bar=None):
    state = model.initial_state(ids.shape[0], steps_per_bar)
    outputs = []
    for t in range(ids.shape[1]):
        logits, state = model.step(ids[:, t], state)
        outputs.append(np.asarray(logits))
    return np.stack(outputs, axis=1)


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(1)
    return {name: build_model(config) for name, config in VARIANTS.items()}


# -- configuration --------------------------------------------------------------------------------------------


def test_default_config_is_lstm_attention_lstm():
    config = ModelConfig()
    assert (config.cell, config.num_layers, config.attention, config.lookback) == ("lstm", 2, True, False)
    assert config.key_dim == config.units // config.attention_heads
    assert config.vocab_size == VOCAB


def test_config_dict_round_trip_through_json():
    for config in VARIANTS.values():
        assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(cell="transformer"), "`cell` must be one of"),
        (dict(num_layers=0), "`num_layers` must be an integer in"),
        (dict(units=2.5), r"`units` must be an integer in \[1, 2048\], got 2.5"),
        (dict(embedding_dim=0), "`embedding_dim`"),
        (dict(dropout=1.0), r"`dropout` must be a float in \[0, 1\), got 1.0"),
        (dict(layer_norm=1), "`layer_norm` must be True or False, got 1"),
        (dict(attention_heads=0), "`attention_heads`"),
        (dict(units=4, attention_heads=8), "`attention_heads` must be <= units=4"),
        (dict(attention_key_dim=0), "`attention_key_dim`"),
        (dict(attention_window=0), "`attention_window`"),
        (dict(steps_per_bar=0), "`steps_per_bar`"),
        (dict(steps_per_bar=80), r"`max_steps_per_bar` must be an integer in \[steps_per_bar=80, 1024\], got 64"),
        (dict(max_steps_per_bar=0), "`max_steps_per_bar`"),
        (dict(vocab_size=2), r"`vocab_size` must be an integer in \[3, 4096\], got 2"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(MelodyRNNError, match=match):
        ModelConfig(**kwargs)


def test_config_from_dict_rejects_unknown_fields():
    with pytest.raises(MelodyRNNError, match="unknown model config fields.*'hidden'"):
        ModelConfig.from_dict({"hidden": 3})
    with pytest.raises(MelodyRNNError, match="must be a dict"):
        ModelConfig.from_dict([1, 2])


def test_old_lookback_configs_without_max_steps_per_bar_keep_their_shape():
    # bundles saved before the field sized the lookback counter from steps_per_bar
    old = {k: v for k, v in VARIANTS["lookback"].to_dict().items() if k != "max_steps_per_bar"}
    assert ModelConfig.from_dict(old).max_steps_per_bar == 4
    assert ModelConfig.from_dict({"lookback": False}).max_steps_per_bar == ModelConfig().max_steps_per_bar
    assert load().model_config.max_steps_per_bar == ModelConfig().max_steps_per_bar  # the shipped default model


def test_build_model_rejects_a_non_config():
    with pytest.raises(MelodyRNNError, match="`config` must be a ModelConfig"):
        build_model({"units": 8})


# -- shapes, causality, single steps ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_shapes_and_dtypes(models, name):
    logits = models[name](random_ids())
    assert tuple(logits.shape) == (3, STEPS, VOCAB)
    assert logits.dtype == "float32"
    assert np.isfinite(np.asarray(logits)).all()


def test_only_melodyrnn_recurrent_layers_are_used(models):
    from melodyrnn import layers as rnn_layers

    model = models["everything"]
    recurrent = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.RNN)]
    assert recurrent == []  # no Keras built-in recurrent layer anywhere
    assert all(isinstance(layer, rnn_layers.GRU) for layer in model.recurrent)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_changing_a_future_token_never_changes_earlier_logits(models, name):
    model = models[name]
    ids = random_ids()
    changed = ids.copy()
    changed[:, 7:] = (changed[:, 7:] + 17) % VOCAB
    before, after = np.asarray(model(ids)), np.asarray(model(changed))
    np.testing.assert_array_equal(before[:, :7], after[:, :7])
    assert not np.allclose(before[:, 7:], after[:, 7:])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_step_by_step_equals_full_call(models, name):
    # 12 steps: more than the attention windows (4, 5) and three bars of lookback
    model = models[name]
    ids = random_ids()
    np.testing.assert_allclose(step_through(model, ids), np.asarray(model(ids)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["lookback", "lookback_3_4", "everything"])
def test_step_by_step_equals_full_call_with_a_bar_per_row(models, name):
    model = models[name]
    ids, bars = random_ids(steps=30), np.array([3, 5, 12], "int32")
    full = np.asarray(model({"ids": ids, "bar": bars}))
    np.testing.assert_allclose(step_through(model, ids, bars), full, atol=1e-5, rtol=1e-5)
    assert not np.allclose(full, np.asarray(model(ids)))  # the bar reaches the features


def test_plain_models_ignore_the_bar(models):
    ids = random_ids()
    np.testing.assert_array_equal(
        np.asarray(models["attention"]({"ids": ids, "bar": np.array([3, 5, 12])})), np.asarray(models["attention"](ids))
    )


def test_a_bar_above_the_maximum_is_refused(models):
    model = models["lookback"]  # max_steps_per_bar 64
    with pytest.raises(MelodyRNNError, match=r"whole numbers in \[1, max_steps_per_bar=64\].*got 65"):
        model.initial_state(2, 65)
    with pytest.raises(MelodyRNNError, match="max_steps_per_bar=64"):
        model({"ids": random_ids(batch=2), "bar": np.array([16, 70])})


def test_step_loop_compiles_with_xla_and_matches(models):
    model = models["everything"]
    ids = tf.constant(random_ids(batch=2))

    @tf.function(jit_compile=True)
    def run(ids):
        state = model.initial_state(2)
        outputs = tf.TensorArray(tf.float32, size=STEPS)
        for t in tf.range(STEPS):
            logits, state = model.step(ids[:, t], state)
            outputs = outputs.write(t, logits)
        return tf.transpose(outputs.stack(), (1, 0, 2))

    np.testing.assert_allclose(run(ids).numpy(), np.asarray(model(ids)), atol=1e-5, rtol=1e-5)


def test_state_leaves_have_a_leading_batch_axis(models):
    state = models["everything"].initial_state(5)
    leaves = tf.nest.flatten(state)
    # gru h ×2, attention key/value/position/previous input, lookback history/position/bar
    assert len(leaves) == 1 + 1 + 4 + 3
    assert all(leaf.shape[0] == 5 for leaf in leaves)
    assert tuple(state["attention"]["key"].shape) == (5, 2, 5, 4)  # (batch, heads, window, key_dim)


def test_state_reordered_by_a_batch_gather_stays_exact(models):
    # beam search keeps the best rows by gathering every state leaf along the batch axis
    model = models["everything"]
    ids = random_ids()
    order = np.array([2, 2, 0])
    state = model.initial_state(3)
    for t in range(6):
        _, state = model.step(ids[:, t], state)
    state = tf.nest.map_structure(lambda leaf: tf.gather(leaf, order), state)
    outputs = []
    for t in range(6, STEPS):
        logits, state = model.step(ids[order, t], state)
        outputs.append(np.asarray(logits))
    expected = np.asarray(model(ids[order]))[:, 6:]
    np.testing.assert_allclose(np.stack(outputs, axis=1), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("units", 8192, r"`units` must be an integer in \[1, 2048\], got 8192"),
        ("attention_window", 1 << 26, r"`attention_window` must be an integer in \[1, 8192\]"),
        ("vocab_size", 1 << 22, r"`vocab_size` must be an integer in \[3, 4096\]"),
        ("embedding_dim", 0, r"`embedding_dim` must be an integer in \[1, 2048\], got 0"),
        ("attention_key_dim", 4096, r"`attention_key_dim` must be an integer in \[1, 1024\] or None"),
        ("num_layers", True, r"`num_layers` must be an integer in \[1, 16\], got True"),
    ],
)
def test_every_size_field_is_bounded(field, value, match):
    # a hostile bundle's config must fail here, before any memory is spent on weights
    with pytest.raises(MelodyRNNError, match=match):
        ModelConfig.from_dict({**ModelConfig().to_dict(), field: value})


def test_configs_saved_before_the_attention_shortcuts_keep_plain_attention():
    old = {
        k: v
        for k, v in ModelConfig().to_dict().items()
        if k not in ("attention_relative_bias", "attention_previous_key")
    }
    config = ModelConfig.from_dict(old)
    assert (config.attention_relative_bias, config.attention_previous_key) == (False, False)
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()


# -- training --------------------------------------------------------------------------------------------------


def tiny_data():
    # a one-bar riff repeated: easy to learn
    riff = [(60, 0, 2), (64, 2, 4), (67, 4, 6), (72, 6, 8)]
    melodies = []
    for i in range(6):
        notes = [(p + i % 3, s + 8 * k, e + 8 * k) for k in range(8) for p, s, e in riff]
        melodies.append(melodyrnn.Melody.from_notes(notes, num_steps=64, source=f"f{i}.mid"))
    return melodyrnn.PreparedData.from_melodies(melodies)


def compile_model(model):
    model.compile(
        optimizer=keras.optimizers.Adam(0.02), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def test_fit_a_few_steps_lowers_the_loss():
    keras.utils.set_random_seed(2)
    model = compile_model(build_model(ModelConfig(**TINY, lookback=True, steps_per_bar=8, attention_window=16)))
    data = tiny_data().dataset(seq_len=STEPS, batch_size=8, split="all", seed=0)
    history = model.fit(data, epochs=4, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
