"""Tests for melodyrnn.model: config, shapes, causality, step == full call, bundles and their guards."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import melodyrnn
from melodyrnn.encoding import EncodingConfig
from melodyrnn.errors import BundleError, MelodyRNNError
from melodyrnn.model import (
    BUNDLE_FORMAT,
    DEFAULT_BUNDLE_PATH,
    CausalSelfAttention,
    MelodyModel,
    ModelConfig,
    StepModel,
    build_model,
    load,
    load_bundle,
    save_bundle,
)

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
    "everything": ModelConfig(**TINY, lookback=True, steps_per_bar=4, attention_window=5, layer_norm=True,
                              residual=True, cell="gru"),
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
        (dict(units=2.5), "`units` must be a positive integer, got 2.5"),
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
        (dict(vocab_size=2), "`vocab_size` must be an integer >= 3, got 2"),
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
    np.testing.assert_array_equal(np.asarray(models["attention"]({"ids": ids, "bar": np.array([3, 5, 12])})),
                                  np.asarray(models["attention"](ids)))


def test_a_bar_above_the_maximum_is_refused(models):
    model = models["lookback"]  # max_steps_per_bar 64
    with pytest.raises(MelodyRNNError, match=r"whole numbers in \[1, max_steps_per_bar=64\].*got 65"):
        model.initial_state(2, 65)
    with pytest.raises(MelodyRNNError, match="max_steps_per_bar=64"):
        model({"ids": random_ids(batch=2), "bar": np.array([16, 70])})


def test_step_loop_compiles_with_xla_and_matches(models):
    step_model = StepModel(models["everything"])
    ids = tf.constant(random_ids(batch=2))

    @tf.function(jit_compile=True)
    def run(ids):
        state = step_model.initial_state(2)
        outputs = tf.TensorArray(tf.float32, size=STEPS)
        for t in tf.range(STEPS):
            logits, state = step_model.step(ids[:, t], state)
            outputs = outputs.write(t, logits)
        return tf.transpose(outputs.stack(), (1, 0, 2))

    np.testing.assert_allclose(run(ids).numpy(), np.asarray(step_model.model(ids)), atol=1e-5, rtol=1e-5)


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


def test_lookback_sees_one_and_two_bars_back():
    # with steps_per_bar=4, the features at step t hold the ids at t - 3 and t - 7
    from melodyrnn.model import LookbackEmbedding

    layer = LookbackEmbedding(VOCAB, 2, steps_per_bar=4)
    layer.build((None, None))
    table = np.zeros((VOCAB + 1, 2), "float32")
    table[:, 0] = np.arange(VOCAB + 1)  # embedding = the id itself
    layer.embedding.embeddings.assign(table)
    ids = np.arange(10, 22, dtype="int32")[None]
    features = np.asarray(layer(ids))[0]
    assert features.shape == (STEPS, 3 * 2 + 2 + 2)
    t = 9
    assert features[t, 0] == ids[0, t]
    assert features[t, 2] == ids[0, t + 1 - 4]  # the event a one-bar repeat would bring next
    assert features[t, 4] == ids[0, t + 1 - 8]
    assert features[0, 2] == VOCAB and features[0, 4] == VOCAB  # nothing yet
    counter = features[:, 8:10]  # position of the next step in the bar, bits low first, ±1
    assert counter[0].tolist() == [1, -1] and counter[2].tolist() == [1, 1] and counter[3].tolist() == [-1, -1]


def identity_lookback(**kwargs):
    """A LookbackEmbedding whose embedding of id k is (k, 0), so features can be read back as ids."""
    from melodyrnn.model import LookbackEmbedding

    layer = LookbackEmbedding(VOCAB, 2, **kwargs)
    layer.build((None, None))
    table = np.zeros((VOCAB + 1, 2), "float32")
    table[:, 0] = np.arange(VOCAB + 1)
    layer.embedding.embeddings.assign(table)
    return layer


def decode_counter(bits):
    """±1 bits, low first → int positions."""
    return (((bits + 1) / 2) * 2 ** np.arange(bits.shape[-1])).sum(-1).astype(int)


def test_lookback_sees_one_and_two_bars_back_per_row():
    # bars of 12 (3/4) and 16 (4/4) in one batch; ids from a small alphabet, so repeats (the flags) happen
    layer = identity_lookback(steps_per_bar=16, max_steps_per_bar=16)
    ids = np.random.default_rng(4).integers(0, 3, (2, 40)).astype("int32")
    bars = np.array([12, 16])
    features = np.asarray(layer(ids, bars))
    assert features.shape == (2, 40, 3 * 2 + 2 + 4)

    def back(r, k):
        return ids[r, k] if k >= 0 else VOCAB  # "nothing yet" before the start

    for r, bar in enumerate(bars):
        for t in range(40):
            assert features[r, t, 0] == ids[r, t]
            assert features[r, t, 2] == back(r, t + 1 - bar) and features[r, t, 4] == back(r, t + 1 - 2 * bar)
            assert features[r, t, 6] == (ids[r, t] == back(r, t - bar))
            assert features[r, t, 7] == (ids[r, t] == back(r, t - 2 * bar))
        assert decode_counter(features[r, :, 8:]).tolist() == [(t + 1) % bar for t in range(40)]
    assert features[:, :, 6].any() and features[:, :, 7].any()


def test_lookback_counts_the_position_of_a_window_that_starts_at_bar_3():
    # a 3/4 melody cut into bar-aligned windows: the counter of the window starting at step 36 (bar 3, from 0)
    # is the true position in the melody's bars
    notes = [(60 + k % 5, 3 * k, 3 * k + 2) for k in range(24)]
    melody = melodyrnn.Melody.from_notes(notes, num_steps=72, time_signatures=((0, 3, 4),), source="a.mid")
    data = melodyrnn.PreparedData.from_melodies([melody], validation_fraction=0.0)
    (inputs, _, _), = list(data.dataset(seq_len=16, batch_size=64, split="all", shuffle=False, with_bars=True))
    tokens = data.melody_tokens(0)
    row = [r for r in range(len(inputs["ids"])) if (inputs["ids"][r].numpy() == tokens[36:52]).all()]
    assert len(row) == 1 and inputs["bar"][row[0]] == 12
    features = np.asarray(identity_lookback(steps_per_bar=16)(inputs["ids"][row[0]][None], inputs["bar"][row[0]]))
    assert decode_counter(features[0, :, 8:]).tolist() == [(36 + t + 1) % 12 for t in range(16)]


def test_attention_window_limits_how_far_back_it_looks():
    layer = CausalSelfAttention(num_heads=2, key_dim=4, window=3)
    x = np.random.default_rng(0).normal(size=(1, 10, 8)).astype("float32")
    changed = x.copy()
    changed[0, 2] += 5.0
    before, after = np.asarray(layer(x)), np.asarray(layer(changed))
    np.testing.assert_array_equal(before[0, :2], after[0, :2])
    assert not np.allclose(before[0, 2:5], after[0, 2:5])  # steps 2..4 see step 2
    np.testing.assert_array_equal(before[0, 5:], after[0, 5:])  # later steps no longer do


def reference_attention(layer, x):
    """CausalSelfAttention written out in numpy, one query at a time, from the layer's own weights."""
    w = {v.path.split("/")[-1]: np.asarray(v) for v in layer.weights}
    heads, dim, window = layer.num_heads, layer.key_dim, layer.window
    qkv = x @ w["qkv_kernel"] + w["qkv_bias"]  # (batch, steps, 3 * width)
    q, k, v = (qkv[..., i * heads * dim:(i + 1) * heads * dim].reshape(x.shape[:2] + (heads, dim)) for i in range(3))
    if layer.previous_key:
        previous = np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
        k = k + (previous @ w["previous_key_kernel"]).reshape(k.shape)
    out = np.zeros(x.shape[:2] + (heads, dim))
    for t in range(x.shape[1]):
        past = np.arange(max(0, t - window + 1), t + 1)
        scores = np.einsum("bhd,bjhd->bhj", q[:, t], k[:, past]) / np.sqrt(dim)
        if layer.relative_bias:
            scores = scores + w["position_bias"][:, t - past][None]
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        out[:, t] = np.einsum("bhj,bjhd->bhd", weights, v[:, past])
    y = x + out.reshape(x.shape[:2] + (heads * dim,)) @ w["output_kernel"] + w["output_bias"]
    mean, var = y.mean(-1, keepdims=True), y.var(-1, keepdims=True)
    return (y - mean) / np.sqrt(var + layer.epsilon) * w["gamma"] + w["beta"]


