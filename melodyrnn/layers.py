"""melodyrnn's own recurrent layers: vanilla RNN, LSTM and GRU cells, the sequence layer that runs them, and
bidirectional wrapping. Written with `keras.ops`, so they run on any Keras backend; on TensorFlow `RNN` first
tries the exact fused loops of `melodyrnn.fused_tf`, which train faster than Keras's built-in layers on CPU.

Start with `LSTM` / `GRU` / `SimpleRNN` (drop-in for the Keras layers of the same names, same weight layout)
and `RNN.step`, the single-step call the sampler uses. This module knows nothing of MIDI.
"""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops

from melodyrnn import fused_tf
from melodyrnn.errors import MelodyRNNError

__all__ = [
    "SimpleRNNCell",
    "LSTMCell",
    "GRUCell",
    "RNN",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "Bidirectional",
]

_PACKAGE = "melodyrnn"
_IMPLEMENTATIONS = ("auto", "generic")
_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


# ----------------------------------------------------------------------------------------------------------
# Argument validation: messages name the argument, the expectation and the value received.


def _check_units(units: Any) -> int:
    if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units <= 0:
        raise MelodyRNNError(f"`units` must be a positive integer, got {units!r}")
    return int(units)


def _check_rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise MelodyRNNError(f"`{name}` must be a float in [0, 1), got {value!r}")
    return float(value)


