"""`LookbackEmbedding`: MelodyRNN's lookback features (the events one and two bars back, repeat flags, a binary
counter of the position in the bar), computed inside the model from the token ids and each row's bar length.

Start with the class docstring, then `_features`, which both `call` (the whole sequence) and `step` (the
sampler's one step, with `initial_history`'s fixed-size state) use.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from melodyrnn.configs import is_int
from melodyrnn.errors import MelodyRNNError
from melodyrnn.theory import check_steps_per_bar

__all__ = ["LookbackEmbedding"]

_PACKAGE = "melodyrnn"  # bundles store the registered name "melodyrnn>LookbackEmbedding": never change it


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

    def __init__(
        self, vocab_size: int, output_dim: int, steps_per_bar: int = 16, max_steps_per_bar: int | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        max_steps_per_bar = steps_per_bar if max_steps_per_bar is None else max_steps_per_bar
        for name, value in (
            ("vocab_size", vocab_size),
            ("output_dim", output_dim),
            ("steps_per_bar", steps_per_bar),
            ("max_steps_per_bar", max_steps_per_bar),
        ):
            if not is_int(value) or value < 1:
                raise MelodyRNNError(f"`{name}` must be a positive integer, got {value!r}")
        if max_steps_per_bar < steps_per_bar:
            raise MelodyRNNError(
                f"`max_steps_per_bar` must be >= steps_per_bar={steps_per_bar}, got {max_steps_per_bar}"
            )
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
        counter = ops.cast(
            2 * ((n[..., None] // (2 ** ops.arange(self.bits, dtype="int32"))) % 2) - 1, self.compute_dtype
        )
        emb = self.embedding
        return ops.concatenate([emb(ids), emb(past[..., 0]), emb(past[..., 1]), flags, counter], axis=-1)

    def call(self, inputs, bar=None):
        ids = ops.cast(inputs, "int32")
        batch, steps, history = ops.shape(ids)[0], ops.shape(ids)[1], 2 * self.max_steps_per_bar
        # padded[:, k] is id k - history, the "nothing yet" id before the start
        padded = ops.concatenate([ops.full((batch, history), self.vocab_size, dtype="int32"), ids], axis=1)
        positions = ops.arange(steps, dtype="int32")
        return self._features(
            padded, history + positions, self.bars(bar, batch), ops.broadcast_to(positions[None] + 1, (batch, steps))
        )

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
        features = self._features(
            window, ops.convert_to_tensor([history], "int32"), state["bar"], position[:, None] + 1
        )
        return features[:, 0], {"history": window[:, 1:], "position": position + 1, "bar": state["bar"]}

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "output_dim": self.output_dim,
            "steps_per_bar": self.steps_per_bar,
            "max_steps_per_bar": self.max_steps_per_bar,
        }


def _is_symbolic(x) -> bool:
    """Whether `x` is a tensor being traced (inside a tf.function or a Keras functional build), with no value."""
    # Keras has no public backend-neutral test for "traced, no value yet" (only `is_keras_tensor`, which misses
    # tf.function), so this one check is each backend's own; TensorFlow is imported only when it is the backend.
    if isinstance(x, keras.KerasTensor) or keras.backend.backend() != "tensorflow":
        return isinstance(x, keras.KerasTensor)
    import tensorflow as tf

    return isinstance(x, keras.KerasTensor) or (tf.is_tensor(x) and not tf.executing_eagerly())
