"""What a training run is measured against: the bundled default model and a 6-gram, on the run's validation melodies.

Start at `score_baselines` (which `melodyrnn.training.train` runs once, when a run starts); `format_baselines` is
the line `TrainResult.summary()` prints under the run's own validation NLL, so a person sees whether training
beat what they already had (the bundled model) and what counting gives for free (the n-gram).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from melodyrnn.bundle import load
from melodyrnn.encoding import EncodingConfig
from melodyrnn.errors import MelodyRNNError
from melodyrnn.evaluation import score_token_lists, summarize
from melodyrnn.ngram import NGramModel

__all__ = ["NGRAM_ORDER", "score_baselines", "format_baselines"]

#: The n-gram's order: five steps of context, as in benchmarks/compare_models.py, which sets networks against it.
NGRAM_ORDER = 6
_BUNDLED = "bundled_default"
_NGRAM = f"ngram_{NGRAM_ORDER}"


def _bundled_default_nll(val_tokens: Sequence[np.ndarray], val_bars: Sequence[int], encoding: EncodingConfig):
    # (NLL, None), or (None, why the bundled model has no comparable number for this data).
    try:
        bundle = load(compile=False)
    except MelodyRNNError as err:
        return None, f"not available ({err})"
    if bundle.encoding != encoding:
        ours, theirs = bundle.encoding.to_dict(), encoding.to_dict()
        differ = ", ".join(f"{k} {ours[k]} against the data's {theirs[k]}" for k in ours if ours[k] != theirs[k])
        return None, f"not comparable: it was trained on another encoding ({differ})"
    try:
        return summarize(val_tokens, score_token_lists(bundle.model, val_tokens, steps_per_bar=val_bars))[
            "nll_per_step"
        ], None
    except MelodyRNNError as err:  # a bar the bundled model cannot take, should it ever have lookback
        return None, f"not comparable: {err}"


def score_baselines(
    train_tokens: Sequence[np.ndarray],
    val_tokens: Sequence[np.ndarray],
    val_bars: Sequence[int],
    encoding: EncodingConfig,
) -> dict:
    """The validation NLL per step (nats, whole melodies) of the untouched bundled default model and of a 6-gram.

    The bundled model is scored only when it reads the same encoding as the data (its ids would mean other
    events otherwise); the 6-gram is fit on `train_tokens`. Seconds on a few hundred melodies.

    Args:
        train_tokens: the training split's melodies, int token ids `(steps,)` each.
        val_tokens: the validation melodies the run itself is scored on.
        val_bars: their steps per bar.
        encoding: the data's encoding.

    Returns:
        `{"bundled_default": NLL or None, "ngram_6": NLL}`, plus `"bundled_default_note"` saying why when the
        bundled model has no number (another encoding, or no default model in this install).
    """
    nll, note = _bundled_default_nll(val_tokens, val_bars, encoding)
    baselines: dict = {_BUNDLED: nll}
    if note is not None:
        baselines[f"{_BUNDLED}_note"] = note
    ngram = NGramModel(order=NGRAM_ORDER, vocab_size=encoding.vocab_size).fit(train_tokens)
    baselines[_NGRAM] = summarize(val_tokens, ngram.score_token_lists(val_tokens))["nll_per_step"]
    return baselines


def format_baselines(baselines: dict | None) -> str:
    """One line, `baselines (val loss on the same melodies): bundled default model 1.2345, 6-gram 1.3456`, or ""
    when there are none (no validation split, or a run from before baselines were kept)."""
    if not isinstance(baselines, dict) or not baselines:
        return ""

    def number(key: str) -> str | None:
        value = baselines.get(key)
        real = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return f"{value:.4f}" if real else None

    bundled = number(_BUNDLED)
    note = baselines.get(f"{_BUNDLED}_note")
    parts = [
        f"bundled default model {bundled}" if bundled else f"bundled default model {note or 'not scored'}",
        f"{NGRAM_ORDER}-gram {number(_NGRAM) or 'not scored'}",
    ]
    return "baselines (val loss on the same melodies): " + ", ".join(parts)
