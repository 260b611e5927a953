"""Tests for melodyrnn.layers: exactness against Keras's built-ins, step == sequence, shapes, configs, saving.

The fused TensorFlow loops behind `implementation="auto"` have their own tests in test_fused_tf.py.
"""

import ast
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from melodyrnn import cells as C
from melodyrnn import layers as L
from melodyrnn.errors import MelodyRNNError

BATCH, STEPS, FEATURES, UNITS = 3, 7, 4, 5
TOL = dict(rtol=1e-5, atol=1e-5)

PAIRS = {
    "rnn": (L.SimpleRNN, keras.layers.SimpleRNN),
    "lstm": (L.LSTM, keras.layers.LSTM),
    "gru": (L.GRU, keras.layers.GRU),
}


def _inputs(seed=0, batch=BATCH, steps=STEPS, features=FEATURES):
    return np.random.default_rng(seed).normal(size=(batch, steps, features)).astype("float32")


def _mask():
    # ragged right padding, one fully valid row, and one row with a gap in the middle
    mask = np.ones((BATCH, STEPS), bool)
    mask[0, 4:] = False
    mask[2, 2:4] = False
    return mask


def _pair(kind, **kwargs):
    """Our layer and the Keras built-in with identical (random, non-trivial) weights."""
    ours_cls, keras_cls = PAIRS[kind]
    theirs = keras_cls(UNITS, bias_initializer="random_normal", **kwargs)
    theirs.build((None, STEPS, FEATURES))
    ours = ours_cls(UNITS, **kwargs)
    ours.build((None, STEPS, FEATURES))
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def _outputs_and_grads(layer, x, **call_kwargs):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = layer(x, **call_kwargs)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        # a loss that weights every output and state differently, so every gradient path is exercised
        loss = sum(tf.reduce_sum(tf.sin(3.0 * o + k)) for k, o in enumerate(outputs))
    grads = tape.gradient(loss, [x] + layer.trainable_weights)
    return [o.numpy() for o in outputs], [g.numpy() for g in grads]


def _assert_all_close(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, **TOL)


# ---------------------------------------------------------------------------------------------------------
# Exactness against the Keras built-ins


