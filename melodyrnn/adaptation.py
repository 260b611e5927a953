"""Adapting a melody model to one melody before infill: a few gradient steps on the bars it keeps.

A model trained on one style predicts a melody of another style poorly, bars before and after a gap alike. The
kept bars say a lot about the melody's own style (its scale, rhythms, motifs), so `infill(..., adapt=K)` first
fine-tunes a copy of the model for K steps on them — the bars before the gap and the bars after it, each as its
own sequence — and then fills and scores the gap with that copy (dynamic evaluation, in language-model terms).
The copy's distribution over the gap is a function of both sides: the suffix reaches it through the update as well
as through the resampling weights.

Start at `adapted`, which `GapFilling.infill`, `score_infill` and `vary` call. The copy ("twin") is built once per
sampler with the same config; each call copies the sampler's weights into it, so the sampler's own model is never
changed, and a lock keeps concurrent calls (the app's sessions) from sharing a half-adapted twin.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from melodyrnn.conditioning import NUM_FIELDS, melody_conditions
from melodyrnn.encoding import Melody, melody_to_tokens
from melodyrnn.errors import MelodyRNNError

__all__ = ["ADAPT_LEARNING_RATE", "MAX_ADAPT_STEPS", "adapted", "checked_adapt"]

#: Adam's step size for adaptation, chosen on other melodies than benchmarks/bench_infill_adapt.py reports (1e-3
#: made the gaps less likely within ten steps: the copy overfits the kept bars).
ADAPT_LEARNING_RATE = 1e-4
#: The most adaptation steps one call may ask for.
MAX_ADAPT_STEPS = 1_000
_QUANTUM = 128  # rows are padded to a multiple of this, so a few traced shapes serve every melody


def checked_adapt(adapt) -> int:
    """`adapt` as an int in `[0, MAX_ADAPT_STEPS]`, or a clear error."""
    if isinstance(adapt, bool) or not isinstance(adapt, (int, np.integer)) or not 0 <= adapt <= MAX_ADAPT_STEPS:
        raise MelodyRNNError(f"`adapt` must be an integer in [0, {MAX_ADAPT_STEPS}] (gradient steps), got {adapt!r}")
    return int(adapt)


class _Twin:
    """A second `Sampler` on a copy of the sampler's network, its optimizer and compiled update."""

    def __init__(self, sampler: Any):
        import keras

        from melodyrnn.model import build_model

        model = build_model(sampler.model.config)
        model.set_weights(sampler.model.get_weights())
        self.sampler = type(sampler)(replace(sampler.bundle, model=model), jit_compile=sampler.jit_compile)
        self.model = model
        self.lock = threading.Lock()
        self.optimizer = keras.optimizers.Adam(ADAPT_LEARNING_RATE, clipnorm=1.0)
        self.optimizer.build(model.trainable_weights)
        self._update: Any = None

    def reset(self, sampler: Any) -> None:
        """The sampler's weights, and a fresh optimizer state (Adam's moments and step count at zero)."""
        for mine, theirs in zip(self.model.weights, sampler.model.weights):
            mine.assign(theirs)
        for variable in self.optimizer.variables:
            if "learning_rate" not in variable.name:
                variable.assign(np.zeros(variable.shape, variable.dtype))

    def update(self, feed: dict, targets: np.ndarray, mask: np.ndarray) -> float:
        """One Adam step on the masked mean NLL of `targets`; dropout off, so a seeded call repeats exactly."""
        if self._update is None:
            import tensorflow as tf

            model, optimizer = self.model, self.optimizer

            @tf.function(reduce_retracing=True)
            def update(feed, targets, mask):
                with tf.GradientTape() as tape:
                    logits = tf.cast(model(feed if len(feed) > 1 else feed["ids"], training=False), tf.float32)
                    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
                    loss = tf.reduce_sum(nll * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
                gradients = tape.gradient(loss, model.trainable_weights)
                optimizer.apply_gradients(zip(gradients, model.trainable_weights))
                return loss

            self._update = update
        return float(self._update(feed, targets, mask))


def _rows(sampler: Any, melody, tokens: np.ndarray, conditions: np.ndarray, start: int, end: int):
    """The kept bars as training rows: `(feed, targets, mask)`, or None when fewer than two steps are kept."""
    parts = [(a, b) for a, b in ((0, start), (end, len(tokens))) if b - a >= 2]
    if not parts:
        return None
    config = sampler.model.config
    padded = -(-max(b - a - 1 for a, b in parts) // _QUANTUM) * _QUANTUM
    # Two rows always (an empty one weighs nothing), so a gap at either end traces the same shapes.
    ids = np.zeros((2, padded + 1), np.int32)
    cond = np.zeros((2, padded, NUM_FIELDS), np.int32)
    mask = np.zeros((2, padded), np.float32)
    for r, (a, b) in enumerate(parts):
        ids[r, : b - a] = tokens[a:b]
        cond[r, : b - a - 1] = conditions[a + 1 : b]  # those of the step each input predicts
        mask[r, : b - a - 1] = 1.0
    feed: dict = {"ids": ids[:, :-1]}
    if getattr(config, "lookback", False):
        feed["bar"] = np.full(2, max(1, round(melody.steps_per_bar)), np.int32)
    if getattr(config, "conditioned", False):
        feed["conditions"] = cond
    return feed, ids[:, 1:], mask


@contextmanager
def adapted(sampler: Any, melody: Melody, start: int, end: int, steps: int) -> Iterator[Any]:
    """A context manager yielding a sampler whose model took `steps` Adam steps on `melody`'s steps outside
    `[start, end)`; the sampler's own model is left as it was. The copy is the caller's until the block ends.

    Args:
        sampler: a `melodyrnn.sampling.Sampler` (it needs the `bundle` a copy is built from).
        melody: the `Melody`; `start`, `end`: the gap's steps.
        steps: gradient steps (0 yields `sampler` itself).

    Raises:
        MelodyRNNError: `sampler` has no bundle to copy.
    """
    if steps == 0:
        yield sampler
        return
    if getattr(sampler, "bundle", None) is None:
        raise MelodyRNNError(f"`adapt` needs a melody model's Sampler, got {type(sampler).__name__}")
    with _TWINS_LOCK:
        twin = sampler.__dict__.get("_adaptation_twin")
        if twin is None:
            twin = sampler.__dict__["_adaptation_twin"] = _Twin(sampler)
    with twin.lock:
        twin.reset(sampler)
        tokens = melody_to_tokens(melody, sampler.encoding)
        rows = _rows(sampler, melody, tokens, melody_conditions(melody), start, end)
        if rows is not None:
            for _ in range(steps):
                twin.update(*rows)
        yield twin.sampler


_TWINS_LOCK = threading.Lock()
