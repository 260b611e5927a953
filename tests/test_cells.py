"""cells: one step of each recurrent cell; the sequence layers that run them are tested in test_layers.py."""

from __future__ import annotations

import numpy as np
import pytest

from melodyrnn import cells as C
from melodyrnn.errors import MelodyRNNError

BATCH, FEATURES, UNITS = 3, 4, 5


def _step_inputs(seed=11):
    return np.random.default_rng(seed).normal(size=(BATCH, FEATURES)).astype("float32")


def test_cell_call_is_one_step():
    cell = C.GRUCell(UNITS)
    x = _step_inputs()
    output, states = cell(x, cell.get_initial_state(BATCH))
    assert output.shape == (BATCH, UNITS)
    assert len(states) == 1 and cell.state_size == [UNITS]
    np.testing.assert_array_equal(output, states[0])
    assert C.LSTMCell(UNITS).state_size == [UNITS, UNITS]


@pytest.mark.parametrize("cls", [C.SimpleRNNCell, C.LSTMCell, C.GRUCell])
def test_cell_step_matches_a_numpy_reference_under_constant_weights(cls):
    # kernel 0.1 everywhere, recurrent kernel 0.2, bias 0: every unit sees the same pre-activation
    cell = cls(
        UNITS,
        kernel_initializer="zeros",
        recurrent_initializer="zeros",
        bias_initializer="zeros",
        **({"unit_forget_bias": False} if cls is C.LSTMCell else {}),
    )
    cell.build((None, FEATURES))
    cell.kernel.assign(np.full(cell.kernel.shape, 0.1, "float32"))
    cell.recurrent_kernel.assign(np.full(cell.recurrent_kernel.shape, 0.2, "float32"))
    x = _step_inputs()
    states = [np.full((BATCH, UNITS), 0.5, "float32") for _ in cell.state_size]
    output, _ = cell(x, states)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))
    z = 0.1 * x.sum(axis=1, keepdims=True) + 0.2 * 0.5 * UNITS
    if cls is C.SimpleRNNCell:
        expected = np.tanh(z)
    elif cls is C.LSTMCell:
        gate = sigmoid(z)  # input, forget and output gates all equal
        expected = gate * np.tanh(gate * 0.5 + gate * np.tanh(z))
    else:
        gate = sigmoid(z)  # update and reset gates
        candidate = np.tanh(0.1 * x.sum(axis=1, keepdims=True) + gate * 0.2 * 0.5 * UNITS)
        expected = gate * 0.5 + (1 - gate) * candidate
    np.testing.assert_allclose(np.asarray(output), np.broadcast_to(expected, (BATCH, UNITS)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: C.LSTMCell(0), r"`units` must be a positive integer, got 0"),
        (lambda: C.GRUCell(4, dropout=1.0), r"`dropout` must be a float in \[0, 1\), got 1.0"),
        (lambda: C.SimpleRNNCell(4, activation="no-such"), r"`activation` must be a Keras activation"),
    ],
)
def test_cell_arguments_are_checked(make, match):
    with pytest.raises(MelodyRNNError, match=match):
        make()