@pytest.mark.parametrize("implementation", ["auto", "generic"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_outputs_states_and_gradients_match_keras(kind, go_backwards, implementation):
    ours, theirs = _pair(kind, return_sequences=True, return_state=True, go_backwards=go_backwards)
    ours.implementation = implementation
    x = _inputs()
    out_ours, grad_ours = _outputs_and_grads(ours, x)
    out_theirs, grad_theirs = _outputs_and_grads(theirs, x)
    _assert_all_close(out_ours, out_theirs)
    _assert_all_close(grad_ours, grad_theirs)


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_masked_outputs_and_gradients_match_keras(kind, go_backwards, zero_output_for_mask):
    ours, theirs = _pair(
        kind,
        return_sequences=True,
        return_state=True,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
    )
    x, mask = _inputs(1), _mask()
    out_ours, grad_ours = _outputs_and_grads(ours, x, mask=mask)
    out_theirs, grad_theirs = _outputs_and_grads(theirs, x, mask=mask)
    _assert_all_close(out_ours, out_theirs)
    _assert_all_close(grad_ours, grad_theirs)


def test_masked_steps_keep_the_state():
    layer = L.LSTM(UNITS, return_state=True)
    x, mask = _inputs(2), _mask()
    _, h, c = layer(x, mask=mask)
    _, h_short, c_short = layer(x[:1, :4], mask=None)  # row 0 is valid for its first 4 steps only
    np.testing.assert_allclose(h[0], h_short[0], **TOL)
    np.testing.assert_allclose(c[0], c_short[0], **TOL)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_last_output_and_gradients_match_keras(kind):
    # return_sequences=False: the fused path gets no gradient for the per-step outputs
    ours, theirs = _pair(kind)
    x = _inputs(3)
    out_ours, grad_ours = _outputs_and_grads(ours, x)
    out_theirs, grad_theirs = _outputs_and_grads(theirs, x)
    assert out_ours[0].shape == (BATCH, UNITS)
    _assert_all_close(out_ours, out_theirs)
    _assert_all_close(grad_ours, grad_theirs)


@pytest.mark.parametrize("implementation", ["auto", "generic"])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_initial_state_and_its_gradient_match_keras(kind, implementation):
    ours, theirs = _pair(kind, return_sequences=True, return_state=True)
    ours.implementation = implementation
    x = tf.constant(_inputs(4))
    n_states = 2 if kind == "lstm" else 1
    rng = np.random.default_rng(5)
    states = [tf.constant(rng.normal(size=(BATCH, UNITS)).astype("float32")) for _ in range(n_states)]
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(states)
            outputs = layer(x, initial_state=states)
            loss = sum(tf.reduce_sum(tf.sin(2.0 * o + k)) for k, o in enumerate(outputs))
        results.append(([o.numpy() for o in outputs], [g.numpy() for g in tape.gradient(loss, states)]))
    _assert_all_close(results[0][0], results[1][0])
    _assert_all_close(results[0][1], results[1][1])


def test_relu_rnn_matches_keras():
    ours, theirs = _pair("rnn", activation="relu", return_sequences=True)
    x = _inputs(6)
    out_ours, grad_ours = _outputs_and_grads(ours, x)
    out_theirs, grad_theirs = _outputs_and_grads(theirs, x)
    _assert_all_close(out_ours, out_theirs)
    _assert_all_close(grad_ours, grad_theirs)


def test_gru_reset_before_matches_keras():
    ours, theirs = _pair("gru", reset_after=False, return_sequences=True, return_state=True)
    x = _inputs(7)
    out_ours, grad_ours = _outputs_and_grads(ours, x)
    out_theirs, grad_theirs = _outputs_and_grads(theirs, x)
    _assert_all_close(out_ours, out_theirs)
    _assert_all_close(grad_ours, grad_theirs)


# ---------------------------------------------------------------------------------------------------------
# The single-step call


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_step_by_step_equals_full_sequence(kind, go_backwards):
    layer = PAIRS[kind][0](UNITS, return_sequences=True, return_state=True, go_backwards=go_backwards)
    x = _inputs(9)
    sequence_outputs, *final_states = layer(x)
    states = layer.get_initial_state(BATCH)
    time_order = range(STEPS - 1, -1, -1) if go_backwards else range(STEPS)
    for i, t in enumerate(time_order):
        output, states = layer.step(x[:, t], states)
        np.testing.assert_allclose(output, sequence_outputs[:, i], rtol=1e-6, atol=1e-6)
    for state, final in zip(states, final_states):
        np.testing.assert_allclose(state, final, rtol=1e-6, atol=1e-6)


def test_step_in_a_compiled_loop_carries_the_state():
    layer = L.LSTM(UNITS, return_sequences=True)
    x = tf.constant(_inputs(10))
    expected = layer(x)

    @tf.function(jit_compile=True)
    def run(x):
        states = layer.get_initial_state(BATCH)
        outputs = tf.TensorArray(tf.float32, size=STEPS)
        for t in tf.range(STEPS):
            output, states = layer.step(x[:, t], states)
            outputs = outputs.write(t, output)
        return tf.transpose(outputs.stack(), (1, 0, 2))

    np.testing.assert_allclose(run(x), expected, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# Shapes, weights, configs, saving


@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_output_shapes(kind, return_sequences, return_state):
    layer = PAIRS[kind][0](UNITS, return_sequences=return_sequences, return_state=return_state)
    outputs = layer(_inputs())
    symbolic = layer.compute_output_shape((BATCH, STEPS, FEATURES))
    expected_output = (BATCH, STEPS, UNITS) if return_sequences else (BATCH, UNITS)
    n_states = 2 if kind == "lstm" else 1
    if return_state:
        assert [tuple(o.shape) for o in outputs] == [expected_output] + [(BATCH, UNITS)] * n_states
        assert [tuple(s) for s in symbolic] == [expected_output] + [(BATCH, UNITS)] * n_states
    else:
        assert tuple(outputs.shape) == expected_output == tuple(symbolic)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_trainable_weights_match_keras_layout(kind):
    ours, theirs = _pair(kind)
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 3
    assert [tuple(w.shape) for w in ours.trainable_weights] == [tuple(w.shape) for w in theirs.trainable_weights]
    no_bias = PAIRS[kind][0](UNITS, use_bias=False)
    no_bias.build((None, STEPS, FEATURES))
    assert len(no_bias.trainable_weights) == 2


def test_lstm_forget_gate_bias_starts_at_one():
    layer = L.LSTM(UNITS)
    layer.build((None, STEPS, FEATURES))
    bias = layer.cell.bias.numpy()
    np.testing.assert_array_equal(bias[UNITS : 2 * UNITS], 1.0)
    np.testing.assert_array_equal(np.delete(bias, np.s_[UNITS : 2 * UNITS]), 0.0)
    plain = L.LSTM(UNITS, unit_forget_bias=False)
    plain.build((None, STEPS, FEATURES))
    np.testing.assert_array_equal(plain.cell.bias.numpy(), 0.0)


NON_DEFAULT = dict(
    activation="relu",
    use_bias=False,
    kernel_initializer="he_normal",
    recurrent_initializer="glorot_normal",
    bias_initializer="ones",
    kernel_regularizer="l2",
    recurrent_regularizer="l1",
    bias_regularizer="l1l2",
    kernel_constraint="max_norm",
    recurrent_constraint="unit_norm",
    bias_constraint="non_neg",
    dropout=0.25,
    recurrent_dropout=0.5,
    seed=7,
    return_sequences=True,
    return_state=True,
    go_backwards=True,
    zero_output_for_mask=True,
    implementation="generic",
)


@pytest.mark.parametrize(
    "cls, extra",
    [
        (L.SimpleRNN, {}),
        (L.LSTM, {"recurrent_activation": "hard_sigmoid", "unit_forget_bias": False}),
        (L.GRU, {"recurrent_activation": "hard_sigmoid", "reset_after": False}),
    ],
)
def test_every_argument_round_trips_through_get_config(cls, extra):
    layer = cls(UNITS, name="custom", **NON_DEFAULT, **extra)
    config = layer.get_config()
    for key, value in {**NON_DEFAULT, **extra}.items():
        if key.endswith(("initializer", "regularizer", "constraint")):
            assert config[key] is not None, key
        elif key.endswith("activation"):
            assert config[key] == value, key
        else:
            assert config[key] == value, key
    clone = cls.from_config(config)
    assert clone.get_config() == config
    assert clone.name == "custom"


def test_rnn_with_a_cell_round_trips_through_get_config():
    layer = L.RNN(C.LSTMCell(UNITS, dropout=0.1), return_sequences=True, go_backwards=True)
    clone = L.RNN.from_config(layer.get_config())
    assert isinstance(clone.cell, C.LSTMCell)
    assert clone.get_config() == layer.get_config()
    for cell in (C.SimpleRNNCell(UNITS), C.LSTMCell(UNITS), C.GRUCell(UNITS, reset_after=False)):
        assert type(cell).from_config(cell.get_config()).get_config() == cell.get_config()


def _model(tokens=11):
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(tokens, 6, mask_zero=True)(inputs)
    x = L.LSTM(UNITS, return_sequences=True)(x)
    x = L.Bidirectional(L.GRU(UNITS, return_sequences=True), merge_mode="sum")(x)
    x = keras.layers.Bidirectional(L.SimpleRNN(UNITS, return_sequences=True))(x)
    x = L.RNN(C.GRUCell(UNITS), return_sequences=True)(x)
    return keras.Model(inputs, keras.layers.Dense(tokens)(x))


def test_saved_model_loads_in_safe_mode_with_identical_predictions(tmp_path):
    model = _model()
    tokens = np.random.default_rng(12).integers(1, 11, size=(BATCH, STEPS))
    tokens[0, 5:] = 0  # padding, masked through every layer
    expected = model.predict(tokens, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(tokens, verbose=0), expected)
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]


def test_fit_in_graph_mode_trains_and_masked_steps_carry_no_loss():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((STEPS,), dtype="int32")
    x = keras.layers.Embedding(11, 8)(inputs)
    x = L.LSTM(16, return_sequences=True)(x)
    x = L.GRU(16, return_sequences=True)(x)
    model = keras.Model(inputs, keras.layers.Dense(11)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    tokens = np.random.default_rng(13).integers(0, 11, size=(16, STEPS + 1))
    history = model.fit(tokens[:, :-1], tokens[:, 1:], epochs=8, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]

    # with mask_zero, what a padded target says cannot change the loss
    masked = _model()
    masked.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x_tok = np.random.default_rng(14).integers(1, 11, size=(4, STEPS))
    x_tok[:, 5:] = 0
    y_a = np.random.default_rng(15).integers(0, 11, size=(4, STEPS))
    y_b = y_a.copy()
    y_b[:, 5:] = (y_b[:, 5:] + 1) % 11
    assert masked.evaluate(x_tok, y_a, verbose=0) == pytest.approx(masked.evaluate(x_tok, y_b, verbose=0))
    masked.fit(x_tok, y_a, epochs=1, verbose=0)


def test_masked_layers_train_on_batches_of_different_lengths():
    """A model with an unknown time length is retraced with a relaxed shape after its first batch; the masked
    generic loop must still run then (Keras's TensorFlow `scan` cannot take several sequences of unknown length)."""
    keras.utils.set_random_seed(2)
    features, mask = keras.Input((None, 8)), keras.Input((None,), dtype="bool")
    x = L.Bidirectional(L.LSTM(4, return_sequences=True))(features, mask=mask)
    x = L.GRU(4, return_sequences=True)(x, mask=mask)
    model = keras.Model([features, mask], keras.layers.Dense(1)(x))
    model.compile("adam", "mse")
    rng = np.random.default_rng(3)
    for steps in (5, 7, 9):
        keep = np.arange(steps)[None, :] < rng.integers(2, steps + 1, size=(3, 1))
        loss = model.train_on_batch([rng.random((3, steps, 8), np.float32), keep], np.zeros((3, steps, 1), np.float32))
        assert np.isfinite(loss)
    # the padding after a sequence's end still changes nothing before it
    x_a = rng.random((2, 6, 8), np.float32)
    x_b = x_a.copy()
    x_b[:, 4:] = 9.0
    keep = np.arange(6)[None, :] < 4
    keep = np.repeat(keep, 2, axis=0)
    out_a, out_b = (np.asarray(model([x, keep]))[:, :4] for x in (x_a, x_b))
    np.testing.assert_allclose(out_a[:, :, 0], out_b[:, :, 0], atol=0)


# ---------------------------------------------------------------------------------------------------------
# Bidirectional


@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
@pytest.mark.parametrize("wrapper", [L.Bidirectional, keras.layers.Bidirectional])
def test_bidirectional_matches_keras(wrapper, merge_mode):
    theirs = keras.layers.Bidirectional(
        keras.layers.LSTM(UNITS, return_sequences=True, bias_initializer="random_normal"), merge_mode=merge_mode
    )
    ours = wrapper(L.LSTM(UNITS, return_sequences=True), merge_mode=merge_mode)
    x = _inputs(16)
    theirs(x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    for mask in (None, _mask()):
        out_ours, grad_ours = _outputs_and_grads(ours, x, mask=mask)
        out_theirs, grad_theirs = _outputs_and_grads(theirs, x, mask=mask)
        _assert_all_close(out_ours, out_theirs)
        _assert_all_close(grad_ours, grad_theirs)
    width = 2 * UNITS if merge_mode == "concat" else UNITS
    assert out_ours[0].shape == (BATCH, STEPS, width)


def test_bidirectional_round_trips_through_get_config():
    layer = L.Bidirectional(L.GRU(UNITS, return_sequences=True, return_state=True), merge_mode="sum")
    outputs = layer(_inputs())
    assert len(outputs) == 3  # merged output, forward state, backward state
    clone = L.Bidirectional.from_config(layer.get_config())
    assert isinstance(clone.forward_layer, L.GRU) and clone.backward_layer.go_backwards
    assert clone.merge_mode == "sum"


# ---------------------------------------------------------------------------------------------------------
# Dropout


def test_dropout_is_active_only_in_training():
    layer = L.LSTM(UNITS, dropout=0.5, recurrent_dropout=0.5, seed=1, return_sequences=True)
    plain = L.LSTM(UNITS, return_sequences=True)
    x = _inputs(17)
    layer(x)
    plain(x)
    plain.set_weights(layer.get_weights())
    np.testing.assert_array_equal(layer(x, training=False), plain(x, training=False))
    assert not np.allclose(layer(x, training=True), plain(x))
    outputs, grads = _outputs_and_grads(layer, x, training=True)
    assert all(np.isfinite(g).all() for g in grads)


def test_input_dropout_mask_is_the_same_at_every_step():
    # a zero-kernel-free check: with identity-like input, a dropped feature is dropped at all steps
    layer = L.SimpleRNN(
        FEATURES,
        dropout=0.5,
        seed=3,
        return_sequences=True,
        activation="linear",
        kernel_initializer="identity",
        recurrent_initializer="zeros",
        use_bias=False,
    )
    x = np.ones((BATCH, STEPS, FEATURES), "float32")
    outputs = np.asarray(layer(x, training=True))
    assert (outputs == 0).any()
    np.testing.assert_array_equal(outputs, np.broadcast_to(outputs[:, :1], outputs.shape))


# ---------------------------------------------------------------------------------------------------------
# Invalid arguments


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: L.LSTM(0), r"`units` must be a positive integer, got 0"),
        (lambda: L.GRU(-3), r"`units` must be a positive integer, got -3"),
        (lambda: L.SimpleRNN(2.5), r"`units` must be a positive integer, got 2.5"),
        (lambda: C.LSTMCell(True), r"`units` must be a positive integer, got True"),
        (lambda: L.LSTM(4, activation="nope"), r"`activation` .* got 'nope'"),
        (lambda: L.GRU(4, recurrent_activation="bogus"), r"`recurrent_activation` .* got 'bogus'"),
        (lambda: L.LSTM(4, dropout=1.0), r"`dropout` must be a float in \[0, 1\), got 1.0"),
        (lambda: L.GRU(4, dropout=-0.1), r"`dropout` must be a float in \[0, 1\), got -0.1"),
        (lambda: L.SimpleRNN(4, recurrent_dropout=1.5), r"`recurrent_dropout` .* got 1.5"),
        (lambda: L.RNN(C.LSTMCell(4), implementation="cudnn"), r"`implementation` .* got 'cudnn'"),
        (lambda: L.RNN(keras.layers.LSTMCell(4)), r"`cell` must be a melodyrnn cell"),
        (lambda: L.Bidirectional(L.LSTM(4), merge_mode="max"), r"`merge_mode` .* got 'max'"),
        (lambda: L.GRU(4, return_sequences="yes"), r"`return_sequences` must be True or False, got 'yes'"),
    ],
)
def test_invalid_arguments_raise_melodyrnn_error(make, message):
    with pytest.raises(MelodyRNNError, match=message):
        make()


def test_wrong_number_of_initial_states_raises():
    with pytest.raises(MelodyRNNError, match=r"`initial_state` must have 2 tensors, got 1"):
        L.LSTM(UNITS)(_inputs(), initial_state=[np.zeros((BATCH, UNITS), "float32")])


def _imported_modules(module) -> set[str]:
    """Every module `module`'s source imports, anywhere in it (`from a import b` counts as `a` and `a.b`)."""
    names = set()
    for node in ast.walk(ast.parse(pathlib.Path(module.__file__).read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_layers_module_is_backend_neutral_and_imports_only_cells_errors_and_fused_tf_from_melodyrnn():
    imported = _imported_modules(L)
    assert not any(name.split(".")[0] == "tensorflow" for name in imported)
    ours = {name.split(".")[1] for name in imported if name.startswith("melodyrnn.")}
    assert ours == {"cells", "errors", "fused_tf"}


def test_cells_module_is_backend_neutral_and_imports_only_errors_from_melodyrnn():
    imported = _imported_modules(C)
    assert not any(name.split(".")[0] == "tensorflow" for name in imported)
    assert {name.split(".")[1] for name in imported if name.startswith("melodyrnn.")} == {"errors"}
