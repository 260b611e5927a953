"""The network and its file: `ModelConfig` → `build_model()`, the single-step call the sampler runs, and bundles.

Start with `build_model(ModelConfig())` (embedding → LSTM → causal self-attention → LSTM → logits), then
`model.step` / `StepModel` for sampling one step at a time, and `save_bundle` / `load` for the one-file model
that carries weights, configs and training metadata and loads in Keras safe mode.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import math
import numbers
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from melodyrnn import layers as rnn_layers
from melodyrnn.dataset import check_steps_per_bar
from melodyrnn.encoding import EncodingConfig
from melodyrnn.errors import BundleError, MelodyRNNError

__all__ = [
    "ModelConfig",
    "CausalSelfAttention",
    "LookbackEmbedding",
    "MelodyModel",
    "StepModel",
    "build_model",
    "Bundle",
    "save_bundle",
    "load_bundle",
    "load",
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "DEFAULT_BUNDLE_PATH",
]

_PACKAGE = "melodyrnn"
_CELLS = {"lstm": rnn_layers.LSTM, "gru": rnn_layers.GRU, "rnn": rnn_layers.SimpleRNN}
_NEG_INF = -1e9  # masked attention scores; scores are softmaxed in float32, where this is exactly "never"


# ----------------------------------------------------------------------------------------------------------
# Configuration


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelConfig:
    """The shape of the network. Defaults are the project's default model (see FIELD_NOTES).

    Attributes:
        cell: recurrent cell, "lstm", "gru" or "rnn" (melodyrnn's own layers).
        num_layers: recurrent layers, >= 1.
        units: width of every recurrent layer (and of the attention block).
        embedding_dim: width of the token embedding.
        dropout: rate in [0, 1) after each recurrent layer and on the attention output (training only).
        layer_norm: layer normalization on the output of each recurrent layer.
        residual: add each recurrent layer's input to its output (layers after the first, whose input is
            already `units` wide).
        attention: one causal multi-head self-attention block (residual + layer norm) after the first
            recurrent layer.
        attention_heads: heads of that block.
        attention_key_dim: width per head; None means `units // attention_heads`.
        attention_window: past steps each step attends to, itself included; also the size of the sampler's
            key/value cache. The full-sequence call uses the same sliding window, so both agree.
        attention_relative_bias: a learned score bias per head for each distance back (relative attention).
        attention_previous_key: keys also see the step before, so attention can find where the current context
            happened before and bring back what followed it (see `CausalSelfAttention`).
        lookback: feed the events one and two bars back, whether the current event repeats them, and a
            binary counter of the position in the bar (MelodyRNN's lookback configuration), computed inside
            the model from the token ids. Pass the model `{"ids": ids, "bar": steps_per_bar}` to give each melody
            its own bar length; plain ids use `steps_per_bar`.
        steps_per_bar: the lookback's bar length, in steps, for plain ids (16 = 4/4 at 4 steps per quarter).
        max_steps_per_bar: the longest bar the lookback accepts, in steps (64 = 16/4 at 4 steps per quarter;
            folk collections hold 9/4 and 12/4 tunes); it sizes the history the sampler carries and the bits of
            the position counter, so it is part of the network's shape. At least `steps_per_bar`.
        vocab_size: number of token ids; take it from `EncodingConfig.vocab_size`.

    Raises:
        MelodyRNNError: a field out of range or of the wrong type.
    """

    cell: str = "lstm"
    num_layers: int = 2
    units: int = 128
    embedding_dim: int = 64
    dropout: float = 0.1
    layer_norm: bool = False
    residual: bool = False
    attention: bool = True
    attention_heads: int = 4
    attention_key_dim: int | None = None
    attention_window: int = 512
    attention_relative_bias: bool = True
    attention_previous_key: bool = True
    lookback: bool = False
    steps_per_bar: int = 16
    max_steps_per_bar: int = 64
    vocab_size: int = 130

    def __post_init__(self):
        def check(ok: bool, name: str, expected: str):
            if not ok:
                raise MelodyRNNError(f"`{name}` must be {expected}, got {getattr(self, name)!r}")

        check(self.cell in _CELLS, "cell", f"one of {sorted(_CELLS)}")
        check(_is_int(self.num_layers) and 1 <= self.num_layers <= 16, "num_layers", "an integer in [1, 16]")
        check(_is_int(self.units) and self.units >= 1, "units", "a positive integer")
        check(_is_int(self.embedding_dim) and self.embedding_dim >= 1, "embedding_dim", "a positive integer")
        check(
            isinstance(self.dropout, numbers.Real) and not isinstance(self.dropout, bool)
            and 0 <= self.dropout < 1,
            "dropout", "a float in [0, 1)",
        )
        for name in ("layer_norm", "residual", "attention", "attention_relative_bias", "attention_previous_key",
                     "lookback"):
            check(isinstance(getattr(self, name), bool), name, "True or False")
        check(_is_int(self.attention_heads) and self.attention_heads >= 1, "attention_heads", "a positive integer")
        check(
            self.attention_key_dim is None or (_is_int(self.attention_key_dim) and self.attention_key_dim >= 1),
            "attention_key_dim", "a positive integer or None",
        )
        if self.attention and self.attention_key_dim is None and self.units < self.attention_heads:
            raise MelodyRNNError(
                f"`attention_heads` must be <= units={self.units} when `attention_key_dim` is None, "
                f"got {self.attention_heads!r}"
            )
        check(_is_int(self.attention_window) and self.attention_window >= 1, "attention_window", "a positive integer")
        check(_is_int(self.steps_per_bar) and 1 <= self.steps_per_bar <= 1024, "steps_per_bar",
              "an integer in [1, 1024]")
        check(_is_int(self.max_steps_per_bar) and 1 <= self.max_steps_per_bar <= 1024
              and (not _is_int(self.steps_per_bar) or self.max_steps_per_bar >= self.steps_per_bar),
              "max_steps_per_bar", f"an integer in [steps_per_bar={self.steps_per_bar}, 1024]")
        check(_is_int(self.vocab_size) and self.vocab_size >= 3, "vocab_size", "an integer >= 3")

    @property
    def key_dim(self) -> int:
        """Width per attention head, `attention_key_dim` or `units // attention_heads`."""
        return self.attention_key_dim or max(1, self.units // self.attention_heads)

    def to_dict(self) -> dict:
        """A plain, JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """The inverse of `to_dict`; missing fields take their defaults, except that a dict with neither
        `attention_relative_bias` nor `attention_previous_key` (saved before they existed) gets both False.

        Raises:
            MelodyRNNError: `d` is not a dict, has unknown fields, or a field is invalid.
        """
        if isinstance(d, dict) and d.get("lookback") and "max_steps_per_bar" not in d:
            # lookback bundles saved before the field sized their counter from steps_per_bar
            d = {**d, "max_steps_per_bar": d.get("steps_per_bar", cls.steps_per_bar)}
        if isinstance(d, dict) and "attention_relative_bias" not in d and "attention_previous_key" not in d:
            # configs saved before these fields had plain content attention
            d = {**d, "attention_relative_bias": False, "attention_previous_key": False}
        return config_from_dict(cls, d, "model config")


# ----------------------------------------------------------------------------------------------------------
# Layers


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CausalSelfAttention(keras.layers.Layer):
    """Multi-head causal self-attention over the past `window` steps, with a residual and a layer norm.

    `outputs = LayerNorm(inputs + Dropout(MultiHead(inputs)))`, where step t attends to steps
    `t - window + 1 ... t`. Order comes from the recurrent layer below, and optionally from two shortcuts for
    music, which repeats itself: a learned bias per head for each distance back (relative attention, as Music
    Transformer has, so "one bar back" is one number to learn), and keys that also see the step before
    (`key_j = W x_j + W' x_{j-1}`), so a query that matches the context before an earlier step draws the value
    of the step that followed it: the next event of a repeated passage (an induction head, wired in).

    Args:
        num_heads: attention heads, >= 1.
        key_dim: width per head, >= 1.
        window: steps attended to (itself included), >= 1, or None for the whole past (then `step` is not
            available, since its cache needs a fixed size).
        dropout: rate in [0, 1) on the attention output in training.
        epsilon: the layer norm's epsilon.
        relative_bias: add a learned bias per head and distance `t - j` in `[0, window)` to the scores; needs a
            window.
        previous_key: keys also see the step before (zeros before the start).

    Call args:
        inputs: float `(batch, steps, features)`.

    Returns:
        float `(batch, steps, features)`.
    """

    def __init__(self, num_heads: int, key_dim: int, window: int | None = None, dropout: float = 0.0,
                 epsilon: float = 1e-5, relative_bias: bool = False, previous_key: bool = False, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(num_heads) or num_heads < 1:
            raise MelodyRNNError(f"`num_heads` must be a positive integer, got {num_heads!r}")
        if not _is_int(key_dim) or key_dim < 1:
            raise MelodyRNNError(f"`key_dim` must be a positive integer, got {key_dim!r}")
        if window is not None and (not _is_int(window) or window < 1):
            raise MelodyRNNError(f"`window` must be a positive integer or None, got {window!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise MelodyRNNError(f"`dropout` must be a float in [0, 1), got {dropout!r}")
        for name, value in (("relative_bias", relative_bias), ("previous_key", previous_key)):
            if not isinstance(value, bool):
                raise MelodyRNNError(f"`{name}` must be True or False, got {value!r}")
        if relative_bias and window is None:
            raise MelodyRNNError("`window` must be set when `relative_bias` is True, got None")
        self.num_heads, self.key_dim, self.window = int(num_heads), int(key_dim), window
        self.dropout, self.epsilon = float(dropout), float(epsilon)
        self.relative_bias, self.previous_key = relative_bias, previous_key
        self.output_dropout = keras.layers.Dropout(self.dropout, name="dropout")
        self.norm = keras.layers.LayerNormalization(epsilon=self.epsilon, name="norm")

    def build(self, input_shape):
        features = input_shape[-1]
        width = self.num_heads * self.key_dim
        self.qkv_kernel = self.add_weight(shape=(features, 3 * width), name="qkv_kernel",
                                          initializer="glorot_uniform")
        self.qkv_bias = self.add_weight(shape=(3 * width,), name="qkv_bias", initializer="zeros")
        self.output_kernel = self.add_weight(shape=(width, features), name="output_kernel",
                                             initializer="glorot_uniform")
        self.output_bias = self.add_weight(shape=(features,), name="output_bias", initializer="zeros")
        if self.previous_key:
            self.previous_key_kernel = self.add_weight(shape=(features, width), name="previous_key_kernel",
                                                       initializer="glorot_uniform")
        if self.relative_bias:
            # zeros: training starts from plain content attention and learns which distances matter
            self.position_bias = self.add_weight(shape=(self.num_heads, self.window), name="position_bias",
                                                 initializer="zeros")
        self.features = features
        self.norm.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    def _qkv(self, x):
        # x (..., features) → q, k, v each (..., heads, key_dim)
        # Three matmuls on slices of the (small) kernel: slicing the (large) fused product instead costs a
        # strided-slice gradient over the whole activation for each of q, k and v.
        width = self.num_heads * self.key_dim
        kernel, bias = ops.cast(self.qkv_kernel, x.dtype), ops.cast(self.qkv_bias, x.dtype)
        return tuple(self._heads(ops.matmul(x, kernel[:, i * width:(i + 1) * width]) + bias[i * width:(i + 1) * width])
                     for i in range(3))

    def _heads(self, y):
        # (..., heads * key_dim) → (..., heads, key_dim)
        return ops.reshape(y, tuple(ops.shape(y)[:-1]) + (self.num_heads, self.key_dim))

    def _key_from_previous(self, previous):
        # previous (..., features), the step before each key's own → (..., heads, key_dim)
        return self._heads(ops.matmul(previous, ops.cast(self.previous_key_kernel, previous.dtype)))

    def _finish(self, inputs, attended, training=None):
        # attended (..., heads, key_dim) → residual + layer norm, (..., features)
        shape = tuple(ops.shape(attended)[:-2]) + (self.num_heads * self.key_dim,)
        out = ops.matmul(ops.reshape(attended, shape), ops.cast(self.output_kernel, inputs.dtype))
        out = out + ops.cast(self.output_bias, inputs.dtype)
        out = self.output_dropout(out, training=training)
        return self.norm(inputs + out)

    def call(self, inputs, training=None):
        q, k, v = self._qkv(inputs)  # (batch, steps, heads, key_dim)
        if self.previous_key:
            k = k + self._key_from_previous(ops.pad(inputs[:, :-1], ((0, 0), (1, 0), (0, 0))))
        # (batch, heads, steps, key_dim) for plain batched matmuls; the scale goes on q, the smallest tensor
        q, k, v = (ops.transpose(a, (0, 2, 1, 3)) for a in (q * (1.0 / math.sqrt(self.key_dim)), k, v))
        steps = ops.shape(inputs)[1]
        scores = ops.cast(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))), "float32")  # (batch, heads, query, key)
        # The mask and the relative bias make ONE additive (heads, query, key) term: the score tensor is the
        # biggest in the model, and every extra pass over it (a `where`, a second add) costs more than the matmuls.
        distance = ops.arange(steps)[:, None] - ops.arange(steps)[None, :]  # (query, key)
        allowed = distance >= 0
        if self.window is not None:
            allowed = ops.logical_and(allowed, distance < self.window)
        bias = ops.where(allowed, 0.0, _NEG_INF)[None]
        if self.relative_bias:
            bias = bias + ops.take(ops.cast(self.position_bias, "float32"), ops.clip(distance, 0, self.window - 1),
                                   axis=1)
        weights = ops.cast(ops.softmax(scores + bias[None], axis=-1), v.dtype)
        attended = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))  # (batch, steps, heads, key_dim)
        return self._finish(inputs, attended, training)

    def initial_cache(self, batch_size) -> dict:
        """An empty key/value cache: `{"key", "value"}` float `(batch, heads, window, key_dim)` and
        `"position"` int32 `(batch,)`, the number of steps seen; with `previous_key`, `"previous"` float
        `(batch, features)`, the last step's input.

        Raises:
            MelodyRNNError: the layer has no window (an unbounded cache has no fixed shape).
        """
        if self.window is None:
            raise MelodyRNNError("`window` must be set for a step-by-step cache, got None")
        shape = (batch_size, self.num_heads, self.window, self.key_dim)
        cache = {
            "key": ops.zeros(shape, dtype=self.compute_dtype),
            "value": ops.zeros(shape, dtype=self.compute_dtype),
            "position": ops.zeros((batch_size,), dtype="int32"),
        }
        if self.previous_key:
            if not self.built:
                raise MelodyRNNError("the layer must be built before `initial_cache` when `previous_key` is True")
            cache["previous"] = ops.zeros((batch_size, self.features), dtype=self.compute_dtype)
        return cache

    def step(self, inputs, cache: dict):
        """One step, equal to the same position of the full-sequence call.

        Args:
            inputs: float `(batch, features)`, this step's input.
            cache: from `initial_cache` or the previous step. Fixed shapes, so a compiled loop can carry it.
                All rows of a batch must be at the same position (they step together; a gather over the batch
                axis, as beam search does, keeps that true).

        Returns:
            `(outputs, new_cache)`: outputs float `(batch, features)`.
        """
        q, k, v = self._qkv(inputs)  # (batch, heads, key_dim)
        if self.previous_key:
            k = k + self._key_from_previous(ops.cast(cache["previous"], inputs.dtype))
        position = cache["position"]
        # The rows of a batch step together, so one slot is written for all of them: an in-place update of a
        # (batch, heads, 1, key_dim) slice, where blending a one-hot mask would rewrite the whole cache.
        slot = position[0] % self.window
        zero = ops.zeros_like(slot)
        start = (zero, zero, slot, zero)
        keys = ops.slice_update(cache["key"], start, ops.cast(k[:, :, None], cache["key"].dtype))
        values = ops.slice_update(cache["value"], start, ops.cast(v[:, :, None], cache["value"].dtype))
        # slot s holds a step once s <= position; after `window` steps every slot holds one of the last window
        filled = ops.arange(self.window)[None, :] <= position[:, None]
        # batched matrix products over (batch, heads), with no transpose of the cache
        scores = ops.cast(ops.matmul(keys, q[..., None])[..., 0], "float32") / math.sqrt(self.key_dim)
        if self.relative_bias:
            # slot s holds the latest step p <= position with p % window == s, so it lies (position - s) % window back
            distance = (position[0] - ops.arange(self.window, dtype="int32")) % self.window
            scores = scores + ops.take(ops.cast(self.position_bias, "float32"), distance, axis=1)[None]
        scores = ops.where(filled[:, None, :], scores, _NEG_INF)  # scores (batch, heads, window)
        weights = ops.cast(ops.softmax(scores, axis=-1), v.dtype)
        attended = ops.matmul(weights[:, :, None, :], values)[:, :, 0, :]  # (batch, heads, key_dim)
        outputs = self._finish(inputs, attended, training=False)
        new_cache = {"key": keys, "value": values, "position": position + 1}
        if self.previous_key:
            new_cache["previous"] = ops.cast(inputs, cache["previous"].dtype)
        return outputs, new_cache

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "window": self.window, "dropout": self.dropout, "epsilon": self.epsilon,
                "relative_bias": self.relative_bias, "previous_key": self.previous_key}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LookbackEmbedding(keras.layers.Layer):
    """Token embedding plus MelodyRNN's lookback features, computed from the ids alone.

    For the input at step t (which predicts step t + 1) the features are, concatenated:
    the embedding of id t; the embeddings of the ids one and two bars before step t + 1 (the events a
    repeat would bring back); two flags, +1 where id t equals the id one / two bars before it, else 0; and a
    binary counter of the position of step t + 1 in the bar, one ±1 feature per bit. Steps before the start
    of the sequence use an extra "nothing yet" embedding row. Positions count from the first id passed, so
    inputs should start on a bar line. Each row may have its own bar length, up to `max_steps_per_bar`.

    Args:
        vocab_size: number of token ids.
        output_dim: embedding width; the layer outputs `3 * output_dim + 2 + bits` features,
            `bits = max(1, ceil(log2(max_steps_per_bar)))`.
        steps_per_bar: bar length in steps when the call gives none.
        max_steps_per_bar: the longest bar accepted, in steps; None means `steps_per_bar`.

    Call args:
        inputs: int `(batch, steps)` token ids.
        bar: None (every row `steps_per_bar`), or int `(batch,)` or a scalar: steps per bar, in
            `[1, max_steps_per_bar]`.

    Returns:
        float `(batch, steps, 3 * output_dim + 2 + bits)`.

    Raises:
        MelodyRNNError: a bad argument, or a concrete `bar` outside `[1, max_steps_per_bar]`.
    """

    def __init__(self, vocab_size: int, output_dim: int, steps_per_bar: int = 16,
                 max_steps_per_bar: int | None = None, **kwargs):
        super().__init__(**kwargs)
        max_steps_per_bar = steps_per_bar if max_steps_per_bar is None else max_steps_per_bar
        for name, value in (("vocab_size", vocab_size), ("output_dim", output_dim), ("steps_per_bar", steps_per_bar),
                            ("max_steps_per_bar", max_steps_per_bar)):
            if not _is_int(value) or value < 1:
                raise MelodyRNNError(f"`{name}` must be a positive integer, got {value!r}")
        if max_steps_per_bar < steps_per_bar:
            raise MelodyRNNError(f"`max_steps_per_bar` must be >= steps_per_bar={steps_per_bar}, "
                                 f"got {max_steps_per_bar}")
        self.vocab_size, self.output_dim, self.steps_per_bar = int(vocab_size), int(output_dim), int(steps_per_bar)
        self.max_steps_per_bar = int(max_steps_per_bar)
        self.bits = max(1, math.ceil(math.log2(self.max_steps_per_bar)))
        self.embedding = keras.layers.Embedding(self.vocab_size + 1, self.output_dim, name="embedding")

    @property
    def features(self) -> int:
        return 3 * self.output_dim + 2 + self.bits

    def build(self, input_shape, bar_shape=None):
        self.embedding.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape, bar_shape=None):
        return tuple(input_shape) + (self.features,)

    def bars(self, bar, batch_size):
        """int32 `(batch,)` steps per bar from None, a scalar or `(batch,)`; concrete values are checked.

        Raises:
            MelodyRNNError: a concrete bar outside `[1, max_steps_per_bar]` (a traced one cannot be checked).
        """
        if bar is None:
            bar = self.steps_per_bar
        elif not _is_symbolic(bar):
            check_steps_per_bar(ops.convert_to_numpy(bar), self.max_steps_per_bar)
        return ops.broadcast_to(ops.cast(bar, "int32"), (batch_size,))

    def _features(self, padded, current, bar, next_position):
        """padded int `(batch, L)` ids, "nothing yet" before the start; current int `(steps,)` index in padded of
        each step's id; bar int `(batch,)`; next_position int `(batch, steps)` → float `(batch, steps, features)`."""
        batch, steps = ops.shape(padded)[0], ops.shape(current)[0]
        # per row, where ids t + 1 - bar, t + 1 - 2 * bar, t - bar and t - 2 * bar lie relative to id t
        offsets = ops.stack([1 - bar, 1 - 2 * bar, -bar, -2 * bar], axis=1)  # (batch, 4)
        index = ops.reshape(current[None, :, None] + offsets[:, None, :], (batch, steps * 4))
        past = ops.reshape(ops.take_along_axis(padded, index, axis=1), (batch, steps, 4))
        ids = ops.take(padded, current, axis=1)
        flags = ops.cast(ops.equal(ids[..., None], past[..., 2:]), self.compute_dtype)
        n = next_position % bar[:, None]
        counter = ops.cast(2 * ((n[..., None] // (2 ** ops.arange(self.bits, dtype="int32"))) % 2) - 1,
                           self.compute_dtype)
        emb = self.embedding
        return ops.concatenate([emb(ids), emb(past[..., 0]), emb(past[..., 1]), flags, counter], axis=-1)

    def call(self, inputs, bar=None):
        ids = ops.cast(inputs, "int32")
        batch, steps, history = ops.shape(ids)[0], ops.shape(ids)[1], 2 * self.max_steps_per_bar
        # padded[:, k] is id k - history, the "nothing yet" id before the start
        padded = ops.concatenate([ops.full((batch, history), self.vocab_size, dtype="int32"), ids], axis=1)
        positions = ops.arange(steps, dtype="int32")
        return self._features(padded, history + positions, self.bars(bar, batch),
                              ops.broadcast_to(positions[None] + 1, (batch, steps)))

    def initial_history(self, batch_size, bar=None) -> dict:
        """The step state: `"history"` int32 `(batch, 2 * max_steps_per_bar)` (the last ids, oldest first,
        "nothing yet" at the start), `"position"` int32 `(batch,)` and `"bar"` int32 `(batch,)`, the steps per
        bar (`bar` as in `call`: None, a scalar or `(batch,)`).

        Raises:
            MelodyRNNError: a concrete `bar` outside `[1, max_steps_per_bar]`.
        """
        return {
            "history": ops.full((batch_size, 2 * self.max_steps_per_bar), self.vocab_size, dtype="int32"),
            "position": ops.zeros((batch_size,), dtype="int32"),
            "bar": self.bars(bar, batch_size),
        }

    def step(self, inputs, state: dict):
        """One step: int `(batch,)` ids → `(features (batch, features), new_state)`."""
        ids = ops.cast(inputs, "int32")
        history = 2 * self.max_steps_per_bar
        # window[:, k] is id t - history + k, with k = history the current id
        window = ops.concatenate([state["history"], ids[:, None]], axis=1)
        position = state["position"]
        features = self._features(window, ops.convert_to_tensor([history], "int32"), state["bar"],
                                  position[:, None] + 1)
        return features[:, 0], {"history": window[:, 1:], "position": position + 1, "bar": state["bar"]}

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "output_dim": self.output_dim,
                "steps_per_bar": self.steps_per_bar, "max_steps_per_bar": self.max_steps_per_bar}


def _is_symbolic(x) -> bool:
    """Whether `x` is a tensor being traced (inside a tf.function or a Keras functional build), with no value."""
    import tensorflow as tf

    return isinstance(x, keras.KerasTensor) or (tf.is_tensor(x) and not tf.executing_eagerly())


# ----------------------------------------------------------------------------------------------------------
# The model


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MelodyModel(keras.Model):
    """Next-event model: token ids `(batch, steps)` → logits `(batch, steps, vocab_size)`.

    Inputs are int ids `(batch, steps)`, or a dict `{"ids": int (batch, steps), "bar": int (batch,)}` that gives
    each row its steps per bar (rows must start on a bar line). Only the lookback embedding reads "bar"; plain
    ids mean `config.steps_per_bar`, counted from the first id.

    Embedding (or `LookbackEmbedding`) → recurrent layers (each followed by dropout, and optionally a residual
    and a layer norm) with an optional `CausalSelfAttention` block after the first → Dense logits. The model
    carries its `ModelConfig` (`model.config`), which is saved with it.

    `initial_state` / `step` run the same network one step at a time for the sampler, with fixed-shape state.

    Args:
        config: a `ModelConfig` (or its dict).
    """

    def __init__(self, config: ModelConfig | dict = ModelConfig(), **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        if not isinstance(config, ModelConfig):
            raise MelodyRNNError(f"`config` must be a ModelConfig, got {type(config).__name__}")
        self.config = c = config
        if c.lookback:
            self.embedding = LookbackEmbedding(c.vocab_size, c.embedding_dim, c.steps_per_bar, c.max_steps_per_bar,
                                               name="lookback")
        else:
            self.embedding = keras.layers.Embedding(c.vocab_size, c.embedding_dim, name="embedding")
        cell = _CELLS[c.cell]
        self.recurrent = [cell(c.units, return_sequences=True, name=f"{c.cell}_{i}") for i in range(c.num_layers)]
        self.dropouts = [keras.layers.Dropout(c.dropout, name=f"dropout_{i}") for i in range(c.num_layers)]
        self.norms = [keras.layers.LayerNormalization(epsilon=1e-5, name=f"norm_{i}") for i in range(c.num_layers)] \
            if c.layer_norm else []
        self.attention = CausalSelfAttention(
            c.attention_heads, c.key_dim, window=c.attention_window, dropout=c.dropout,
            relative_bias=c.attention_relative_bias, previous_key=c.attention_previous_key, name="attention",
        ) if c.attention else None
        self.logits = keras.layers.Dense(c.vocab_size, name="logits")

    def _input_features(self) -> int:
        c = self.config
        return self.embedding.features if c.lookback else c.embedding_dim

    def build(self, input_shape=None):
        c = self.config
        self.embedding.build((None, None))
        features = self._input_features()
        for i, rnn in enumerate(self.recurrent):
            rnn.build((None, None, features))
            features = c.units
            if self.norms:
                self.norms[i].build((None, None, c.units))
            if i == 0 and self.attention is not None:
                self.attention.build((None, None, c.units))
        self.logits.build((None, None, c.units))
        self.built = True

    def _after_recurrent(self, i, inputs, outputs, training=None):
        outputs = self.dropouts[i](outputs, training=training)
        if self.config.residual and i > 0:
            outputs = outputs + inputs
        if self.norms:
            outputs = self.norms[i](outputs)
        return outputs

    def call(self, inputs, training=None):
        bar = None
        if isinstance(inputs, dict):
            inputs, bar = inputs["ids"], inputs.get("bar")
        ids = ops.cast(inputs, "int32")
        x = self.embedding(ids, bar) if self.config.lookback else self.embedding(ids)
        for i, rnn in enumerate(self.recurrent):
            x = self._after_recurrent(i, x, rnn(x, training=training), training)
            if i == 0 and self.attention is not None:
                x = self.attention(x, training=training)
        return self.logits(x)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["ids"]
        return tuple(input_shape) + (self.config.vocab_size,)

    def initial_state(self, batch_size, steps_per_bar=None) -> dict:
        """The state before the first step, a dict of tensors each with a leading batch axis.

        Keys: `"rnn"`, a list (one per recurrent layer) of lists of float `(batch, units)` tensors; with
        attention `"attention"`, its key/value cache (see `CausalSelfAttention.initial_cache`); with lookback
        `"lookback"`, the recent ids and the bar length (see `LookbackEmbedding.initial_history`). Every leaf has a
        leading batch axis, so beam search can reorder a state with one gather per leaf.

        Args:
            batch_size: rows.
            steps_per_bar: the lookback's bar length: None (`config.steps_per_bar`), an int, or int `(batch,)`;
                other models ignore it.

        Raises:
            MelodyRNNError: a concrete `steps_per_bar` outside `[1, config.max_steps_per_bar]`.
        """
        if not self.built:
            self.build()
        state = {"rnn": [list(rnn.get_initial_state(batch_size)) for rnn in self.recurrent]}
        if self.attention is not None:
            state["attention"] = self.attention.initial_cache(batch_size)
        if self.config.lookback:
            state["lookback"] = self.embedding.initial_history(batch_size, steps_per_bar)
        return state

    def step(self, token_ids, state: dict):
        """One step: the logits for the next event, equal to that position of the full-sequence call.

        Args:
            token_ids: int `(batch,)`, this step's ids.
            state: from `initial_state` or the previous step.

        Returns:
            `(logits, new_state)`: logits float `(batch, vocab_size)`, new_state like `state`.
        """
        if not self.built:
            self.build()
        ids = ops.cast(token_ids, "int32")
        new_state: dict = {}
        if self.config.lookback:
            x, new_state["lookback"] = self.embedding.step(ids, state["lookback"])
        else:
            x = self.embedding(ids)
        new_state["rnn"] = []
        for i, rnn in enumerate(self.recurrent):
            outputs, states = rnn.step(x, state["rnn"][i])
            new_state["rnn"].append(list(states))
            x = self._after_recurrent(i, x, outputs, training=False)
            if i == 0 and self.attention is not None:
                x, new_state["attention"] = self.attention.step(x, state["attention"])
        return self.logits(x), new_state

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "model_config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        return cls(ModelConfig.from_dict(config.pop("model_config")), **config)


class StepModel:
    """The sampler's view of a model: `initial_state(batch_size)` and `step(token_ids, state)`.

    A thin wrapper over `MelodyModel.initial_state` / `MelodyModel.step`; both only use fixed-shape tensors, so
    a loop over steps can run inside one `tf.function(jit_compile=True)`.

    Args:
        model: a `MelodyModel` (from `build_model` or a bundle).

    Raises:
        MelodyRNNError: `model` is not a `MelodyModel`.
    """

    def __init__(self, model: MelodyModel):
        if not isinstance(model, MelodyModel):
            raise MelodyRNNError(f"`model` must be a melodyrnn MelodyModel, got {type(model).__name__}")
        self.model = model
        self.vocab_size = model.config.vocab_size

    def initial_state(self, batch_size, steps_per_bar=None) -> dict:
        """See `MelodyModel.initial_state`."""
        return self.model.initial_state(batch_size, steps_per_bar)

    def step(self, token_ids, state: dict):
        """See `MelodyModel.step`: int `(batch,)` → `(logits (batch, vocab_size), new_state)`."""
        return self.model.step(token_ids, state)


def build_model(config: ModelConfig = ModelConfig()) -> MelodyModel:
    """Builds the network described by `config`, with its weights created.

    Args:
        config: the model's shape; `config.vocab_size` must match the `EncodingConfig` of the data.

    Returns:
        A built, uncompiled `MelodyModel`: int32 ids `(batch, steps)` (or `{"ids": ..., "bar": (batch,)}`) →
        float32 logits `(batch, steps, vocab)`.

    Raises:
        MelodyRNNError: `config` is not a `ModelConfig`.

    Example:
        >>> model = build_model(ModelConfig(units=128, vocab_size=EncodingConfig().vocab_size))
        >>> model(np.zeros((2, 16), "int32")).shape
        TensorShape([2, 16, 130])
    """
    if not isinstance(config, ModelConfig):
        raise MelodyRNNError(f"`config` must be a ModelConfig, got {type(config).__name__}")
    model = MelodyModel(config, name="melody_model")
    model.build()
    return model


# ----------------------------------------------------------------------------------------------------------
# Bundles: one zip file holding bundle.json (format, configs, metadata) and model.keras (Keras's own format).

BUNDLE_FORMAT = "melodyrnn-bundle"
BUNDLE_VERSION = 1
DEFAULT_BUNDLE_PATH = Path(__file__).parent / "pretrained" / "default.melodyrnn"
_MODEL_MEMBER = "model.keras"
_JSON_MEMBER = "bundle.json"
_MAX_MEMBER_BYTES = 4 << 30  # guards against zip bombs; the largest sensible model is far below this


@dataclass
class Bundle:
    """Everything needed to sample, score or fine-tune.

    Attributes:
        model: the `MelodyModel`, compiled with its optimizer state if the bundle was saved compiled.
        model_config: its `ModelConfig`.
        encoding: the `EncodingConfig` its token ids mean.
        metadata: training metadata (data summary, metrics, ...) plus `created` (ISO date) and `versions`.
        path: the file it came from.
    """

    model: MelodyModel
    model_config: ModelConfig
    encoding: EncodingConfig
    metadata: dict = field(default_factory=dict)
    path: str = ""

    def step_model(self) -> StepModel:
        """The sampler's single-step view of `model`."""
        return StepModel(self.model)


def _library_versions() -> dict:
    import tensorflow as tf

    from melodyrnn import __version__

    return {"melodyrnn": __version__, "keras": keras.__version__, "tensorflow": tf.__version__,
            "numpy": np.__version__}


def _json_default(obj):
    # metrics are often numpy scalars or arrays
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def save_bundle(path: str | os.PathLike, model: MelodyModel, config: ModelConfig | None = None,
                encoding: EncodingConfig = EncodingConfig(), metadata: dict | None = None) -> Path:
    """Writes the model, its configs and metadata to ONE file, atomically.

    The file is a zip of `bundle.json` and `model.keras` (Keras's own format, with the optimizer state when the
    model is compiled). It is written to a temporary file in the same folder and then renamed over `path`, so a
    crash never leaves a half-written bundle.

    Args:
        path: the bundle file to write (suggested suffix `.melodyrnn`).
        model: a `MelodyModel`.
        config: its `ModelConfig`; defaults to `model.config` and must equal it.
        encoding: the `EncodingConfig` of its token ids; its `vocab_size` must equal the model's.
        metadata: JSON-ready training metadata (numpy scalars and arrays are converted). `created` and
            `versions` (melodyrnn, keras, tensorflow, numpy) are added.

    Returns:
        The path written.

    Raises:
        MelodyRNNError: not a `MelodyModel`, configs that disagree, or metadata that is not JSON-ready.
    """
    if not isinstance(model, MelodyModel):
        raise MelodyRNNError(f"`model` must be a melodyrnn MelodyModel, got {type(model).__name__}")
    config = model.config if config is None else config
    if config != model.config:
        raise MelodyRNNError(f"`config` must equal the model's own config {model.config}, got {config}")
    if not isinstance(encoding, EncodingConfig):
        raise MelodyRNNError(f"`encoding` must be an EncodingConfig, got {type(encoding).__name__}")
    if encoding.vocab_size != config.vocab_size:
        raise MelodyRNNError(
            f"`encoding` must have vocab_size={config.vocab_size} (the model's), got {encoding.vocab_size}"
        )
    metadata = dict(metadata or {})
    metadata.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    metadata["versions"] = _library_versions()
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        keras_path = Path(scratch) / _MODEL_MEMBER
        model.save(keras_path)
        model_bytes = keras_path.read_bytes()
    header = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "model_config": config.to_dict(),
        "encoding_config": encoding.to_dict(),
        "metadata": metadata,
        "files": {_MODEL_MEMBER: {"bytes": len(model_bytes), "sha256": hashlib.sha256(model_bytes).hexdigest()}},
    }
    try:
        header_text = json.dumps(header, indent=2, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise MelodyRNNError(f"`metadata` must be JSON-ready (numbers, strings, lists, dicts): {err}") from err
    def write(f) -> None:
        with zipfile.ZipFile(f, "w") as zf:
            zf.writestr(_JSON_MEMBER, header_text, compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr(_MODEL_MEMBER, model_bytes, compress_type=zipfile.ZIP_STORED)  # already a zip

    atomic_write(path, write)
    return path


def config_from_dict(cls, d: dict, what: str):
    """Builds the frozen config dataclass `cls` from a dict, refusing fields it does not have.

    Raises:
        MelodyRNNError: `d` is not a dict, has unknown fields, or a field is invalid (`cls` validates).
    """
    if not isinstance(d, dict):
        raise MelodyRNNError(f"a {what} must be a dict, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise MelodyRNNError(f"unknown {what} fields {unknown}; known fields are {sorted(known)}")
    return cls(**d)


def atomic_write(path: str | os.PathLike, write) -> None:
    """Writes a file so that a crash at any moment leaves the old file or the new one, never half of one.

    `write(f)` fills a temporary binary file in the same folder, which is flushed to disk and then renamed over
    `path`. The file gets the ordinary permissions of a new file (0o666 less the umask), not mkstemp's 0o600.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _unsafe_objects(node, found: list) -> list:
    """Names of objects in a Keras config that are not Keras's own or melodyrnn's registered classes."""
    if isinstance(node, dict):
        if "class_name" in node:
            name, module = node.get("class_name"), node.get("module") or ""
            registered = node.get("registered_name") or ""
            if name in ("Lambda", "__lambda__") or not (
                module == "keras" or module.startswith("keras.") or str(registered).startswith(f"{_PACKAGE}>")
            ):
                found.append(f"{module}.{name}" if module else str(name))
        for value in node.values():
            _unsafe_objects(value, found)
    elif isinstance(node, list):
        for value in node:
            _unsafe_objects(value, found)
    return found


def _read_members(path: Path) -> tuple[dict, bytes]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if _JSON_MEMBER not in names:
                raise BundleError(f"{path} is not a melodyrnn bundle: it has no {_JSON_MEMBER}")
            if _MODEL_MEMBER not in names:
                raise BundleError(f"{path} is incomplete: it has no {_MODEL_MEMBER}")
            for name in (_JSON_MEMBER, _MODEL_MEMBER):
                if zf.getinfo(name).file_size > _MAX_MEMBER_BYTES:
                    raise BundleError(f"{path} is corrupt: {name} claims {zf.getinfo(name).file_size} bytes")
            header_bytes = zf.read(_JSON_MEMBER)
            model_bytes = zf.read(_MODEL_MEMBER)
    except BundleError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError) as err:
        if isinstance(err, FileNotFoundError):
            raise BundleError(f"no bundle at {path}: the file does not exist") from err
        raise BundleError(f"{path} is not a melodyrnn bundle, or it is corrupt or truncated: {err}") from err
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path} is corrupt: {_JSON_MEMBER} is not valid JSON ({err})") from err
    if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not a melodyrnn bundle: its {_JSON_MEMBER} does not say "
                          f"format={BUNDLE_FORMAT!r}")
    version = header.get("format_version")
    if version != BUNDLE_VERSION:
        raise BundleError(f"{path} has bundle format version {version!r}; this melodyrnn reads version "
                          f"{BUNDLE_VERSION} (upgrade melodyrnn, or re-save the model with this version)")
    expected = (header.get("files") or {}).get(_MODEL_MEMBER) or {}
    if expected.get("sha256") and hashlib.sha256(model_bytes).hexdigest() != expected["sha256"]:
        raise BundleError(f"{path} is corrupt: {_MODEL_MEMBER} does not match its checksum")
    return header, model_bytes


def load_bundle(path: str | os.PathLike, *, compile: bool = True) -> Bundle:
    """Loads a bundle written by `save_bundle`, in Keras safe mode, on whatever device TensorFlow uses.

    Args:
        path: the bundle file.
        compile: restore the loss and optimizer (with its state) when the bundle was saved compiled, so
            `model.fit` resumes where it stopped.

    Returns:
        A `Bundle`.

    Raises:
        BundleError: the file is missing, not a zip, truncated, corrupt, foreign, of another format version,
            or holds content that is not melodyrnn's or Keras's own (a `Lambda` layer, an unknown class):
            such content is refused, never run.
    """
    path = Path(path)
    header, model_bytes = _read_members(path)
    try:
        model_config = ModelConfig.from_dict(header.get("model_config"))
        encoding = EncodingConfig.from_dict(header.get("encoding_config"))
    except (MelodyRNNError, TypeError, ValueError) as err:
        raise BundleError(f"{path} is corrupt: bad configs in {_JSON_MEMBER} ({err})") from err
    metadata = header.get("metadata") or {}

    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as inner:
            keras_config = json.loads(inner.read("config.json").decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError, EOFError) as err:
        raise BundleError(f"{path} is corrupt: {_MODEL_MEMBER} is not a Keras model file ({err})") from err
    unsafe = _unsafe_objects(keras_config, [])
    if unsafe:
        raise BundleError(f"{path} is refused: it holds objects that are not melodyrnn's or Keras's own "
                          f"({', '.join(sorted(set(unsafe)))}), which could run arbitrary code")

    with tempfile.TemporaryDirectory() as scratch:
        keras_path = Path(scratch) / _MODEL_MEMBER
        keras_path.write_bytes(model_bytes)
        try:
            model = keras.saving.load_model(keras_path, compile=compile, safe_mode=True)
        except Exception as err:  # Keras raises many types for bad files; all mean "this bundle is unusable"
            if "safe_mode" in str(err) or "unsafe" in str(err).lower():
                raise BundleError(f"{path} is refused: Keras safe mode would not load it ({err})") from err
            raise BundleError(f"{path} is corrupt: its model could not be loaded ({err})") from err
    if not isinstance(model, MelodyModel):
        raise BundleError(f"{path} is not a melodyrnn bundle: its model is a {type(model).__name__}, "
                          "not a MelodyModel")
    if model.config != model_config:
        raise BundleError(f"{path} is corrupt: the model's config {model.config} differs from the one in "
                          f"{_JSON_MEMBER} {model_config}")
    if encoding.vocab_size != model_config.vocab_size:
        raise BundleError(f"{path} is corrupt: encoding vocab_size {encoding.vocab_size} differs from the "
                          f"model's {model_config.vocab_size}")
    return Bundle(model=model, model_config=model_config, encoding=encoding, metadata=metadata, path=str(path))


def load(path: str | os.PathLike | None = None, *, compile: bool = True) -> Bundle:
    """Loads a bundle, or with no argument the default model shipped in `melodyrnn/pretrained/`.

    Args:
        path: a bundle file, or None for the default model.
        compile: as `load_bundle`.

    Returns:
        A `Bundle`: `.model`, `.model_config`, `.encoding`, `.metadata`, `.path`.

    Raises:
        BundleError: as `load_bundle`; for `path=None`, when no default model is bundled with this install.

    Example:
        >>> bundle = melodyrnn.load("folk.melodyrnn")
        >>> logits = bundle.model(ids)          # ids int32 (batch, steps) → (batch, steps, vocab)
    """
    if path is None:
        if not DEFAULT_BUNDLE_PATH.is_file():
            raise BundleError(f"the default model is not yet bundled with this install (expected "
                              f"{DEFAULT_BUNDLE_PATH}); pass the path of a bundle file")
        path = DEFAULT_BUNDLE_PATH
    return load_bundle(path, compile=compile)
