"""The decoding loops' pieces on hand-made logits: the repeat counter, masks, repetition penalty and cap,
temperature/top-k/top-p, and the seeded Gumbel draw against softmax. The loops themselves are checked against a
slow reference in test_sampling.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from melodyrnn.decoding import NO_CAP, Controls, _update_runs
from melodyrnn.encoding import NO_EVENT_ID, NOTE_OFF_ID, NUM_SPECIAL

VOCAB = 6


def _controls(**values) -> dict:
    c = {
        "allowed": np.zeros(VOCAB, np.float32),
        "log_penalty": 0.0,
        "max_repeats": NO_CAP,
        "temperature": 1.0,
        "top_k": 0,
        "top_p": 1.0,
        "seed": 3,
    }
    c.update(values)
    return {k: tf.constant(v, tf.float32 if isinstance(v, (float, np.ndarray)) else tf.int32) for k, v in c.items()}


def test_update_runs_counts_a_pitch_struck_again_and_ignores_holds_and_offs():
    note, other = NUM_SPECIAL + 3, NUM_SPECIAL + 4
    last_id = tf.constant([-1, note, note, note, note])
    run = tf.constant([0, 1, 2, 2, 2])
    token = tf.constant([note, note, other, NO_EVENT_ID, NOTE_OFF_ID])
    new_last, new_run = _update_runs(last_id, run, token)
    assert new_last.numpy().tolist() == [note, note, other, note, note]
    assert new_run.numpy().tolist() == [1, 2, 1, 2, 2]


def test_constrain_masks_penalizes_and_caps_the_last_pitch():
    controls = Controls(VOCAB, greedy=False, filtered=False)
    logits = tf.zeros([3, VOCAB])
    allowed = np.zeros(VOCAB, np.float32)
    allowed[5] = -np.inf
    c = _controls(allowed=allowed, log_penalty=math.log(2.0), max_repeats=2)
    out = controls.constrain(logits, tf.constant([-1, 3, 4]), tf.constant([0, 2, 3]), c).numpy()
    assert np.isneginf(out[:, 5]).all()  # masked everywhere
    np.testing.assert_allclose(out[0, :5], 0.0)  # no last note: nothing penalized
    np.testing.assert_allclose(out[1, 3], -2 * math.log(2.0), rtol=1e-6)  # struck twice: divided by 2 ** 2
    assert np.isneginf(out[2, 4])  # struck 3 times > max_repeats=2: forbidden
    np.testing.assert_allclose(np.delete(out[1], [3, 5]), 0.0)


@pytest.mark.parametrize(
    "top_k, top_p, kept",
    [
        (0, 1.0, [0, 1, 2, 3, 4, 5]),
        (2, 1.0, [0, 1]),
        (0, 0.5, [0]),  # p(0) = 0.5 reaches top_p alone
        (0, 0.6, [0, 1]),
        (3, 0.99, [0, 1, 2]),  # top-p over the top-k survivors, renormalized
        (1, 0.01, [0]),  # the most likely id always stays
    ],
)
def test_filter_keeps_the_top_k_then_the_nucleus(top_k, top_p, kept):
    probs = np.array([0.5, 0.2, 0.15, 0.1, 0.04, 0.01], np.float32)
    logits = tf.constant(np.log(probs)[None])
    out = Controls(VOCAB, greedy=False, filtered=True).filter(logits, _controls(top_k=top_k, top_p=top_p))
    assert np.flatnonzero(np.isfinite(out.numpy()[0])).tolist() == kept


def test_filter_divides_by_the_temperature():
    logits = tf.constant([[2.0, -1.0, 0.5, 0.0, 1.0, 3.0]])
    out = Controls(VOCAB, greedy=False, filtered=False).filter(logits, _controls(temperature=0.5))
    np.testing.assert_allclose(out.numpy(), logits.numpy() / 0.5)


def test_choose_is_the_argmax_when_greedy_and_a_seeded_softmax_draw_otherwise():
    probs = np.array([0.05, 0.1, 0.4, 0.25, 0.15, 0.05], np.float32)
    logits = tf.constant(np.tile(np.log(probs), (20000, 1)))
    greedy = Controls(VOCAB, greedy=True, filtered=False).choose(logits, _controls(), tf.constant(0))
    assert set(greedy.numpy().tolist()) == {2}
    sampling = Controls(VOCAB, greedy=False, filtered=False)
    drawn = sampling.choose(logits, _controls(), tf.constant(5)).numpy()
    np.testing.assert_allclose(np.bincount(drawn, minlength=VOCAB) / drawn.size, probs, atol=0.012)
    assert (sampling.choose(logits, _controls(), tf.constant(5)).numpy() == drawn).all()  # same seed and step
    assert (sampling.choose(logits, _controls(), tf.constant(6)).numpy() != drawn).any()  # another step
