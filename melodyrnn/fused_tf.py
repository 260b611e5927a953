"""The TensorFlow-only fast path of melodyrnn's recurrent layers: fused forward and reverse while_loops with a
hand-written backward pass, each loop compiled with XLA on its own.

Start with `rnn_sequence`, the one entry point `melodyrnn.layers.RNN` calls; it raises NotImplementedError for any
backend or case it does not cover, and the layer then runs its generic `keras.ops` loop (as Keras does with cuDNN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

__all__ = ["rnn_sequence"]

# Why fused: on CPU the built-ins (and plain autodiff of any loop) spend the backward pass in many small per-step
# ops, including one small matmul per step for the recurrent-weight gradient. Here the reverse loop does one matmul
# per step (the gradient flowing to the previous state) and the recurrent-weight gradient is ONE large matmul over
# all steps after the loop. All tensors are time-major, (steps, batch, ...).

# Measured on CPU: XLA on the whole model made training slower (about 0.65x the speed), while XLA on the inner
# loops only helped, and only with each loop its own tf.function(jit_compile=True) called inside the custom gradient.
JIT = True

_LOOPS: dict = {}


def rnn_sequence(
    cell_kind: str,
    projected,
    states: Sequence[Any],
    recurrent_kernel,
    recurrent_bias=None,
    *,
    activation,
    recurrent_activation=None,
    reset_after: bool = False,
    mask=None,
    recurrent_mask=None,
    jit: bool | None = None,
):
    """Run a cell over time with the fused TensorFlow loops, exact to float32 rounding.

    Covered: the TensorFlow backend, no mask, no recurrent dropout, and a vanilla cell with tanh or relu, an LSTM
    with tanh and sigmoid gates, or a GRU with `reset_after=True`, tanh and sigmoid gates.

    Args:
        cell_kind: "rnn", "lstm" or "gru".
        projected: `(steps, batch, gates * units)` projected inputs (`x @ kernel + bias`), time-major.
        states: list of `(batch, units)` initial states (`[h, c]` for the LSTM).
        recurrent_kernel: `(units, gates * units)` recurrent kernel (a variable or tensor).
        recurrent_bias: GRU only, `(3 * units,)` recurrent bias, or None for none.
        activation: the cell's activation function.
        recurrent_activation: the gates' activation function (LSTM, GRU).
        reset_after: GRU only, whether the reset gate multiplies the recurrent product.
        mask: optional bool `(steps, batch)` step mask; not covered.
        recurrent_mask: optional recurrent-dropout multiplier; not covered.
        jit: compile the two loops with XLA; None for the default, `JIT`.

    Returns:
        `(outputs, final_states)`: outputs `(steps, batch, units)`, final_states a list of `(batch, units)`.

    Raises:
        NotImplementedError: the backend is not TensorFlow or the case is not covered; run the generic loop.
    """
    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError(f"the fused loops need the TensorFlow backend, not {keras.backend.backend()!r}")
    kind = _loop_kind(cell_kind, activation, recurrent_activation, reset_after)
    if kind is None:
        raise NotImplementedError(f"no fused loop for this {cell_kind!r} cell's activations or reset_after")
    if mask is not None or recurrent_mask is not None:
        raise NotImplementedError("the fused loops support neither masks nor recurrent dropout")

    kernel = ops.cast(recurrent_kernel, projected.dtype)
    rbias = None
    if kind == "gru":
        if recurrent_bias is None:
            rbias = ops.zeros((kernel.shape[-1],), projected.dtype)
        else:
            rbias = ops.cast(recurrent_bias, projected.dtype)
    outputs, final_states = _fused_sequence(kind, projected, list(states), kernel, rbias, JIT if jit is None else jit)
    # The loops are traced with reduce_retracing, so after a few shapes they return unknown static shapes; layers
    # after this one (LayerNormalization, say) need the feature size to build.
    units = kernel.shape[0]
    outputs.set_shape(projected.shape[:2] + (units,))
    for state in final_states:
        state.set_shape(projected.shape[1:2] + (units,))
    return outputs, final_states


def _loop_kind(cell_kind: str, activation, recurrent_activation, reset_after: bool) -> str | None:
    """Name of the fused loop for this cell configuration, or None when only the generic loop fits."""

    def _is(fn, name):
        return fn is keras.activations.get(name)

    if cell_kind == "rnn":
        if _is(activation, "tanh"):
            return "rnn_tanh"
        if _is(activation, "relu"):
            return "rnn_relu"
        return None
    gates = _is(activation, "tanh") and _is(recurrent_activation, "sigmoid")
    if cell_kind == "lstm" and gates:
        return "lstm"
    if cell_kind == "gru" and gates and reset_after:
        return "gru"
    return None


# ----------------------------------------------------------------------------------------------------------
# The custom gradients: the forward loop's outputs, and the backward loop as their gradient.


def _fused_sequence(kind: str, xw, states, kernel, rbias, jit: bool):
    """Run the fused loop of `kind` ("lstm", "gru", "rnn_tanh", "rnn_relu") under its hand-written gradient.

    Args and Returns: as `rnn_sequence`, with `kernel` a tensor of the compute dtype and `rbias` the GRU's
    recurrent bias (zeros when the cell has none).
    """
    import tensorflow as tf  # only this path needs it; keeps `import melodyrnn.fused_tf` backend-neutral

    forward_loop, backward_loop = _tf_loops(kind, jit)

    # The loops' own autodiff must never be traced (XLA cannot return its TensorLists, and the gradient is
    # ours), so they only ever see tensors cut from the tape.
    def forward(*args):
        return forward_loop(*[tf.stop_gradient(a) for a in args])

    def backward(*args):
        return backward_loop(*[tf.stop_gradient(a) for a in args])

    if kind == "lstm":
        return _lstm_sequence(tf, forward, backward, xw, states, kernel)
    if kind == "gru":
        return _gru_sequence(tf, forward, backward, xw, states, kernel, rbias)
    return _rnn_sequence(tf, forward, backward, xw, states, kernel)


def _upstream(tf, grad, like):
    return tf.zeros_like(like) if grad is None else grad


def _lstm_sequence(tf, forward, backward, xw, states, kernel):
    @tf.custom_gradient
    def lstm(xw, h0, c0, kernel):
        hs, cs, gs = forward(xw, h0, c0, kernel)

        def grad(dhs, dh_last, dc_last):
            return backward(
                _upstream(tf, dhs, hs),
                _upstream(tf, dh_last, h0),
                _upstream(tf, dc_last, c0),
                hs,
                cs,
                gs,
                h0,
                c0,
                kernel,
            )

        return (hs, hs[-1], cs[-1]), grad

    hs, h, c = lstm(xw, states[0], states[1], kernel)
    return hs, [h, c]


def _gru_sequence(tf, forward, backward, xw, states, kernel, rbias):
    @tf.custom_gradient
    def gru(xw, h0, kernel, rbias):
        hs, inners = forward(xw, h0, kernel, rbias)

        def grad(dhs, dh_last):
            return backward(_upstream(tf, dhs, hs), _upstream(tf, dh_last, h0), xw, hs, inners, h0, kernel)

        return (hs, hs[-1]), grad

    hs, h = gru(xw, states[0], kernel, rbias)
    return hs, [h]


def _rnn_sequence(tf, forward, backward, xw, states, kernel):
    @tf.custom_gradient
    def rnn(xw, h0, kernel):
        (hs,) = forward(xw, h0, kernel)

        def grad(dhs, dh_last):
            return backward(_upstream(tf, dhs, hs), _upstream(tf, dh_last, h0), hs, h0, kernel)

        return (hs, hs[-1]), grad

    hs, h = rnn(xw, states[0], kernel)
    return hs, [h]


# ----------------------------------------------------------------------------------------------------------
# The loops: one forward and one reverse tf.while_loop per cell kind, each its own (optionally XLA) tf.function.


def _tf_loops(kind: str, jit: bool):
    """The compiled (forward, backward) loop functions of `kind`, made once per (kind, jit)."""
    key = (kind, jit)
    if key not in _LOOPS:
        import tensorflow as tf

        if kind == "lstm":
            forward, backward = _lstm_loops(tf)
        elif kind == "gru":
            forward, backward = _gru_loops(tf)
        else:
            forward, backward = _rnn_loops(tf, relu=kind == "rnn_relu")
        _LOOPS[key] = (
            tf.function(forward, jit_compile=jit, autograph=False, reduce_retracing=True),
            tf.function(backward, jit_compile=jit, autograph=False, reduce_retracing=True),
        )
    return _LOOPS[key]


def _run(tf, n, body, init):
    # maximum_iterations: XLA compiles a while_loop only with a static bound on its trip count
    return tf.while_loop(lambda t, *_: t < n, body, (tf.constant(0),) + tuple(init), maximum_iterations=n)[1:]


def _array(tf, like, n):
    return tf.TensorArray(like.dtype, size=n, element_shape=like.shape)


def _previous(tf, first, seq):
    # (steps, batch, units): the state entering each step
    return tf.concat([first[None], seq[:-1]], axis=0)


def _weight_grad(tf, h0, hs, dpre):
    # sum over steps of h_{t-1}^T @ dpre_t, as one (units, steps*batch) @ (steps*batch, width) product
    units, width = tf.shape(h0)[-1], tf.shape(dpre)[-1]
    h_prev = tf.reshape(_previous(tf, h0, hs), [-1, units])
    return tf.matmul(h_prev, tf.reshape(dpre, [-1, width]), transpose_a=True)


def _lstm_loops(tf):
    """LSTM (tanh, sigmoid gates i, f, c, o): forward(xw, h0, c0, kernel) -> (hs, cs, zs), and backward(dhs, dh_last,
    dc_last, hs, cs, zs, h0, c0, kernel) -> (dxw, dh0, dc0, dkernel), zs being the saved pre-activations."""

    def gates(z):
        units = tf.shape(z)[1] // 4
        s = tf.sigmoid(z)  # one op over all four blocks; the c block is replaced by its tanh
        return s[:, :units], s[:, units : 2 * units], tf.tanh(z[:, 2 * units : 3 * units]), s[:, 3 * units :]

    def forward(xw, h0, c0, kernel):
        n = tf.shape(xw)[0]

        def body(t, h, c, hs, cs, zs):
            z = xw[t] + tf.matmul(h, kernel)
            i, f, g, o = gates(z)
            c = f * c + i * g
            h = o * tf.tanh(c)
            # the pre-activations are saved, not the gates: no concat here, and the backward loop
            # recomputes the gates in its own fused (XLA) kernel
            return t + 1, h, c, hs.write(t, h), cs.write(t, c), zs.write(t, z)

        _, _, hs, cs, gs = _run(tf, n, body, (h0, c0, _array(tf, h0, n), _array(tf, c0, n), _array(tf, xw[0], n)))
        return hs.stack(), cs.stack(), gs.stack()

    def backward(dhs, dh_last, dc_last, hs, cs, gs, h0, c0, kernel):
        n = tf.shape(hs)[0]
        kernel_t = tf.transpose(kernel)
        c_prev_all = _previous(tf, c0, cs)

        def body(k, dh_next, dc_next, dzs):
            t = n - 1 - k
            dh = dhs[t] + dh_next
            i, f, g, o = gates(gs[t])
            tanh_c = tf.tanh(cs[t])
            dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
            dz = tf.concat(
                [
                    dc * g * i * (1 - i),
                    dc * c_prev_all[t] * f * (1 - f),
                    dc * i * (1 - g * g),
                    dh * tanh_c * o * (1 - o),
                ],
                axis=1,
            )
            return k + 1, tf.matmul(dz, kernel_t), dc * f, dzs.write(t, dz)

        dh0, dc0, dzs = _run(tf, n, body, (dh_last, dc_last, _array(tf, gs[0], n)))
        dz_all = dzs.stack()
        return dz_all, dh0, dc0, _weight_grad(tf, h0, hs, dz_all)

    return forward, backward


def _gru_loops(tf):
    """GRU (reset_after, tanh, sigmoid gates z, r, h): forward(xw, h0, kernel, rbias) -> (hs, inners), and
    backward(dhs, dh_last, xw, hs, inners, h0, kernel) -> (dxw, dh0, dkernel, drbias), inners being the saved
    recurrent products `h @ kernel + rbias`."""

    def gates(x, inner):
        units = tf.shape(inner)[1] // 3
        zr = tf.sigmoid(x[:, : 2 * units] + inner[:, : 2 * units])
        z, r = zr[:, :units], zr[:, units:]
        r_h = inner[:, 2 * units :]
        return z, r, tf.tanh(x[:, 2 * units :] + r * r_h), r_h

    def forward(xw, h0, kernel, rbias):
        n = tf.shape(xw)[0]

        def body(t, h, hs, inners):
            inner = tf.matmul(h, kernel) + rbias
            z, _, hh, _ = gates(xw[t], inner)
            h = z * h + (1 - z) * hh
            # only the recurrent product is saved (no concat); the backward loop recomputes the gates
            return t + 1, h, hs.write(t, h), inners.write(t, inner)

        _, hs, inners = _run(tf, n, body, (h0, _array(tf, h0, n), _array(tf, xw[0], n)))
        return hs.stack(), inners.stack()

    def backward(dhs, dh_last, xw, hs, inners, h0, kernel):
        n = tf.shape(hs)[0]
        kernel_t = tf.transpose(kernel)
        h_prev_all = _previous(tf, h0, hs)

        def body(k, dh_next, d_inner, d_cand):
            t = n - 1 - k
            dh = dhs[t] + dh_next
            z, r, hh, r_h = gates(xw[t], inners[t])
            dz = dh * (h_prev_all[t] - hh) * z * (1 - z)
            da_h = dh * (1 - z) * (1 - hh * hh)  # gradient at the candidate's pre-activation
            dr = da_h * r_h * r * (1 - r)
            d_rec = tf.concat([dz, dr, da_h * r], axis=1)  # gradient of h @ U + b_rec
            dh_prev = dh * z + tf.matmul(d_rec, kernel_t)
            return k + 1, dh_prev, d_inner.write(t, d_rec), d_cand.write(t, da_h)

        dh0, d_inner, d_cand = _run(tf, n, body, (dh_last, _array(tf, xw[0], n), _array(tf, h0, n)))
        d_rec_all = d_inner.stack()
        units = tf.shape(h0)[-1]
        dxw = tf.concat([d_rec_all[:, :, : 2 * units], d_cand.stack()], axis=2)
        d_rbias = tf.reduce_sum(d_rec_all, axis=[0, 1])
        return dxw, dh0, _weight_grad(tf, h0, hs, d_rec_all), d_rbias

    return forward, backward


def _rnn_loops(tf, relu: bool):
    """Vanilla RNN (tanh, or relu): forward(xw, h0, kernel) -> (hs,), and backward(dhs, dh_last, hs, h0, kernel)
    -> (dxw, dh0, dkernel)."""

    def forward(xw, h0, kernel):
        n = tf.shape(xw)[0]

        def body(t, h, hs):
            pre = xw[t] + tf.matmul(h, kernel)
            h = tf.nn.relu(pre) if relu else tf.tanh(pre)
            return t + 1, h, hs.write(t, h)

        _, hs = _run(tf, n, body, (h0, _array(tf, h0, n)))
        return (hs.stack(),)

    def backward(dhs, dh_last, hs, h0, kernel):
        n = tf.shape(hs)[0]
        kernel_t = tf.transpose(kernel)

        def body(k, dh_next, dpres):
            t = n - 1 - k
            h = hs[t]
            dh = dhs[t] + dh_next
            dpre = dh * tf.cast(h > 0, h.dtype) if relu else dh * (1 - h * h)
            return k + 1, tf.matmul(dpre, kernel_t), dpres.write(t, dpre)

        dh0, dpres = _run(tf, n, body, (dh_last, _array(tf, h0, n)))
        dpre_all = dpres.stack()
        return dpre_all, dh0, _weight_grad(tf, h0, hs, dpre_all)

    return forward, backward
