"""Tests for melodyrnn.attention: the sliding window, a numpy reference for call and step, the shortcuts, config."""

from __future__ import annotations

import numpy as np
import pytest

from melodyrnn.attention import CausalSelfAttention
from melodyrnn.errors import MelodyRNNError


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
    q, k, v = (qkv[..., i * heads * dim : (i + 1) * heads * dim].reshape(x.shape[:2] + (heads, dim)) for i in range(3))
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
    layer = CausalSelfAttention(
        num_heads=2, key_dim=3, window=4, relative_bias=relative_bias, previous_key=previous_key
    )
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


def test_attention_layer_serialization_round_trip():
    layer = CausalSelfAttention(
        num_heads=2, key_dim=3, window=7, dropout=0.1, relative_bias=True, previous_key=True, name="att"
    )
    clone = CausalSelfAttention.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(MelodyRNNError, match="`window` must be a positive integer or None, got 0"):
        CausalSelfAttention(num_heads=2, key_dim=3, window=0)
    with pytest.raises(MelodyRNNError, match="`window` must be set"):
        CausalSelfAttention(num_heads=2, key_dim=3).initial_cache(1)
