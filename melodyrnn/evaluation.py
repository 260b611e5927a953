"""Next-event scoring of whole melodies: NLL per step (nats), perplexity, accuracy and event accuracy.

Start at `evaluate(bundle, data)` (what `melodyrnn evaluate` runs) or `score_melody(bundle, melody)`. Every melody
is scored whole, from its first step, the way generation runs: windowed scores flatter a model (measured: a plain
LSTM scored 0.69 nats/step on 256-step windows but 0.95 on the same tunes whole).
`score_token_lists` is the engine and `summarize` turns per-step scores into the metrics, so any other scorer
that yields per-step log-likelihoods and predictions (an n-gram baseline, say) reports the same numbers.
"""

from __future__ import annotations

import math
import os
import sys
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from melodyrnn.conditioning import NUM_FIELDS, melody_conditions, prepared_conditions, step_conditions
from melodyrnn.dataset import PreparedData, Split, prepare
from melodyrnn.encoding import NO_EVENT_ID, EncodingConfig, Melody, melody_to_tokens
from melodyrnn.errors import DataError, MelodyRNNError
from melodyrnn.theory import check_steps_per_bar

__all__ = [
    "evaluate",
    "score_melody",
    "score_token_lists",
    "summarize",
    "load_eval_melodies",
    "format_metrics",
    "DEFAULT_BATCH_TOKENS",
]

#: Padded tokens per scoring batch: big enough to keep the matrix products busy, small enough for a laptop.
DEFAULT_BATCH_TOKENS = 16384
# Padded lengths are rounded up to a multiple of this, so the compiled (XLA) recurrent loops see few shapes.
_LENGTH_QUANTUM = 128
# Cap on attention scores per batch, rows * heads * steps**2 (float32: 4 bytes each, a few copies live at once).
_MAX_ATTENTION_SCORES = 1 << 26

# The largest x whose math.exp(x) is a finite float64.
_MAX_EXP = math.log(sys.float_info.max)

_SCORERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _scorer(model, lookback: bool, conditioned: bool = False):
    """A compiled `(inputs, bars, targets, conditions) → (log_likelihood, predicted)` for `model`, traced once per
    model; `bars` (steps per bar, `(batch,)`) reaches the model only when it has lookback, `conditions`
    (`(batch, steps, NUM_FIELDS)`) only when it is conditioned."""
    fn = _SCORERS.setdefault(model, {}).get(conditioned)
    if fn is None:
        import tensorflow as tf

        spec = tf.TensorSpec([None, None], tf.int32)

        @tf.function(input_signature=[spec, tf.TensorSpec([None], tf.int32), spec, tf.TensorSpec([None] * 3, tf.int32)])
        def fn(inputs, bars, targets, conditions):
            feed = {"ids": inputs}
            if lookback:
                feed["bar"] = bars
            if conditioned:
                feed["conditions"] = conditions
            logits = tf.cast(model(feed if len(feed) > 1 else inputs, training=False), tf.float32)
            log_probs = tf.nn.log_softmax(logits, axis=-1)
            log_likelihood = tf.gather(log_probs, targets, batch_dims=2)
            return log_likelihood, tf.argmax(logits, axis=-1, output_type=tf.int32)

        _SCORERS[model][conditioned] = fn
    return fn