@pytest.mark.parametrize("relative_bias, previous_key", [(False, False), (True, False), (False, True), (True, True)])
def test_attention_equals_a_numpy_reference_in_call_and_step(relative_bias, previous_key):
    layer = CausalSelfAttention(num_heads=2, key_dim=3, window=4, relative_bias=relative_bias,
                                previous_key=previous_key)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 9, 5)).astype("float32")
    layer.build(x.shape)
    if relative_bias:  # a bias that matters: the trained layer's is far from its zero start
        layer.position_bias.assign(rng.normal(scale=2.0, size=(2, 4)).astype("float32"))
    expected = reference_attention(layer, x.astype("float64"))
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-5)
    cache, stepped = layer.initial_cache(2), []
    for t in range(x.shape[1]):  # 9 steps through a window of 4: the cache wraps around twice
        y, cache = layer.step(x[:, t], cache)
        stepped.append(np.asarray(y))
    np.testing.assert_allclose(np.stack(stepped, axis=1), expected, atol=1e-5)


def test_previous_key_lets_one_step_reach_one_step_further():
    layer = CausalSelfAttention(num_heads=1, key_dim=4, window=3, previous_key=True)
    x = np.random.default_rng(0).normal(size=(1, 10, 8)).astype("float32")
    changed = x.copy()
    changed[0, 2] += 5.0
    before, after = np.asarray(layer(x)), np.asarray(layer(changed))
    np.testing.assert_array_equal(before[0, :2], after[0, :2])
    assert not np.allclose(before[0, 5], after[0, 5])  # step 5 attends to step 3, whose key saw step 2
    np.testing.assert_array_equal(before[0, 6:], after[0, 6:])