def _check_activation(name: str, value: Any):
    try:
        fn = keras.activations.get(value)
    except (ValueError, TypeError) as err:
        raise MelodyRNNError(f"`{name}` must be a Keras activation name or callable, got {value!r}") from err
    if fn is None or not callable(fn):
        raise MelodyRNNError(f"`{name}` must be a Keras activation name or callable, got {value!r}")
    return fn


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise MelodyRNNError(f"`{name}` must be True or False, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------------------
# Cells: one time step each.


class _Cell(keras.layers.Layer):
    """Shared machinery of the cells: weights, dropout masks and the split of a step into two halves.

    A step is `project_inputs` (the input product `x @ kernel + bias`, which the sequence layer computes for all
    steps at once, before the loop) followed by `recurrent_step` (the recurrent product and the gates, the only
    work left inside the loop).
    """

    _kind = "rnn"  # the cell's equations, for `fused_tf.rnn_sequence`
    _gates = 1  # blocks of `units` columns in the kernels

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _check_units(units)
        self.activation = _check_activation("activation", activation)
        self.recurrent_activation = _check_activation("recurrent_activation", recurrent_activation)
        self.use_bias = _check_bool("use_bias", use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = _check_rate("dropout", dropout)
        self.recurrent_dropout = _check_rate("recurrent_dropout", recurrent_dropout)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise MelodyRNNError(f"`seed` must be an integer or None, got {seed!r}")
        self.seed = seed
        if self.dropout > 0 or self.recurrent_dropout > 0:
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    # -- state ------------------------------------------------------------------------------------------

    @property
    def state_size(self) -> list[int]:
        """Sizes of the state tensors, a list (`[units]`, or `[units, units]` for the LSTM's h and c)."""
        return [self.units]

    @property
    def output_size(self) -> int:
        return self.units

    def get_initial_state(self, batch_size):
        """Zero states: a list of `(batch_size, units)` tensors in the compute dtype."""
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in self.state_size]

    # -- weights ----------------------------------------------------------------------------------------

    def build(self, input_shape):
        features = input_shape[-1]
        width = self._gates * self.units
        self.kernel = self.add_weight(
            shape=(features, width),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=self._bias_shape(),
                name="bias",
                initializer=self._bias_init(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def _input_bias(self):
        return self.bias

    def _recurrent_bias(self):
        """The bias added to the recurrent product (the GRU's with `reset_after`), or None."""
        return None

    # -- the two halves of a step ----------------------------------------------------------------------

    def project_inputs(self, inputs):
        """The input half of a step, `inputs @ kernel + bias`, for one step or for all steps at once.

        Args:
            inputs: float tensor `(..., features)`, e.g. `(batch, features)` or `(steps, batch, features)`.

        Returns:
            float tensor `(..., gates * units)`.
        """
        projected = ops.matmul(inputs, ops.cast(self.kernel, inputs.dtype))
        bias = self._input_bias()
        if bias is not None:
            projected = projected + ops.cast(bias, inputs.dtype)
        return projected

    def recurrent_step(self, projected, states, recurrent_mask=None):
        """The recurrent half of a step: the recurrent product and the gates.

        Args:
            projected: `(batch, gates * units)`, the output of `project_inputs` for this step.
            states: list of `(batch, units)` tensors.
            recurrent_mask: optional `(batch, units)` recurrent-dropout multiplier for the previous output.

        Returns:
            `(output, new_states)`: output `(batch, units)`, new_states a list like `states`.
        """
        raise NotImplementedError

    def call(self, inputs, states, training=False):
        """One time step.

        Args:
            inputs: float tensor `(batch, features)`.
            states: list of `(batch, units)` tensors (a single tensor is accepted for one-state cells).
            training: whether dropout is active.

        Returns:
            `(output, new_states)`: output `(batch, units)`, new_states a list of `(batch, units)` tensors.
        """
        if not isinstance(states, (list, tuple)):
            states = [states]
        states = list(states)
        if training and self.dropout > 0:
            inputs = inputs * self.dropout_mask(ops.shape(inputs)[0], ops.shape(inputs)[-1], inputs.dtype)
        recurrent_mask = None
        if training and self.recurrent_dropout > 0:
            recurrent_mask = self.recurrent_dropout_mask(ops.shape(inputs)[0], inputs.dtype)
        return self.recurrent_step(self.project_inputs(inputs), states, recurrent_mask)

    def dropout_mask(self, batch_size, features, dtype):
        """Input-dropout multiplier `(batch, features)`: 0 or 1/(1 - dropout)."""
        ones = ops.ones((batch_size, features), dtype=dtype)
        return keras.random.dropout(ones, self.dropout, seed=self.seed_generator)

    def recurrent_dropout_mask(self, batch_size, dtype):
        """Recurrent-dropout multiplier `(batch, units)`: 0 or 1/(1 - recurrent_dropout)."""
        ones = ops.ones((batch_size, self.units), dtype=dtype)
        return keras.random.dropout(ones, self.recurrent_dropout, seed=self.seed_generator)

    def get_config(self):
        config = {
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SimpleRNNCell(_Cell):
    """Vanilla RNN cell: `h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)`.

    Same weights and layout as `keras.layers.SimpleRNNCell`: kernel `(features, units)`, recurrent_kernel
    `(units, units)`, bias `(units,)`.

    Args:
        units: size of the state, a positive integer.
        activation: "tanh" (default) or "relu" (both have a fused TF path) or any Keras activation.
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer, *_regularizer, *_constraint:
            as in Keras.
        dropout: input-dropout rate in [0, 1), one mask per sequence.
        recurrent_dropout: dropout rate in [0, 1) on the previous output before the recurrent product.
        seed: seed of the dropout masks.

    Raises:
        MelodyRNNError: units <= 0, unknown activation, rate outside [0, 1).
    """

    def __init__(self, units: int, activation="tanh", **kwargs):
        kwargs.pop("recurrent_activation", None)  # a vanilla cell has no gates
        super().__init__(units, activation=activation, **kwargs)

    def recurrent_step(self, projected, states, recurrent_mask=None):
        h = states[0]
        if recurrent_mask is not None:
            h = h * recurrent_mask
        output = self.activation(projected + ops.matmul(h, ops.cast(self.recurrent_kernel, h.dtype)))
        return output, [output]

    def get_config(self):
        config = super().get_config()
        del config["recurrent_activation"]
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LSTMCell(_Cell):
    """LSTM cell (Hochreiter & Schmidhuber 1997), gates in Keras's order i, f, c, o.

    Same weights and layout as `keras.layers.LSTMCell`: kernel `(features, 4 * units)`, recurrent_kernel
    `(units, 4 * units)`, bias `(4 * units,)`. States are `[h, c]`, each `(batch, units)`.

    Args:
        units: size of h and c, a positive integer.
        activation: "tanh" by default.
        recurrent_activation: "sigmoid" by default (the gates).
        unit_forget_bias: add 1 to the forget-gate bias at initialization (Jozefowicz et al. 2015).
        Others: as `SimpleRNNCell`.

    Raises:
        MelodyRNNError: units <= 0, unknown activation, rate outside [0, 1).
    """

    _kind = "lstm"
    _gates = 4

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = _check_bool("unit_forget_bias", unit_forget_bias)

    @property
    def state_size(self):
        return [self.units, self.units]

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        units, base = self.units, self.bias_initializer

        def init(shape, dtype=None):
            return ops.concatenate(
                [base((units,), dtype=dtype), ops.ones((units,), dtype=dtype), base((2 * units,), dtype=dtype)]
            )

        return init

    def recurrent_step(self, projected, states, recurrent_mask=None):
        h, c = states[0], states[1]
        if recurrent_mask is not None:
            h = h * recurrent_mask
        z = projected + ops.matmul(h, ops.cast(self.recurrent_kernel, h.dtype))
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        g = self.activation(z_c)
        o = self.recurrent_activation(z_o)
        c = f * c + i * g
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GRUCell(_Cell):
    """GRU cell (Cho et al. 2014), gates in Keras's order z, r, h.

    With `reset_after=True` (Keras's default) the reset gate multiplies the recurrent product:
    `hh = tanh(x W_h + b_h + r * (h U_h + b'_h))`, and the bias is `(2, 3 * units)` (input row, recurrent row).
    With `reset_after=False`: `hh = tanh(x W_h + b_h + (r * h) U_h)`, bias `(3 * units,)`. Then
    `h_t = z * h_{t-1} + (1 - z) * hh`. Same weights and layout as `keras.layers.GRUCell`.

    Args:
        units: size of the state, a positive integer.
        reset_after: where the reset gate applies (see above).
        Others: as `SimpleRNNCell`; recurrent_activation "sigmoid" by default.

    Raises:
        MelodyRNNError: units <= 0, unknown activation, rate outside [0, 1).
    """

    _kind = "gru"
    _gates = 3

    def __init__(self, units: int, reset_after: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = _check_bool("reset_after", reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _input_bias(self):
        if self.bias is None or not self.reset_after:
            return self.bias
        return self.bias[0]

    def _recurrent_bias(self):
        if self.bias is None or not self.reset_after:
            return None
        return self.bias[1]

    def recurrent_step(self, projected, states, recurrent_mask=None):
        h_prev = states[0]
        h = h_prev if recurrent_mask is None else h_prev * recurrent_mask
        kernel = ops.cast(self.recurrent_kernel, h.dtype)
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        units = self.units
        if self.reset_after:
            inner = ops.matmul(h, kernel)
            bias = self._recurrent_bias()
            if bias is not None:
                inner = inner + ops.cast(bias, h.dtype)
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            hh = self.activation(x_h + r * r_h)
        else:
            inner = ops.matmul(h, kernel[:, : 2 * units])
            r_z, r_r = ops.split(inner, 2, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            hh = self.activation(x_h + ops.matmul(r * h, kernel[:, 2 * units :]))
        output = z * h_prev + (1 - z) * hh
        return output, [output]

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


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
        cell: _Cell,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        implementation: str = "auto",
        **kwargs,
    ):
        kwargs.pop("stateful", None)  # Keras's Bidirectional passes the attribute back through configs
        super().__init__(**kwargs)
        if not isinstance(cell, _Cell):
            raise MelodyRNNError(f"`cell` must be a melodyrnn cell (SimpleRNNCell, LSTMCell, GRUCell), got {cell!r}")
        if implementation not in _IMPLEMENTATIONS:
            raise MelodyRNNError(f"`implementation` must be one of {_IMPLEMENTATIONS}, got {implementation!r}")
        self.cell = cell
        self.return_sequences = _check_bool("return_sequences", return_sequences)
        self.return_state = _check_bool("return_state", return_state)
        self.go_backwards = _check_bool("go_backwards", go_backwards)
        self.zero_output_for_mask = _check_bool("zero_output_for_mask", zero_output_for_mask)
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
                raise MelodyRNNError(
                    f"`initial_state` must have {len(cell.state_size)} tensors, got {len(states)}"
                )
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

        def masked_step(carry, xs):
            x, keep = xs
            old_states, previous_output = list(carry[:n_states]), carry[n_states]
            output, new_states = cell.recurrent_step(x, old_states, recurrent_mask)
            keep = keep[:, None]
            new_states = [ops.where(keep, new, old) for new, old in zip(new_states, old_states)]
            masked_output = ops.zeros_like(output) if self.zero_output_for_mask else previous_output
            carry = tuple(new_states) + (ops.where(keep, output, masked_output),)
            return carry, carry

        zero_output = ops.zeros_like(states[0])
        final, stacked = ops.scan(masked_step, tuple(states) + (zero_output,), (projected, mask))
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

    _cell_class: type = _Cell

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
