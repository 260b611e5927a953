"""Tests for melodyrnn.infill_backward: the encoder is the project's Bidirectional LSTM, the zero-initialised context
makes the warm start the melody model, the exact score equals a step-by-step reference, padding is masked, the
bundle loads in safe mode under its own task, and a tiny real training run of the backward layout."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from melodyrnn.conditioning import NUM_FIELDS, step_conditions
from melodyrnn.dataset import PreparedData
from melodyrnn.encoding import NUM_SPECIAL, EncodingConfig, Melody, melody_to_tokens
from melodyrnn.errors import BundleError, InfillError, MelodyRNNError
from melodyrnn.gaps import bar_lines
from melodyrnn.infill_backward import (
    BackwardInfill,
    BackwardInfillNetwork,
    backward_inputs,
    backward_warm_start,
    load_backward,
    save_backward,
)
from melodyrnn.infill_model import AFTER_GAP, BEFORE_GAP, GAP_COLUMN, load_infill
from melodyrnn.infill_training import InfillTrainConfig, backward_example, train_infill
from melodyrnn.layers import LSTM, Bidirectional
from melodyrnn.model import MelodyModel, ModelConfig, build_model

ENC = EncodingConfig()
CONFIG = ModelConfig(units=12, num_layers=2, embedding_dim=8, attention_heads=2, attention_window=6, dropout=0.0,
                     condition_meter=True, condition_chords=True)  # fmt: skip


@pytest.fixture(scope="module")
def base():
    keras.utils.set_random_seed(5)
    return build_model(CONFIG)


@pytest.fixture(scope="module")
def moved(base):
    """A network moved off its warm start, so the suffix's context and the gap column matter."""
    model = backward_warm_start(base, encoder_units=6)
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(np.asarray(w.numpy()) + rng.normal(0, 0.3, tuple(w.shape)).astype("float32"))
    return model


@pytest.fixture(scope="module")
def path(moved, tmp_path_factory):
    return save_backward(tmp_path_factory.mktemp("backward") / "b.melodyrnn", moved, ENC, {"note": "test"})


def tune(bars=6, seed=0) -> Melody:
    rng = np.random.default_rng(seed)
    notes = [(int(rng.integers(60, 72)), 4 * k, 4 * k + 3) for k in range(4 * bars)]
    return Melody.from_notes(notes, num_steps=16 * bars, chords=((0, "C:maj"), (40, "G:7")), source=f"t{seed}.mid")


def arrays(melody: Melody, start_bar: int, end_bar: int):
    tokens = melody_to_tokens(melody, ENC)
    steps = step_conditions(len(melody), melody.steps_per_quarter, melody.time_signatures, melody.chords)
    return backward_inputs(tokens, steps, bar_lines(melody), start_bar, end_bar)


def call(model, sequence, rows, suffix, suffix_rows, length=None):
    inputs = {"ids": sequence[None, :-1], "conditions": rows[None, 1:], "suffix": suffix[None],
              "suffix_conditions": suffix_rows[None], "suffix_length": np.array([len(suffix) if length is None
                                                                                  else length])}  # fmt: skip
    return np.asarray(model({k: np.asarray(v, np.int32) for k, v in inputs.items()}))[0]


def test_the_inputs_split_prefix_and_gap_from_the_suffix():
    melody = tune()
    sequence, rows, suffix, suffix_rows, gap_offset = arrays(melody, 2, 4)
    tokens = melody_to_tokens(melody, ENC)
    assert np.array_equal(sequence, tokens[:64]) and np.array_equal(suffix, tokens[64:]) and gap_offset == 32
    assert rows.shape == (64, NUM_FIELDS + 1) and suffix_rows.shape == (32, NUM_FIELDS)
    assert np.all(rows[:32, GAP_COLUMN] == BEFORE_GAP) and np.array_equal(
        rows[32:, GAP_COLUMN], 1 + np.arange(32, 0, -1)
    )
    steps = step_conditions(96, 4, ((0, 4, 4),), melody.chords)
    _, _, targets, weights, _, moved_rows = backward_example(tokens, bar_lines(melody), 2, 4, steps, 0.5, shift=2)
    assert np.all(weights[:31] == 0.5) and np.all(weights[31:] == 1) and len(targets) == 63
    notes = sequence[1:] >= NUM_SPECIAL
    assert np.array_equal(targets[notes], sequence[1:][notes] + 2) and moved_rows.shape == (32, NUM_FIELDS)


def test_the_encoder_is_the_projects_bidirectional_lstm(base):
    model = backward_warm_start(base, encoder_units=6)
    assert isinstance(model, BackwardInfillNetwork) and isinstance(model.encoder, Bidirectional)
    assert isinstance(model.encoder.forward_layer, LSTM) and isinstance(model.encoder.backward_layer, LSTM)
    assert model.encoder.backward_layer.go_backwards and model.context.units == CONFIG.embedding_dim


def test_the_warm_start_predicts_exactly_what_the_melody_model_did(base):
    model = backward_warm_start(base, encoder_units=6)
    sequence, rows, suffix, suffix_rows, _ = arrays(tune(), 2, 4)
    new = call(model, sequence, rows, suffix, suffix_rows)
    old = np.asarray(base({"ids": sequence[None, :-1], "conditions": rows[None, 1:, :NUM_FIELDS]}))[0]
    assert np.abs(np.asarray(model.encode(suffix[None], suffix_rows[None], np.array([32])))).max() > 0
    np.testing.assert_allclose(new, old, atol=1e-6)  # the projection and the gap column start at zero


