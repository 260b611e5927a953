"""melodyrnn's own recurrent sequence layers: `RNN` runs a cell of `melodyrnn.cells` over a sequence, with
`SimpleRNN` / `LSTM` / `GRU` as drop-ins for the Keras layers of the same names (same weight layout), and
`Bidirectional` wrapping. Written with `keras.ops`, so they run on any Keras backend; on TensorFlow `RNN` first
tries the exact fused loops of `melodyrnn.fused_tf`, which train faster than Keras's built-in layers on CPU.

Start with `LSTM` and `RNN.step`, the single-step call the sampler uses. This module knows nothing of MIDI.
"""

from __future__ import annotations

import keras
from keras import ops

from melodyrnn import fused_tf
from melodyrnn.cells import Cell, GRUCell, LSTMCell, SimpleRNNCell, check_bool
from melodyrnn.errors import MelodyRNNError

__all__ = ["RNN", "SimpleRNN", "LSTM", "GRU", "Bidirectional"]

_PACKAGE = "melodyrnn"
_IMPLEMENTATIONS = ("auto", "generic")
_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


# ----------------------------------------------------------------------------------------------------------
# Sequence layers.


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RNN(keras.layers.Layer):
    """Runs a cell over the time axis of `(batch, steps, features)` sequences.

    The input product for all steps is one matrix product before the loop; the loop does only the recurrent
    product and the gates. On TensorFlow, without a mask and without recurrent dropout in training, a fused
    loop with a hand-written backward pass runs (`melodyrnn.fused_tf`, exact to float32 rounding); otherwise a
    `keras.ops.scan` loop that runs on every backend.

    Args:
        cell: a `SimpleRNNCell`, `LSTMCell` or `GRUCell`.
        return_sequences: return the outputs of all steps `(batch, steps, units)` instead of the last
            `(batch, units)`.
        return_state: also return the final states: `[output, *states]`.
        go_backwards: process the sequence in reverse; with `return_sequences` the outputs come in processing
            order (reversed), as in Keras.
        zero_output_for_mask: masked steps output zeros instead of repeating the previous output.
        implementation: "auto" (fused TF path where it applies) or "generic" (always the `keras.ops` loop).

    Call args:
        sequences: float `(batch, steps, features)`.
        initial_state: optional list of `(batch, units)` tensors (`cell.state_size`).
        mask: optional bool `(batch, steps)`; False steps keep the state and are masked out of the loss.
        training: whether dropout is active.

    Raises:
        MelodyRNNError: a cell that is not a melodyrnn cell, an unknown `implementation`.
    """

    def __init__(
        self,
        cell: Cell,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        implementation: str = "auto",
        **kwargs,
    ):
        kwargs.pop("stateful", None)  # Keras's Bidirectional passes the attribute back through configs
        super().__init__(**kwargs)
        if not isinstance(cell, Cell):
            raise MelodyRNNError(f"`cell` must be a melodyrnn cell (SimpleRNNCell, LSTMCell, GRUCell), got {cell!r}")
        if implementation not in _IMPLEMENTATIONS:
            raise MelodyRNNError(f"`implementation` must be one of {_IMPLEMENTATIONS}, got {implementation!r}")
        self.cell = cell
        self.return_sequences = check_bool("return_sequences", return_sequences)
        self.return_state = check_bool("return_state", return_state)
        self.go_backwards = check_bool("go_backwards", go_backwards)
        self.zero_output_for_mask = check_bool("zero_output_for_mask", zero_output_for_mask)
        self.implementation = implementation
        self.stateful = False  # state is carried explicitly through `step`, never inside the layer
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self._fused_jit: bool | None = None  # XLA on the fused loops; None: `fused_tf.JIT` (benchmarks set it)

    @property
    def units(self) -> int:
        return self.cell.units

    @property
    def state_size(self) -> list[int]:
        return self.cell.state_size

    @property
    def states(self):
        """Always None: the layer keeps no state between calls (Keras's `Bidirectional` asks)."""
        return None

    def build(self, sequences_shape, initial_state_shape=None):
        if not self.cell.built:
            self.cell.build((sequences_shape[0], sequences_shape[-1]))

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, steps = sequences_shape[0], sequences_shape[1]
        output = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        if not self.return_state:
            return output
        return [output] + [(batch, size) for size in self.state_size]

    def compute_mask(self, sequences, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self.state_size)
        return output_mask

    def get_initial_state(self, batch_size):
        """Zero states: a list of `(batch_size, units)` tensors."""
        return self.cell.get_initial_state(batch_size)

    def step(self, inputs, states):
        """One time step for the sampler, numerically the same as a step of the full-sequence call.

        Args:
            inputs: float `(batch, features)`.
            states: list of `(batch, units)` tensors, e.g. from `get_initial_state` or the previous step.

        Returns:
            `(outputs, new_states)`: outputs `(batch, units)`, new_states a list like `states`.
        """
        if not self.built:
            self.build((None, None, inputs.shape[-1]))
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        return self.cell.recurrent_step(self.cell.project_inputs(inputs), list(states))

    def call(self, sequences, initial_state=None, mask=None, training=None):
        cell = self.cell
        batch_size = ops.shape(sequences)[0]
        if initial_state is None:
            states = cell.get_initial_state(batch_size)
        else:
            if not isinstance(initial_state, (list, tuple)):
                initial_state = [initial_state]
            states = [ops.cast(s, self.compute_dtype) for s in initial_state]
            if len(states) != len(cell.state_size):
                raise MelodyRNNError(f"`initial_state` must have {len(cell.state_size)} tensors, got {len(states)}")
        if training and cell.dropout > 0:
            # one mask per sequence, the same at every step (variational dropout), as in Keras
            keep = cell.dropout_mask(batch_size, ops.shape(sequences)[-1], sequences.dtype)
            sequences = sequences * keep[:, None, :]
        recurrent_mask = None
        if training and cell.recurrent_dropout > 0:
            recurrent_mask = cell.recurrent_dropout_mask(batch_size, sequences.dtype)

        # time-major, so a step is a slice along the leading axis; project before the loop
        projected = cell.project_inputs(ops.transpose(sequences, (1, 0, 2)))
        if mask is not None:
            mask = ops.transpose(ops.cast(mask, "bool"), (1, 0))
        if self.go_backwards:
            projected = ops.flip(projected, axis=0)
            mask = None if mask is None else ops.flip(mask, axis=0)

        outputs, states = self._loop(projected, states, mask, recurrent_mask)

        if self.return_sequences:
            output = ops.transpose(outputs, (1, 0, 2))
        else:
            output = outputs[-1]
        if self.return_state:
            return [output] + list(states)
        return output

    def _loop(self, projected, states, mask, recurrent_mask):
        """The recurrence over time-major projected inputs: `(outputs, final_states)`, time-major outputs."""
        cell = self.cell
        if self.implementation == "auto":
            try:
                return fused_tf.rnn_sequence(
                    cell._kind,
                    projected,
                    states,
                    cell.recurrent_kernel,
                    cell._recurrent_bias(),
                    activation=cell.activation,
                    recurrent_activation=cell.recurrent_activation,
                    reset_after=getattr(cell, "reset_after", False),
                    mask=mask,
                    recurrent_mask=recurrent_mask,
                    jit=self._fused_jit,
                )
            except NotImplementedError:
                pass  # another backend, or a case the fused loops do not cover: the generic loop is exact too
        return self._scan(projected, states, mask, recurrent_mask)

    def _scan(self, projected, states, mask, recurrent_mask):
        """The generic loop (any backend): `keras.ops.scan` over time-major projected inputs."""
        cell = self.cell
        n_states = len(states)
        # Keras's TF `scan` stacks per-step outputs with the carry's structure, so each step emits its whole
        # carry; every cell's output is its first state, so the outputs are the first stacked entry.
        if mask is None:

            def step(carry, x):
                _, new_states = cell.recurrent_step(x, list(carry), recurrent_mask)
                return tuple(new_states), tuple(new_states)

            final, stacked = ops.scan(step, tuple(states), projected)
            return stacked[0], list(final)

        def masked_step(carry, x_keep):
            x, keep = x_keep[:, :-1], x_keep[:, -1] > 0.5
            old_states, previous_output = list(carry[:n_states]), carry[n_states]
            output, new_states = cell.recurrent_step(x, old_states, recurrent_mask)
            keep = keep[:, None]
            new_states = [ops.where(keep, new, old) for new, old in zip(new_states, old_states)]
            masked_output = ops.zeros_like(output) if self.zero_output_for_mask else previous_output
            carry = tuple(new_states) + (ops.where(keep, output, masked_output),)
            return carry, carry

        zero_output = ops.zeros_like(states[0])
        # ONE sequence to scan over: Keras's TensorFlow `scan` fails on several when the time length is unknown (a
        # model retraced with a relaxed shape), so the mask rides along as a last feature, exactly 0 or 1
        x_keep = ops.concatenate([projected, ops.cast(mask, projected.dtype)[..., None]], axis=-1)
        final, stacked = ops.scan(masked_step, tuple(states) + (zero_output,), x_keep)
        return stacked[n_states], list(final[:n_states])

    def get_config(self):
        config = {
            "cell": keras.saving.serialize_keras_object(self.cell),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "zero_output_for_mask": self.zero_output_for_mask,
            "implementation": self.implementation,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"], custom_objects=custom_objects)
        return cls(**config)


_SEQUENCE_ARGS = ("return_sequences", "return_state", "go_backwards", "zero_output_for_mask", "implementation")
_LAYER_ARGS = ("name", "trainable", "dtype", "autocast", "input_dim", "input_shape", "batch_input_shape")


class _CellLayer(RNN):
    """An `RNN` that builds its own cell from Keras's flat argument list (the `SimpleRNN`/`LSTM`/`GRU`)."""

    _cell_class: type = Cell

    def __init__(self, units: int, **kwargs):
        sequence_kwargs = {k: kwargs.pop(k) for k in _SEQUENCE_ARGS if k in kwargs}
        layer_kwargs = {k: kwargs.pop(k) for k in _LAYER_ARGS if k in kwargs}
        kwargs.pop("cell", None)
        kwargs.pop("stateful", None)
        cell = self._cell_class(units, dtype=layer_kwargs.get("dtype"), name="cell", **kwargs)
        super().__init__(cell, **sequence_kwargs, **layer_kwargs)

    def get_config(self):
        config = super().get_config()
        cell_config = dict(self.cell.get_config())
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        del config["cell"]
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SimpleRNN(_CellLayer):
    """Vanilla RNN over a sequence; arguments as `keras.layers.SimpleRNN` (see `SimpleRNNCell`, `RNN`).

    Example:
        >>> layer = SimpleRNN(5, return_sequences=True)
        >>> layer(np.zeros((3, 7, 4), "float32")).shape   # (batch, steps, units)
        (3, 7, 5)
    """

    _cell_class = SimpleRNNCell

    def __init__(self, units: int, activation="tanh", **kwargs):
        super().__init__(units, activation=activation, **kwargs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LSTM(_CellLayer):
    """LSTM over a sequence; arguments as `keras.layers.LSTM` (see `LSTMCell`, `RNN`).

    Args:
        units, activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
        bias_initializer, unit_forget_bias, *_regularizer, *_constraint, dropout, recurrent_dropout, seed:
            as `LSTMCell`.
        return_sequences, return_state, go_backwards, zero_output_for_mask, implementation: as `RNN`.

    Example:
        >>> inputs = keras.Input((None,), dtype="int32")
        >>> x = keras.layers.Embedding(130, 64)(inputs)
        >>> x = LSTM(256, return_sequences=True)(x)
        >>> logits = keras.layers.Dense(130)(LSTM(256, return_sequences=True)(x))
    """

    _cell_class = LSTMCell

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        unit_forget_bias: bool = True,
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            unit_forget_bias=unit_forget_bias,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GRU(_CellLayer):
    """GRU over a sequence; arguments as `keras.layers.GRU`, `reset_after=True` by default (see `GRUCell`)."""

    _cell_class = GRUCell

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        reset_after: bool = True,
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            reset_after=reset_after,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Bidirectional(keras.layers.Bidirectional):
    """Runs a sequence layer forwards and a copy backwards and merges the outputs.

    Keras's `Bidirectional`, registered with melodyrnn and with argument checks in melodyrnn's style; it works
    with `RNN`, `SimpleRNN`, `LSTM` and `GRU` (a plain `keras.layers.Bidirectional` does too).

    Args:
        layer: the forward layer, e.g. `LSTM(64, return_sequences=True)`.
        merge_mode: "concat" (default; output `(..., 2 * units)`), "sum", "mul", "ave" or None (a list).
        backward_layer: optional explicit backward layer (with `go_backwards=True`).

    Raises:
        MelodyRNNError: `layer` not a Keras layer, an unknown `merge_mode`.
    """

    def __init__(self, layer, merge_mode: str | None = "concat", weights=None, backward_layer=None, **kwargs):
        if not isinstance(layer, keras.layers.Layer):
            raise MelodyRNNError(f"`layer` must be a Keras layer, got {layer!r}")
        if merge_mode not in _MERGE_MODES:
            raise MelodyRNNError(f"`merge_mode` must be one of {_MERGE_MODES}, got {merge_mode!r}")
        super().__init__(layer, merge_mode=merge_mode, weights=weights, backward_layer=backward_layer, **kwargs)

    def step(self, inputs, states):
        raise NotImplementedError("a bidirectional layer needs the whole sequence; it has no single-step call")