def _batches(lengths: np.ndarray, batch_tokens: int, heads: int) -> list[tuple[np.ndarray, int]]:
    """Groups melodies of similar length: `[(melody indices, padded input length)]`, longest first."""
    order = np.argsort(-lengths, kind="stable")
    batches, i = [], 0
    while i < len(order):
        steps = int(lengths[order[i]]) - 1  # inputs are all but the last id
        padded = max(_LENGTH_QUANTUM, -(-steps // _LENGTH_QUANTUM) * _LENGTH_QUANTUM)
        rows = max(1, batch_tokens // padded)
        if heads:
            rows = max(1, min(rows, _MAX_ATTENTION_SCORES // (heads * padded * padded)))
        batches.append((order[i : i + rows], padded))
        i += rows
    return batches


def score_token_lists(
    model,
    token_lists: Sequence[np.ndarray],
    *,
    steps_per_bar=None,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    conditions: Sequence[np.ndarray] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Scores every melody from its first step: the log-likelihood of each next id given all ids before it.

    Melodies are bucketed by length and padded (padding is never scored). A melody longer than the model's
    attention window is still scored in one call: the full-sequence call already attends over a sliding window.

    Args:
        model: a `MelodyModel` (or any Keras model mapping int32 ids `(batch, steps)` to logits
            `(batch, steps, vocab)`).
        token_lists: int token ids, one array `(steps,)` per melody; melodies shorter than 2 steps score nothing.
        steps_per_bar: for a lookback model, each melody's bar length in steps (melodies start on a bar line):
            None (`config.steps_per_bar` for all), an int, or one int per melody. Other models ignore it.
        batch_tokens: padded tokens per batch (memory vs. speed).
        conditions: for a meter- or chord-aware model, one int array `(steps, NUM_FIELDS)` per melody, the
            conditions of each of its steps (`melodyrnn.conditioning.step_conditions`); None lets the model assume
            4/4 and no chords. Other models ignore it.

    Returns:
        One `(log_likelihood, predicted)` pair per melody, in order: float64 `(steps - 1,)` natural-log
        likelihoods of ids 1..steps-1, and int32 `(steps - 1,)` the model's most likely id at each of those steps.

    Raises:
        MelodyRNNError: `batch_tokens` < 1, an id outside the model's vocabulary, or (lookback) a bar outside
            `[1, config.max_steps_per_bar]`.
    """
    if isinstance(batch_tokens, bool) or not isinstance(batch_tokens, int) or batch_tokens < 1:
        raise MelodyRNNError(f"`batch_tokens` must be a positive integer, got {batch_tokens!r}")
    token_lists = [np.asarray(t, dtype=np.int32).reshape(-1) for t in token_lists]
    config = getattr(model, "config", None)
    vocab = getattr(config, "vocab_size", None)
    for i, t in enumerate(token_lists):
        if t.size and (t.min() < 0 or (vocab is not None and t.max() >= vocab)):
            raise MelodyRNNError(f"melody {i} has token ids outside [0, {vocab}), got [{t.min()}, {t.max()}]")
    results: list = [(np.zeros(0, np.float64), np.zeros(0, np.int32)) for _ in token_lists]
    lengths = np.array([t.size for t in token_lists], dtype=np.int64)
    scorable = np.flatnonzero(lengths >= 2)
    if scorable.size == 0:
        return results
    # Any Keras model may be scored: only a MelodyModel's config says it has lookback or attention.
    lookback, heads, conditioned = False, 0, bool(getattr(config, "conditioned", False))
    bars = np.zeros(len(token_lists), np.int32)
    if config is not None:
        lookback = bool(getattr(config, "lookback", False))
        if lookback:
            per_melody = config.steps_per_bar if steps_per_bar is None else steps_per_bar
            bars = check_steps_per_bar(np.broadcast_to(per_melody, (len(token_lists),)), config.max_steps_per_bar)
        if getattr(config, "attention", False):
            heads = config.attention_heads
    conditioned = conditioned and conditions is not None
    fn = _scorer(model, lookback, conditioned)
    for rows, padded in _batches(lengths[scorable], batch_tokens, heads):
        members = scorable[rows]
        ids = np.zeros((len(members), padded + 1), np.int32)
        for r, m in enumerate(members):
            ids[r, : lengths[m]] = token_lists[m]
        cond = np.zeros((len(members), padded if conditioned else 0, NUM_FIELDS), np.int32)
        if conditioned and conditions is not None:
            for r, m in enumerate(members):  # those of the step each input predicts
                cond[r, : lengths[m] - 1] = np.asarray(conditions[m])[1 : lengths[m]]
        log_likelihood, predicted = fn(ids[:, :-1], bars[members], ids[:, 1:], cond)
        log_likelihood, predicted = np.asarray(log_likelihood, np.float64), np.asarray(predicted)
        for r, m in enumerate(members):
            n = lengths[m] - 1
            results[m] = (log_likelihood[r, :n], predicted[r, :n].astype(np.int32))
    return results


def summarize(token_lists: Sequence[np.ndarray], scores: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Next-event metrics from per-step scores (MelodyRNN's names and definitions).

    Args:
        token_lists: the melodies' ids, one int array `(steps,)` each.
        scores: from `score_token_lists` (or any scorer with the same contract).

    Returns:
        A dict: `nll_per_step` (mean negative log-likelihood, nats), `perplexity` (exp of it), `accuracy`
        (argmax equals the next id), `event_accuracy` (over steps whose next id is not NO_EVENT, i.e. a note-on or
        note-off), `no_event_accuracy` (over steps whose next id is NO_EVENT), `steps` (steps scored),
        `event_steps`, `melodies` (melodies scored). Rates over no steps are NaN; the perplexity of an NLL past
        float64's range is inf.
    """
    total_ll, steps, correct, event_steps, event_correct = 0.0, 0, 0, 0, 0
    melodies = 0
    for tokens, (log_likelihood, predicted) in zip(token_lists, scores):
        targets = np.asarray(tokens, np.int32).reshape(-1)[1:]
        if targets.size == 0:
            continue
        melodies += 1
        hits = predicted == targets
        events = targets != NO_EVENT_ID
        total_ll += float(np.sum(log_likelihood))
        steps += targets.size
        correct += int(hits.sum())
        event_steps += int(events.sum())
        event_correct += int(hits[events].sum())

    def rate(num, den):
        return num / den if den else float("nan")

    nll = rate(-total_ll, steps)
    # A wrecked model (a learning rate far too high) can score hundreds of nats a step: its perplexity is then
    # infinite, not an OverflowError in the middle of a training run.
    perplexity = float("nan") if not steps else math.inf if nll > _MAX_EXP else math.exp(nll)
    return {
        "nll_per_step": nll,
        "perplexity": perplexity,
        "accuracy": rate(correct, steps),
        "event_accuracy": rate(event_correct, event_steps),
        "no_event_accuracy": rate(correct - event_correct, steps - event_steps),
        "steps": steps,
        "event_steps": event_steps,
        "melodies": melodies,
    }


def _as_bundle(bundle):
    from melodyrnn.bundle import Bundle, load_bundle

    if isinstance(bundle, Bundle):
        return bundle
    if isinstance(bundle, (str, os.PathLike)):
        return load_bundle(bundle, compile=False)
    raise MelodyRNNError(f"`bundle` must be a Bundle or the path of a bundle file, got {type(bundle).__name__}")


def open_data(path: str | os.PathLike, encoding: EncodingConfig = EncodingConfig()) -> PreparedData:
    """A prepared cache (`.npz`), or a folder of MIDI files prepared in memory in `encoding` (no validation split).

    Raises:
        DataError: `path` is neither, or the cache or folder is unusable.
    """
    path = Path(path)
    if path.is_dir():
        return prepare(path, None, config=encoding, validation_fraction=0.0, progress=False)
    if path.is_file():
        return PreparedData.load(path)
    raise DataError(f"`{path}` is neither a prepared cache nor a folder of MIDI files")


def load_eval_melodies(
    data, encoding: EncodingConfig, split: Split = "validation"
) -> tuple[list[np.ndarray], list[int | None]]:
    """The melodies to score, as token ids in `encoding`'s vocabulary.

    Args:
        data: a `PreparedData`, the path of a prepared cache (`.npz`), a folder of MIDI files (every melody in it
            is scored, whatever `split`), or a list of `Melody` objects or int token arrays.
        encoding: the vocabulary the model was trained on; a cache made with another one is refused.
        split: "validation", "train" or "all", for prepared data.

    Returns:
        `(tokens, steps_per_bar)`: int32 arrays `(steps,)`, one per melody, and each melody's steps per bar
        (None for bare token arrays, whose time signature is unknown).

    Raises:
        DataError: a missing path, a cache of another vocabulary, a bad split, or no melodies.
    """
    if split not in ("train", "validation", "all"):
        raise DataError(f"`split` must be 'train', 'validation' or 'all', got {split!r}")
    if isinstance(data, (list, tuple)):
        tokens = [melody_to_tokens(m, encoding) if isinstance(m, Melody) else np.asarray(m, np.int32) for m in data]
        bars = [max(1, round(m.steps_per_bar)) if isinstance(m, Melody) else None for m in data]
    else:
        if isinstance(data, (str, os.PathLike)):
            split = "all" if Path(data).is_dir() else split
            data = open_data(data, encoding)
        if not isinstance(data, PreparedData):
            raise DataError(
                f"`data` must be prepared data, a cache path, a MIDI folder or a list of melodies, "
                f"got {type(data).__name__}"
            )
        if data.config != encoding:
            raise DataError(f"the data was encoded with {data.config}, but the model expects {encoding}")
        tokens = [data.melody_tokens(i) for i in data.indices(split)]
        bars = data.steps_per_bar[data.indices(split)].tolist()
    if not tokens:
        raise DataError(f"there are no melodies to score in the {split!r} split")
    return [np.asarray(t, np.int32) for t in tokens], bars


def evaluate(bundle, data, split: Split = "validation", *, batch_tokens: int = DEFAULT_BATCH_TOKENS) -> dict:
    """Scores a model on whole melodies: NLL per step, perplexity, accuracy and event accuracy.

    Args:
        bundle: a `Bundle` or the path of a bundle file.
        data: see `load_eval_melodies`: prepared data, a cache path, a MIDI folder (every melody), or melodies.
        split: which melodies of prepared data: "validation" (default), "train" or "all".
        batch_tokens: padded tokens per scoring batch.

    Returns:
        The dict of `summarize`: `nll_per_step` (nats), `perplexity`, `accuracy`, `event_accuracy`,
        `no_event_accuracy`, `steps`, `event_steps`, `melodies`.

    Raises:
        BundleError: an unreadable bundle. DataError: see `load_eval_melodies`.

    Example:
        >>> metrics = evaluate("run/best.melodyrnn", "data.npz")
        >>> print(format_metrics(metrics))
        NLL 1.021 nats/step  perplexity 2.78  accuracy 0.723  event accuracy 0.512  (...)
    """
    bundle = _as_bundle(bundle)
    if isinstance(data, (str, os.PathLike)):  # opened once, for the melodies and their conditions alike
        split = "all" if Path(data).is_dir() else split
        data = open_data(data, bundle.encoding)
    tokens, bars = load_eval_melodies(data, bundle.encoding, split)
    bars = [bundle.model_config.steps_per_bar if b is None else b for b in bars]
    # a meter- or chord-aware model is scored with each melody's own meter and chords, as validation does
    conditions = _eval_conditions(data, bundle.encoding, split) if bundle.model_config.conditioned else None
    scores = score_token_lists(
        bundle.model, tokens, steps_per_bar=bars, batch_tokens=batch_tokens, conditions=conditions
    )
    return summarize(tokens, scores)


def _eval_conditions(data, encoding: EncodingConfig, split: Split) -> list[np.ndarray]:
    """Each melody's `step_conditions` (its meter and chords), in `load_eval_melodies`' order; bare token arrays
    get 4/4 and no chords."""
    if isinstance(data, PreparedData):
        every, indices = prepared_conditions(data), data.indices(split)
        return [every[data.offsets[i] : data.offsets[i + 1]] for i in indices]
    return [
        melody_conditions(m) if isinstance(m, Melody) else step_conditions(len(m), encoding.steps_per_quarter)
        for m in data
    ]


def score_melody(bundle, melody, *, steps_per_bar: int | None = None) -> tuple[float, np.ndarray]:
    """The log-likelihood of one melody under a model, scored from its first step.

    Args:
        bundle: a `Bundle` or the path of a bundle file.
        melody: a `Melody` (encoded with the bundle's encoding) or int token ids `(steps,)`.
        steps_per_bar: for a lookback model, the melody's bar length in steps; None takes a `Melody`'s own
            (its opening time signature) or, for ids, the model's `config.steps_per_bar`.

    Returns:
        `(total, per_step)`: the total natural-log likelihood of steps 1..steps-1 given the steps before each,
        and float64 `(steps - 1,)` per-step log-likelihoods (the first step has no context and is not scored).

    Raises:
        MelodyRNNError: a melody shorter than 2 steps, a pitch outside the bundle's vocabulary, or a bar the
            model cannot take.
    """
    bundle = _as_bundle(bundle)
    if steps_per_bar is None and isinstance(melody, Melody):
        steps_per_bar = max(1, round(melody.steps_per_bar))
    tokens = melody_to_tokens(melody, bundle.encoding) if isinstance(melody, Melody) else np.asarray(melody, np.int32)
    if tokens.ndim != 1 or tokens.size < 2:
        raise MelodyRNNError(f"`melody` must have at least 2 steps, got shape {tokens.shape}")
    ((per_step, _),) = score_token_lists(bundle.model, [tokens], steps_per_bar=steps_per_bar)
    return float(per_step.sum()), per_step


def format_metrics(metrics: dict) -> str:
    """One line: `NLL 1.234 nats/step  perplexity 3.43  accuracy 0.710  event accuracy 0.450 ...`."""
    return (
        f"NLL {metrics['nll_per_step']:.4f} nats/step  perplexity {metrics['perplexity']:.3f}  "
        f"accuracy {metrics['accuracy']:.3f}  event accuracy {metrics['event_accuracy']:.3f}  "
        f"no-event accuracy {metrics['no_event_accuracy']:.3f}  "
        f"({metrics['melodies']} melodies, {metrics['steps']} steps)"
    )