def test_relative_bias_needs_a_window_and_flags_must_be_bools():
    with pytest.raises(MelodyRNNError, match="`window` must be set when `relative_bias` is True"):
        CausalSelfAttention(num_heads=1, key_dim=2, relative_bias=True)
    with pytest.raises(MelodyRNNError, match="`previous_key` must be True or False, got 1"):
        CausalSelfAttention(num_heads=1, key_dim=2, window=4, previous_key=1)


def test_configs_saved_before_the_attention_shortcuts_keep_plain_attention():
    old = {k: v for k, v in ModelConfig().to_dict().items()
           if k not in ("attention_relative_bias", "attention_previous_key")}
    config = ModelConfig.from_dict(old)
    assert (config.attention_relative_bias, config.attention_previous_key) == (False, False)
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()


def test_attention_layer_serialization_round_trip():
    layer = CausalSelfAttention(num_heads=2, key_dim=3, window=7, dropout=0.1, relative_bias=True,
                                previous_key=True, name="att")
    clone = CausalSelfAttention.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(MelodyRNNError, match="`window` must be a positive integer or None, got 0"):
        CausalSelfAttention(num_heads=2, key_dim=3, window=0)
    with pytest.raises(MelodyRNNError, match="`window` must be set"):
        CausalSelfAttention(num_heads=2, key_dim=3).initial_cache(1)


