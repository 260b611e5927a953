"""`CausalSelfAttention`: the model's multi-head causal self-attention block, full-sequence and one step at a time.

Start with the class docstring (what the two music shortcuts, relative bias and previous-step keys, are for), then
`call` (the whole sequence, one additive mask) and `initial_cache` / `step` (the sampler's fixed-size key/value
cache; equal to `call` position by position).
"""

from __future__ import annotations

import math
import numbers

import keras
from keras import ops

from melodyrnn.configs import is_int
from melodyrnn.errors import MelodyRNNError

__all__ = ["CausalSelfAttention"]

_PACKAGE = "melodyrnn"  # bundles store the registered name "melodyrnn>CausalSelfAttention": never change it
_NEG_INF = -1e9  # masked attention scores; scores are softmaxed in float32, where this is exactly "never"


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

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        window: int | None = None,
        dropout: float = 0.0,
        epsilon: float = 1e-5,
        relative_bias: bool = False,
        previous_key: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not is_int(num_heads) or num_heads < 1:
            raise MelodyRNNError(f"`num_heads` must be a positive integer, got {num_heads!r}")
        if not is_int(key_dim) or key_dim < 1:
            raise MelodyRNNError(f"`key_dim` must be a positive integer, got {key_dim!r}")
        if window is not None and (not is_int(window) or window < 1):
            raise MelodyRNNError(f"`window` must be a positive integer or None, got {window!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise MelodyRNNError(f"`dropout` must be a float in [0, 1), got {dropout!r}")
        for name, value in (("relative_bias", relative_bias), ("previous_key", previous_key)):
            if not isinstance(value, bool):
                raise MelodyRNNError(f"`{name}` must be True or False, got {value!r}")
        if relative_bias and window is None:
            raise MelodyRNNError("`window` must be set when `relative_bias` is True, got None")
        self.num_heads: int = int(num_heads)
        self.key_dim: int = int(key_dim)
        self.window: int | None = None if window is None else int(window)
        self.dropout, self.epsilon = float(dropout), float(epsilon)
        self.relative_bias: bool = relative_bias
        self.previous_key: bool = previous_key
        self.output_dropout = keras.layers.Dropout(self.dropout, name="dropout")
        self.norm = keras.layers.LayerNormalization(epsilon=self.epsilon, name="norm")

    def build(self, input_shape):
        features = input_shape[-1]
        width = self.num_heads * self.key_dim
        self.qkv_kernel = self.add_weight(shape=(features, 3 * width), name="qkv_kernel", initializer="glorot_uniform")
        self.qkv_bias = self.add_weight(shape=(3 * width,), name="qkv_bias", initializer="zeros")
        self.output_kernel = self.add_weight(
            shape=(width, features), name="output_kernel", initializer="glorot_uniform"
        )
        self.output_bias = self.add_weight(shape=(features,), name="output_bias", initializer="zeros")
        if self.previous_key:
            self.previous_key_kernel = self.add_weight(
                shape=(features, width), name="previous_key_kernel", initializer="glorot_uniform"
            )
        if self.relative_bias:
            # zeros: training starts from plain content attention and learns which distances matter
            self.position_bias = self.add_weight(
                shape=(self.num_heads, self.window), name="position_bias", initializer="zeros"
            )
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
        return tuple(
            self._heads(ops.matmul(x, kernel[:, i * width : (i + 1) * width]) + bias[i * width : (i + 1) * width])
            for i in range(3)
        )

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
            bias = bias + ops.take(
                ops.cast(self.position_bias, "float32"), ops.clip(distance, 0, self.window - 1), axis=1
            )
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
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "window": self.window,
            "dropout": self.dropout,
            "epsilon": self.epsilon,
            "relative_bias": self.relative_bias,
            "previous_key": self.previous_key,
        }
