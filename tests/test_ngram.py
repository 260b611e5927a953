"""The Witten-Bell n-gram baseline: normalisation, the interpolation formula by hand, and scoring contract."""

import numpy as np
import pytest

from melodyrnn import MelodyRNNError
from melodyrnn.evaluation import summarize
from melodyrnn.ngram import NGramModel


def test_distributions_sum_to_one_and_are_positive():
    rng = np.random.default_rng(0)
    data = [rng.integers(0, 10, 50) for _ in range(5)]
    m = NGramModel(order=4, vocab_size=10).fit(data)
    for ctx in ([], [1], [3, 4], [9, 9, 9, 9, 9], [0, 1, 2]):
        p = m.distribution(ctx)
        assert p.shape == (10,) and p.min() > 0 and p.sum() == pytest.approx(1.0)


def test_witten_bell_formula_by_hand():
    # ids: 0 1 0 2  (vocab 3). Unigram counts: 0:2, 1:1, 2:1 (total 4, 3 types).
    m = NGramModel(order=2, vocab_size=3).fit([[0, 1, 0, 2]])
    uni = (np.array([2, 1, 1]) + 3 * np.full(3, 1 / 3)) / (4 + 3)
    np.testing.assert_allclose(m.distribution([]), uni)
    # After 0: next ids 1 and 2 once each (total 2, 2 types).
    np.testing.assert_allclose(m.distribution([0]), (np.array([0, 1, 1]) + 2 * uni) / (2 + 2))
    # Context 2 was never followed by anything: back off to the unigram.
    np.testing.assert_allclose(m.distribution([2]), uni)


def test_scores_match_the_evaluation_contract():
    tune = np.array([2, 0, 0, 0, 4, 0, 1, 0] * 8)
    m = NGramModel(order=6, vocab_size=8).fit([tune] * 3)
    ((ll, pred),) = m.score_token_lists([tune])
    assert ll.shape == pred.shape == (tune.size - 1,)
    metrics = summarize([tune], [(ll, pred)])
    assert metrics["accuracy"] > 0.9 and metrics["nll_per_step"] < 0.3
    # A higher order can only help on a tune it has memorised.
    low = summarize([tune], NGramModel(order=1, vocab_size=8).fit([tune] * 3).score_token_lists([tune]))
    assert low["nll_per_step"] > metrics["nll_per_step"]


def test_bad_arguments():
    with pytest.raises(MelodyRNNError, match="`order` must be a positive integer, got 0"):
        NGramModel(order=0)
    with pytest.raises(MelodyRNNError, match="token ids"):
        NGramModel(vocab_size=4).fit([[0, 5]])
    with pytest.raises(MelodyRNNError, match="not been fitted"):
        NGramModel().score_token_lists([[0, 1]])