def test_step_model_rejects_other_models():
    with pytest.raises(MelodyRNNError, match="MelodyModel"):
        StepModel(keras.Sequential([keras.layers.Dense(2)]))


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
    model.compile(optimizer=keras.optimizers.Adam(0.02),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_fit_a_few_steps_lowers_the_loss():
    keras.utils.set_random_seed(2)
    model = compile_model(build_model(ModelConfig(**TINY, lookback=True, steps_per_bar=8, attention_window=16)))
    data = tiny_data().dataset(seq_len=STEPS, batch_size=8, split="all", seed=0)
    history = model.fit(data, epochs=4, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]


# -- bundles ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_bundle(tmp_path_factory):
    keras.utils.set_random_seed(3)
    model = compile_model(build_model(VARIANTS["everything"]))
    data = tiny_data().dataset(seq_len=STEPS, batch_size=8, split="all", seed=0)
    model.fit(data, epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("bundle") / "tiny.melodyrnn"
    metadata = {"data": {"melodies": 6}, "metrics": {"nll": np.float32(1.5)}}
    save_bundle(path, model, VARIANTS["everything"], EncodingConfig(), metadata)
    return path, model


def test_save_writes_one_zip_with_json_and_keras_model(saved_bundle):
    path, _ = saved_bundle
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["bundle.json", "model.keras"]
        header = json.loads(zf.read("bundle.json"))
    assert header["format"] == BUNDLE_FORMAT and header["format_version"] == 1
    assert ModelConfig.from_dict(header["model_config"]) == VARIANTS["everything"]
    assert set(header["metadata"]["versions"]) == {"melodyrnn", "keras", "tensorflow", "numpy"}
    assert header["metadata"]["metrics"]["nll"] == 1.5 and "created" in header["metadata"]


def test_save_load_gives_identical_predictions(saved_bundle):
    path, model = saved_bundle
    ids = random_ids()
    expected = np.asarray(model(ids))
    for bundle in (load_bundle(path), melodyrnn.model.load(path)):
        assert isinstance(bundle.model, MelodyModel)
        assert bundle.model_config == VARIANTS["everything"]
        assert bundle.encoding == EncodingConfig()
        assert bundle.metadata["data"] == {"melodies": 6}
        np.testing.assert_array_equal(np.asarray(bundle.model(ids)), expected)
        np.testing.assert_allclose(step_through(bundle.step_model().model, ids), expected, atol=1e-5)


def test_a_lookback_bundle_trained_with_bars_predicts_identically_after_load(tmp_path):
    keras.utils.set_random_seed(5)
    config = ModelConfig(**TINY, lookback=True, attention_window=6, max_steps_per_bar=16)
    model = compile_model(build_model(config))
    model.fit(tiny_data().dataset(seq_len=16, batch_size=8, split="all", seed=0, with_bars=True), epochs=1, verbose=0)
    save_bundle(tmp_path / "lb.melodyrnn", model)
    inputs = {"ids": random_ids(steps=40), "bar": np.array([12, 16, 6], "int32")}
    loaded = load_bundle(tmp_path / "lb.melodyrnn").model  # safe mode
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), np.asarray(model(inputs)))
    np.testing.assert_allclose(step_through(loaded, inputs["ids"], inputs["bar"]), np.asarray(model(inputs)),
                               atol=1e-5)


def test_load_restores_the_optimizer_state(saved_bundle):
    path, model = saved_bundle
    restored = load_bundle(path).model
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) > 0
    for a, b in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    data = tiny_data().dataset(seq_len=STEPS, batch_size=8, split="all", seed=0)
    restored.fit(data, epochs=1, verbose=0)  # fine-tuning resumes
    assert int(restored.optimizer.iterations) > int(model.optimizer.iterations)


