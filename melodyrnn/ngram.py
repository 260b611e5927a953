"""An n-gram language model over event ids with Witten-Bell interpolation: the baseline a network must beat.

Start at `NGramModel(order=6).fit(token_lists)`, then `score_token_lists(token_lists)`, whose output has the
same contract as `melodyrnn.evaluation.score_token_lists`, so `evaluation.summarize` reports both models
with the same numbers (whole melodies, each step predicted from the steps before it in the same melody).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from melodyrnn.errors import MelodyRNNError


class NGramModel:
    """Interpolated Witten-Bell n-gram model over ids ``0..vocab_size-1``.

    ``P(w | h) = (c(h, w) + T(h) * P(w | h')) / (c(h) + T(h))`` where ``T(h)`` is the number of distinct ids
    seen after context ``h`` and ``h'`` drops the oldest id; a context never seen falls back to ``P(w | h')``.
    The recursion ends in the uniform distribution, so every id has a non-zero probability. Contexts never
    reach back past a melody's first step.

    Args:
        order: n, the context length plus one (6: five steps of context).
        vocab_size: number of ids.
    """

    def __init__(self, order: int = 6, vocab_size: int = 130):
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise MelodyRNNError(f"`order` must be a positive integer, got {order!r}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
            raise MelodyRNNError(f"`vocab_size` must be an integer >= 2, got {vocab_size!r}")
        self.order = order
        self.vocab_size = vocab_size
        # counts[context] is a float array (vocab,) of next-id counts; context is a tuple of up to order-1 ids.
        self._counts: dict[tuple, np.ndarray] = {}

    def fit(self, token_lists: Sequence[np.ndarray]) -> NGramModel:
        """Counts every n-gram (n = 1..order) in the melodies; returns self."""
        counts: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(self.vocab_size, np.float64))
        for tokens in token_lists:
            t = np.asarray(tokens, np.int64).reshape(-1)
            if t.size and (t.min() < 0 or t.max() >= self.vocab_size):
                raise MelodyRNNError(f"token ids must be in [0, {self.vocab_size}), got [{t.min()}, {t.max()}]")
            ids = t.tolist()
            for i, w in enumerate(ids):
                for n in range(min(self.order - 1, i) + 1):
                    counts[tuple(ids[i - n : i])][w] += 1
        self._counts = dict(counts)
        return self

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """``P(· | context)``, float64 array (vocab,), summing to 1; uses the last order-1 ids of `context`."""
        context = tuple(int(c) for c in context)[-(self.order - 1) :] if self.order > 1 else ()
        p = np.full(self.vocab_size, 1.0 / self.vocab_size)
        for n in range(len(context) + 1):  # shortest context first, interpolating upwards
            h = context[len(context) - n :]
            c = self._counts.get(h)
            if c is None:
                break  # a longer context containing an unseen one is unseen too
            total, types = c.sum(), np.count_nonzero(c)
            p = (c + types * p) / (total + types)
        return p

    def score_token_lists(self, token_lists: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per melody: float64 (steps-1,) log-likelihoods of ids 1.. and int32 (steps-1,) most likely ids."""
        if not self._counts:
            raise MelodyRNNError("the n-gram model has not been fitted; call fit() first")
        out = []
        for tokens in token_lists:
            ids = np.asarray(tokens, np.int64).reshape(-1).tolist()
            ll = np.zeros(max(len(ids) - 1, 0))
            pred = np.zeros(max(len(ids) - 1, 0), np.int32)
            for i in range(1, len(ids)):
                p = self.distribution(ids[max(0, i - self.order + 1) : i])
                ll[i - 1] = np.log(p[ids[i]])
                pred[i - 1] = int(np.argmax(p))
            out.append((ll, pred))
        return out
