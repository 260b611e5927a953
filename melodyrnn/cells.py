"""melodyrnn's recurrent cells: one time step each of a vanilla RNN, an LSTM and a GRU, written with `keras.ops`.

A step is split in two (`Cell.project_inputs`, then `recurrent_step`) so that the sequence layers of
`melodyrnn.layers` can compute the input product for every step before their loop. Start with `LSTMCell`;
weights use Keras's layout, so a cell and its Keras twin hold the same numbers. This module knows nothing of MIDI.
"""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops

from melodyrnn.errors import MelodyRNNError

__all__ = ["Cell", "SimpleRNNCell", "LSTMCell", "GRUCell", "check_bool"]

_PACKAGE = "melodyrnn"


# ----------------------------------------------------------------------------------------------------------
# Argument validation: messages name the argument, the expectation and the value received.


def _check_units(units: Any) -> int:
    if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units <= 0:
        raise MelodyRNNError(f"`units` must be a positive integer, got {units!r}")
    return int(units)


def _check_rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
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


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise MelodyRNNError(f"`{name}` must be True or False, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------------------
# Cells: one time step each.


class Cell(keras.layers.Layer):
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
        self.use_bias = check_bool("use_bias", use_bias)
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
class SimpleRNNCell(Cell):
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
class LSTMCell(Cell):
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
        self.unit_forget_bias = check_bool("unit_forget_bias", unit_forget_bias)

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
class GRUCell(Cell):
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
        self.reset_after = check_bool("reset_after", reset_after)

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