def test_save_overwrites_atomically_and_validates(tmp_path, models):
    path = tmp_path / "m.melodyrnn"
    model = models["plain_rnn"]
    save_bundle(path, model)
    save_bundle(path, model, metadata={"run": 2})
    assert load_bundle(path, compile=False).metadata["run"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.melodyrnn"]
    with pytest.raises(MelodyRNNError, match="`encoding` must have vocab_size=130"):
        save_bundle(path, model, encoding=EncodingConfig(min_pitch=40, max_pitch=80))
    with pytest.raises(MelodyRNNError, match="`config` must equal"):
        save_bundle(path, model, replace(model.config, units=16))
    with pytest.raises(MelodyRNNError, match="`metadata` must be JSON-ready"):
        save_bundle(path, model, metadata={"when": object()})
    with pytest.raises(MelodyRNNError, match="MelodyModel"):
        save_bundle(path, keras.Sequential([keras.layers.Dense(2)]))


def test_missing_file(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope.melodyrnn")


def test_truncated_bundle(tmp_path, saved_bundle):
    data = saved_bundle[0].read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        path = tmp_path / f"cut{cut}.melodyrnn"
        path.write_bytes(data[:cut])
        with pytest.raises(BundleError, match="corrupt or truncated"):
            load_bundle(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.melodyrnn"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(BundleError, match="not a melodyrnn bundle"):
        load_bundle(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.melodyrnn"
    path.write_bytes(b"")
    with pytest.raises(BundleError, match="not a melodyrnn bundle"):
        load_bundle(path)


def test_zip_without_bundle_json(tmp_path):
    path = tmp_path / "foreign.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(BundleError, match="has no bundle.json"):
        load_bundle(path)


def test_plain_keras_file(tmp_path, models):
    path = tmp_path / "model.keras"
    models["plain_lstm"].save(path)
    with pytest.raises(BundleError, match="has no bundle.json"):
        load_bundle(path)


def rewrite(source, target, *, header=None, model_bytes=None):
    with zipfile.ZipFile(source) as zf:
        old_header, old_model = json.loads(zf.read("bundle.json")), zf.read("model.keras")
    header = header(old_header) if header else old_header
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("bundle.json", json.dumps(header))
        zf.writestr("model.keras", old_model if model_bytes is None else model_bytes)
    return target


def test_wrong_format_name_or_version(tmp_path, saved_bundle):
    path = rewrite(saved_bundle[0], tmp_path / "v2.melodyrnn", header=lambda h: {**h, "format_version": 2})
    with pytest.raises(BundleError, match="format version 2; this melodyrnn reads version 1"):
        load_bundle(path)
    path = rewrite(saved_bundle[0], tmp_path / "other.melodyrnn", header=lambda h: {**h, "format": "other"})
    with pytest.raises(BundleError, match="not a melodyrnn bundle"):
        load_bundle(path)


def test_corrupt_model_member(tmp_path, saved_bundle):
    path = rewrite(saved_bundle[0], tmp_path / "bad.melodyrnn", model_bytes=b"not a keras file")
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(path)
    path = rewrite(saved_bundle[0], tmp_path / "bad2.melodyrnn", model_bytes=b"not a keras file",
                   header=lambda h: {**h, "files": {}})
    with pytest.raises(BundleError, match="not a Keras model file"):
        load_bundle(path)


def test_bundle_with_a_lambda_layer_is_refused(tmp_path, saved_bundle):
    inputs = keras.Input((None,), dtype="int32")
    outputs = keras.layers.Lambda(lambda x: x * 2)(keras.layers.Embedding(VOCAB, 4)(inputs))
    evil = tmp_path / "evil.keras"
    keras.Model(inputs, outputs).save(evil)
    path = rewrite(saved_bundle[0], tmp_path / "evil.melodyrnn", model_bytes=evil.read_bytes(),
                   header=lambda h: {**h, "files": {}})
    with pytest.raises(BundleError, match="refused.*Lambda"):
        load_bundle(path)


def test_bundle_with_an_unknown_class_is_refused(tmp_path, saved_bundle):
    # rename a registered class in the Keras config to one from a foreign package
    with zipfile.ZipFile(saved_bundle[0]) as zf:
        model_bytes = zf.read("model.keras")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(model_bytes)) as inner, zipfile.ZipFile(out, "w") as new:
        for info in inner.infolist():
            data = inner.read(info.filename)
            if info.filename == "config.json":
                data = data.replace(b'"melodyrnn>MelodyModel"', b'"evil>Payload"').replace(
                    b'"melodyrnn.model"', b'"evil"')
            new.writestr(info.filename, data)
    path = rewrite(saved_bundle[0], tmp_path / "foreign.melodyrnn", model_bytes=out.getvalue(),
                   header=lambda h: {**h, "files": {}})
    with pytest.raises(BundleError, match="refused.*evil"):
        load_bundle(path)


def test_default_model_is_bundled_and_loads():
    assert DEFAULT_BUNDLE_PATH.is_file()
    bundle = load()
    assert isinstance(bundle.model, MelodyModel) and Path(bundle.path) == DEFAULT_BUNDLE_PATH
    assert bundle.model_config.attention and bundle.encoding.vocab_size == 130
    assert DEFAULT_BUNDLE_PATH.stat().st_size < 8 * 1024 * 1024  # "a few MB at most"