def reference_log_probs(model: BackwardInfillNetwork, sequence, rows, suffix, suffix_rows) -> np.ndarray:
    """Step by step: the backward LSTM run by hand from the suffix's last step, then the decoder one step at a time."""
    x = np.asarray(ops.concatenate([model.embedding(suffix), model.conditions(suffix_rows)], axis=-1))
    forward, backward = model.encoder.forward_layer, model.encoder.backward_layer
    state = backward.get_initial_state(1)
    for t in reversed(range(len(suffix))):
        out_b, state = backward.step(x[None, t], state)
    out_f, _ = forward.step(x[None, 0], forward.get_initial_state(1))
    context = model.context(ops.concatenate([out_f, out_b], axis=-1))
    state = MelodyModel.initial_state(model, 1)
    out = []
    for i in range(len(sequence) - 1):
        row = rows[None, i + 1]
        h = model.embedding(sequence[i : i + 1]) + model.gap(row[:, GAP_COLUMN])
        if row[0, GAP_COLUMN] > AFTER_GAP:
            h = h + context
        h = ops.concatenate([h, model.conditions(row[:, :NUM_FIELDS])], axis=-1)
        for k, rnn in enumerate(model.recurrent):
            outputs, state["rnn"][k] = rnn.step(h, state["rnn"][k])
            h = model._after_recurrent(k, h, outputs, training=False)
            if k == 0:
                h, state["attention"] = model.attention.step(h, state["attention"])
        out.append(np.asarray(ops.log_softmax(model.logits(h), axis=-1))[0])
    return np.array(out)


@pytest.mark.parametrize("gap", [(2, 4), (5, 6), (1, 2)])
def test_the_score_is_exact_and_equals_a_step_by_step_reference(path, gap):
    scorer = BackwardInfill(path)
    melody = tune()
    score = scorer.score_infill(melody, *gap)
    sequence, rows, suffix, suffix_rows, gap_offset = arrays(melody, *gap)
    assert len(score.per_step) == 16 * (gap[1] - gap[0]) and score.standard_error == 0
    if not len(suffix):  # the last bar: a zero context, as the network gives one masked step
        suffix, suffix_rows = np.zeros(0, np.int32), np.zeros((0, NUM_FIELDS), np.int32)
        log_probs = call(scorer.model, sequence, rows, np.zeros(1, np.int32), np.zeros((1, NUM_FIELDS), np.int32), 0)
        log_probs = np.asarray(ops.log_softmax(log_probs, axis=-1))
    else:
        log_probs = reference_log_probs(scorer.model, sequence, rows, suffix, suffix_rows)
    expected = log_probs[np.arange(gap_offset - 1, len(sequence) - 1), sequence[gap_offset:]]
    np.testing.assert_allclose(score.per_step, expected, atol=2e-5)
    assert abs(score.total - expected.sum()) < 1e-3


def test_padding_after_the_suffix_is_masked_and_the_suffix_matters(moved):
    sequence, rows, suffix, suffix_rows, _ = arrays(tune(), 2, 4)
    plain = call(moved, sequence, rows, suffix, suffix_rows)
    padded = call(moved, sequence, rows, np.concatenate([suffix, np.full(9, 70)]),
                  np.concatenate([suffix_rows, suffix_rows[:9]]), length=len(suffix))  # fmt: skip
    np.testing.assert_allclose(padded, plain, atol=1e-5)
    other = call(moved, sequence, rows, suffix[::-1].copy(), suffix_rows)
    assert np.abs(other[31:] - plain[31:]).max() > 1e-3 and np.abs(other[:31] - plain[:31]).max() < 1e-5


def test_the_bundle_loads_in_safe_mode_under_its_own_task(path, moved):
    model, encoding, metadata = load_backward(path)
    assert isinstance(model, BackwardInfillNetwork) and encoding == ENC and metadata["note"] == "test"
    sequence, rows, suffix, suffix_rows, _ = arrays(tune(), 2, 4)
    np.testing.assert_array_equal(call(model, sequence, rows, suffix, suffix_rows),
                                  call(moved, sequence, rows, suffix, suffix_rows))  # fmt: skip
    with pytest.raises(BundleError, match="'infill_backward' model, not a 'infill' model"):
        load_infill(path)


def test_bad_requests_and_models_are_refused(path, base):
    with pytest.raises(InfillError, match="at least one step before the gap"):
        BackwardInfill(path).score_infill(tune(), 0, 2)
    with pytest.raises(MelodyRNNError, match="scores gaps only"):
        load_backward(path)[0].step(np.zeros(1, np.int32), {})
    with pytest.raises(MelodyRNNError, match="without lookback"):
        backward_warm_start(build_model(ModelConfig(units=8, embedding_dim=4, attention=False, lookback=True)))
    with pytest.raises(MelodyRNNError, match="`layout`"):
        InfillTrainConfig(layout="sideways")


def test_a_tiny_backward_training_run_writes_a_loadable_bundle(base, tmp_path):
    data = PreparedData.from_melodies([tune(8, seed) for seed in range(10)], validation_fraction=0.3)
    config = InfillTrainConfig(max_updates=1, batch_size=2, validate_every=1, validation_gaps=2, warmup_updates=1,
                               layout="backward")  # fmt: skip
    result = train_infill(data, tmp_path / "run", base, config, log=lambda line: None)
    assert result["updates"] == 1 and [row["update"] for row in result["history"]] == [0, 1]
    scorer = BackwardInfill(result["best_path"])
    assert scorer.metadata["config"]["layout"] == "backward"
    assert np.isfinite(scorer.score_infill(tune(8, 99), 3, 5).total)
