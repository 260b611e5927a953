"""Infill and variation: new bars between the ones you keep, with the shipped causal model seeing the future.

Start at `GapFilling.infill`, which `Sampler` inherits (`sampler.infill(melody, 4, 8)`; the one-liner
`melodyrnn.infill(melody, 4, 8, model=...)` loads the model first). The model reads left to right, so the bars
after the gap enter by importance resampling: p(gap | prefix, suffix) ∝ p(gap | prefix) · p(suffix | prefix, gap).
For each version `candidates` gaps are drawn by the compiled sampler with the prefix as primer (every sampling
control acts on the gap), the suffix is scored after each in one batched full-sequence call, and one gap is kept
with probability ∝ that suffix likelihood; `adapt=K` first fine-tunes a copy of the model on the kept bars
(`melodyrnn.adaptation`). `score_infill` is the matching likelihood; `vary` rewrites every other bar or each
phrase's second half. Everything here needs only a sampler's `model`, `encoding` and `generate` (and, to adapt,
the `bundle` a copy is built from), so it sits below `melodyrnn.sampling`.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import replace
from typing import Any

import numpy as np

from melodyrnn.adaptation import adapted, checked_adapt
from melodyrnn.conditioning import beat_quarters, melody_conditions
from melodyrnn.encoding import EncodingConfig, Melody, melody_to_tokens, tokens_to_melody
from melodyrnn.errors import InfillError, MelodyRNNError
from melodyrnn.evaluation import score_token_lists
from melodyrnn.sample_config import MAX_ROWS
from melodyrnn.theory import steps_per_bar

__all__ = [
    "DEFAULT_CANDIDATES",
    "FIXED_OPTIONS",
    "GapFilling",
    "InfillScore",
    "bar_lines",
    "checked_count",
    "checked_seed",
    "gap_steps",
    "splice",
    "variation_gaps",
]

#: Gaps drawn per version. Measured by benchmarks/bench_infill.py on held-out tunes: see README ("Infill").
DEFAULT_CANDIDATES = 8
#: Sampling options that would change the melody's length or its metadata: infill keeps those of the melody.
FIXED_OPTIONS = ("num_melodies", "num_steps", "steps", "bars", "primer", "qpm", "time_signature", "program", "velocity")


# ----------------------------------------------------------------------------------------------------------
# Bars and checks


def bar_lines(melody: Melody) -> np.ndarray:
    """The step of every bar line, and the melody's end.

    A time-signature change opens a new bar. The last bar may be partial.

    Args:
        melody: a `Melody`.

    Returns:
        int64 `(bars + 1,)`: bar b spans steps `[lines[b], lines[b + 1])`; `lines[-1] == len(melody)`.

    Raises:
        InfillError: an empty melody, or a meter whose bar is not a whole number of steps (6/8 at 3 steps per
            quarter note is 4.5 steps).
    """
    if not isinstance(melody, Melody):
        raise MelodyRNNError(f"`melody` must be a Melody, got {type(melody).__name__}")
    length = len(melody)
    if length == 0:
        raise InfillError("`melody` is empty: there are no bars to rewrite")
    changes = [(s, n, d) for s, n, d in melody.time_signatures if s < length]
    lines: list[int] = []
    for i, (start, num, den) in enumerate(changes):
        end = changes[i + 1][0] if i + 1 < len(changes) else length
        bar = steps_per_bar(melody.steps_per_quarter, num, den)
        if bar != int(bar):
            raise InfillError(
                f"bar lines of {num}/{den} at {melody.steps_per_quarter} steps per quarter note fall between "
                f"steps ({bar:g} steps a bar): infill needs bars of whole steps"
            )
        lines.extend(range(start, end, int(bar)))
    return np.array([*lines, length], np.int64)


def gap_steps(melody: Melody, start_bar, end_bar) -> tuple[int, int]:
    """`(first step, end step)` of bars `[start_bar, end_bar)`, checked."""
    lines = bar_lines(melody)
    bars = len(lines) - 1
    for name, value in (("start_bar", start_bar), ("end_bar", end_bar)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InfillError(f"`{name}` must be an integer bar number (0-based), got {value!r}")
    if not 0 <= start_bar < end_bar:
        raise InfillError(f"the gap must be bars start_bar <= bar < end_bar with 0 <= start_bar < end_bar, "
                          f"got start_bar={start_bar}, end_bar={end_bar}")  # fmt: skip
    if end_bar > bars:
        raise InfillError(f"`end_bar` must be at most the melody's {bars} bars, got {end_bar}")
    return int(lines[start_bar]), int(lines[end_bar])


def checked_count(name: str, value, low: int = 1, high: int = MAX_ROWS) -> int:
    """`value` as an int, checked to be an integer in [low, high]. Raises `MelodyRNNError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise MelodyRNNError(f"`{name}` must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def checked_seed(seed) -> int:
    """A 31-bit sampling seed from `seed` (an int >= 0), or a random one for None."""
    if seed is None:
        return secrets.randbits(31)
    return checked_count("seed", seed, 0, (1 << 63) - 1) % (1 << 31)


# ----------------------------------------------------------------------------------------------------------
# Drawing and weighing gaps: `sampler` is anything with a sampler's `model`, `encoding` and `generate`


def _draw_gaps(sampler: Any, melody: Melody, start: int, end: int, rows: int, options: dict) -> np.ndarray:
    """int32 `(rows, end - start)`: gaps drawn after the prefix `melody[:start]` under every sampling control."""
    options = dict(options)
    if start == 0:
        primer = None
        options["time_signature"] = melody.time_signature  # the bar a lookback model counts, without a primer
    else:
        if not (melody.events[:start] >= 0).any():
            raise InfillError("the bars before the gap hold no note: start the gap at bar 0 or keep a note before it")
        primer = melody.first_steps(start)
    if getattr(sampler.model.config, "condition_chords", False) and melody.chords and "chords" not in options:
        # A chord-aware model follows the melody's own chords over the gap (a primer carries only its own steps').
        step_beats = beat_quarters(*melody.time_signature) * melody.steps_per_quarter
        options["chords"] = tuple((step / step_beats, label) for step, label in melody.chords if step < end)
    drawn = sampler.generate(rows, primer=primer, steps=end, **options)
    return np.stack([melody_to_tokens(m, sampler.encoding)[start:end] for m in drawn]).astype(np.int32)


def _suffix_log_likelihoods(sampler: Any, tokens: np.ndarray, gaps: np.ndarray, start: int, melody: Melody):
    """float64 `(rows,)`: log p(tokens[end:] | tokens[:start], gap) for each row of `gaps`, in one batched call."""
    end = start + gaps.shape[1]
    rows = np.repeat(tokens[None, :], len(gaps), axis=0)
    rows[:, start:end] = gaps
    padded = -(-(len(tokens) - 1) // 128) * 128 + 128
    scores = score_token_lists(
        sampler.model,
        list(rows),
        steps_per_bar=max(1, round(melody.steps_per_bar)),
        batch_tokens=max(len(rows) * padded, 1),
        conditions=[melody_conditions(melody)] * len(rows),
    )
    # Score i is the likelihood of step i + 1: the suffix's steps end.. are scores end - 1..
    return np.array([float(ll[end - 1 :].sum()) for ll, _ in scores])


def splice(melody: Melody, start: int, gap_tokens: np.ndarray, encoding: EncodingConfig) -> Melody:
    """The melody with steps `[start, start + len(gap))` replaced; every other field kept as it was."""
    events = melody.events.copy()
    events[start : start + len(gap_tokens)] = tokens_to_melody(gap_tokens, encoding).events
    return replace(melody, events=events)


def _infill_steps(sampler, melody, start, end, n, candidates, seed, options) -> list[Melody]:
    """`infill` on checked steps: n versions, each one of `candidates` gaps resampled by its suffix likelihood."""
    greedy = options.get("temperature", 1.0) == 0
    per_version = 1 if greedy else candidates  # argmax draws are all the same gap
    if n * per_version > MAX_ROWS:
        raise MelodyRNNError(f"`n` × `candidates` must be at most {MAX_ROWS} gaps drawn at once, "
                             f"got {n} × {per_version}")  # fmt: skip
    gaps = _draw_gaps(sampler, melody, start, end, n * per_version, {**options, "seed": seed})
    if end < len(melody) and per_version > 1:
        tokens = melody_to_tokens(melody, sampler.encoding)
        weights = _suffix_log_likelihoods(sampler, tokens, gaps, start, melody).reshape(n, per_version)
        weights = np.exp(weights - weights.max(axis=1, keepdims=True))
        rng = np.random.default_rng(seed)
        chosen = [r * per_version + rng.choice(per_version, p=w / w.sum()) for r, w in enumerate(weights)]
    else:  # nothing follows the gap: the sampler's own draws are already p(gap | prefix)
        chosen = [r * per_version for r in range(n)]
    return [splice(melody, start, gaps[i], sampler.encoding) for i in chosen]


def _score_steps(sampler, melody, tokens, start, end, samples, seed) -> InfillScore:
    """`score_infill` on checked steps, under `sampler`'s model."""
    bar = max(1, round(melody.steps_per_bar))
    ((log_likelihood, _),) = score_token_lists(
        sampler.model, [tokens], steps_per_bar=bar, conditions=[melody_conditions(melody)]
    )
    per_step = log_likelihood[max(start, 1) - 1 : end - 1]
    if end == len(tokens):
        return InfillScore(per_step)
    gaps = _draw_gaps(sampler, melody, start, end, samples, {"seed": seed})
    suffix = _suffix_log_likelihoods(sampler, tokens, gaps, start, melody)
    top = suffix.max()
    ratios = np.exp(suffix - top)
    evidence = top + math.log(ratios.mean())
    error = float(ratios.std(ddof=1) / (math.sqrt(samples) * ratios.mean())) if samples > 1 else math.inf
    return InfillScore(per_step, float(log_likelihood[end - 1 :].sum()), evidence, error, samples)


# ----------------------------------------------------------------------------------------------------------
# What a score and a variation are


class InfillScore(tuple):
    """`(total, per_step)`, with the parts of the estimate as attributes.

    Attributes:
        total: float, log p(gap | prefix, suffix) in nats: `prefix_only + suffix_given_gap - suffix_evidence`.
        per_step: float64 `(gap steps,)`: log p(step | prefix, gap steps before it), the left-to-right part.
        prefix_only: `per_step.sum()`, log p(gap | prefix).
        suffix_given_gap: log p(suffix | prefix, gap); 0 without a suffix.
        suffix_evidence: log p(suffix | prefix), a Monte Carlo ESTIMATE over `samples` gaps drawn after the
            prefix (log of the mean of p(suffix | prefix, gap_k)); 0 without a suffix.
        standard_error: the estimate's standard error in nats (delta method: std of the likelihoods over
            sqrt(samples) × their mean); it is also `total`'s. 0 without a suffix.
        samples: gaps drawn for the estimate.
    """

    def __new__(cls, per_step, suffix_given_gap=0.0, suffix_evidence=0.0, standard_error=0.0, samples=0):
        prefix_only = float(np.sum(per_step))
        total = prefix_only + suffix_given_gap - suffix_evidence
        self = super().__new__(cls, (total, per_step))
        self.total, self.per_step, self.prefix_only = total, per_step, prefix_only
        self.suffix_given_gap, self.suffix_evidence = float(suffix_given_gap), float(suffix_evidence)
        self.standard_error, self.samples = float(standard_error), samples
        return self


def variation_gaps(num_bars: int, every: int | str = 2, phrase_bars: int = 4) -> list[tuple[int, int]]:
    """The gaps `vary` rewrites, `[(start_bar, end_bar)]` in order.

    Args:
        num_bars: the melody's bars.
        every: an integer k >= 2 rewrites bars k-1, 2k-1, ... (2: every other bar); "second_half" rewrites the
            second half of each phrase.
        phrase_bars: 4 or 8, the phrase length for "second_half".

    Raises:
        MelodyRNNError: a bad `every` or `phrase_bars`, or a melody with no bar to rewrite.
    """
    if every == "second_half":
        if phrase_bars not in (4, 8) or isinstance(phrase_bars, bool):
            raise MelodyRNNError(f"`phrase_bars` must be 4 or 8, got {phrase_bars!r}")
        half = phrase_bars // 2
        gaps = [(p + half, min(p + phrase_bars, num_bars)) for p in range(0, num_bars, phrase_bars)]
        gaps = [(s, e) for s, e in gaps if s < e]
    elif isinstance(every, (int, np.integer)) and not isinstance(every, bool) and every >= 2:
        gaps = [(b, b + 1) for b in range(every - 1, num_bars, every)]
    else:
        raise MelodyRNNError(f"`every` must be an integer >= 2 or 'second_half', got {every!r}")
    if not gaps:
        raise InfillError(f"a melody of {num_bars} bars has no bar to rewrite with every={every!r}")
    return gaps


# ----------------------------------------------------------------------------------------------------------
# The calls, as methods of a sampler


class GapFilling:
    """Infill, its score and variations for a loaded model: `melodyrnn.sampling.Sampler` inherits these.

    A subclass provides `model` (a `MelodyModel`), `encoding` (its `EncodingConfig`) and `generate(num_melodies,
    *, primer, steps, **options)` as `Sampler` has them; nothing else is assumed.
    """

    model: Any
    encoding: EncodingConfig

    def infill(
        self,
        melody: Melody,
        start_bar: int,
        end_bar: int,
        n: int = 1,
        *,
        candidates: int = DEFAULT_CANDIDATES,
        adapt: int = 0,
        **sampling,
    ) -> list[Melody]:
        """New versions of bars `start_bar <= bar < end_bar`, every step outside them kept exactly.

        The gap is drawn from p(gap | prefix, suffix) by importance resampling: `candidates` gaps per version come
        from the model after the prefix, under all the sampling controls, and one is kept with probability
        proportional to p(suffix | prefix, gap). With no suffix (a gap at the end) it is a plain continuation;
        with no prefix (a gap at the start) the gap starts from the model's start state, as `generate` does.

        Args:
            melody: the `Melody` to rewrite; its events, tempos, time signatures, chords, program and velocity
                outside the gap come back unchanged.
            start_bar, end_bar: the gap, 0-based bars, end exclusive (see `bar_lines`).
            n: versions to return (1 to 1,024).
            candidates: gaps drawn per version (more: closer to p(gap | both sides), slower). Temperature 0 draws
                one.
            adapt: gradient steps on the kept bars before the gap is drawn (`melodyrnn.adaptation`): 0 (off),
                or 10 for a melody unlike the model's training data (measured: README, "Infill"; more steps
                overfit the kept bars), some 15 ms a step on a CPU.
            **sampling: `generate`'s controls for the gap: `temperature`, `top_k`, `top_p`, `key`, `min_pitch`,
                `max_pitch`, `repetition_penalty`, `max_repeats`, `seed`, ...; not the length, primer, tempo,
                meter, program or velocity, which are the melody's.

        Returns:
            `n` `Melody` objects as long as `melody`.

        Raises:
            InfillError: an empty melody, a gap outside it or with start_bar >= end_bar, bars that are not whole
                steps, or no note before a gap that does not start at bar 0.
            MelodyRNNError: a bad `n`, `candidates` or sampling option; a pitch outside the model's vocabulary.

        Example:
            >>> versions = sampler.infill(melody, 4, 8, n=4, temperature=0.9, seed=1)
        """
        start, end = gap_steps(melody, start_bar, end_bar)
        n, candidates = checked_count("n", n), checked_count("candidates", candidates)
        fixed = sorted(set(sampling) & set(FIXED_OPTIONS))
        if fixed:
            raise MelodyRNNError(f"infill keeps the melody's length and metadata: remove {', '.join(fixed)}")
        seed = checked_seed(sampling.pop("seed", None))
        adapt = checked_adapt(adapt)
        melody_to_tokens(melody, self.encoding)  # a pitch outside the vocabulary fails before anything runs
        with adapted(self, melody, start, end, adapt) as filler:
            return _infill_steps(filler, melody, start, end, n, candidates, seed, sampling)

    def score_infill(
        self,
        melody: Melody,
        start_bar: int,
        end_bar: int,
        samples: int = DEFAULT_CANDIDATES,
        *,
        seed=None,
        adapt: int = 0,
    ) -> InfillScore:
        """The log-likelihood of the gap's steps given both sides, like `melodyrnn.score_melody`.

        log p(gap | prefix, suffix) = log p(gap | prefix) + log p(suffix | prefix, gap) − log p(suffix | prefix).
        The last term is estimated by Monte Carlo over `samples` gaps drawn after the prefix at temperature 1 with
        no other control: the total is an estimate, with its standard error in `standard_error`. A gap starting
        at step 0 has no context for that step, which is not scored (as in `score_melody`).

        Args:
            melody: a `Melody` in the model's pitch range.
            start_bar, end_bar: the gap, 0-based bars, end exclusive.
            samples: gaps drawn for the estimate (1 to 1,024).
            seed: makes the estimate reproducible.
            adapt: as for `infill`: every part of the score is then the adapted model's.

        Returns:
            An `InfillScore`, which unpacks as `(total, per_step)`: the total in nats and float64 `(gap steps,)`
            left-to-right per-step log-likelihoods (their sum is `prefix_only`; see `InfillScore`).

        Raises:
            InfillError: see `infill`. MelodyRNNError: a bad `samples`, a pitch outside the model's vocabulary.
        """
        start, end = gap_steps(melody, start_bar, end_bar)
        samples, seed, adapt = checked_count("samples", samples), checked_seed(seed), checked_adapt(adapt)
        tokens = melody_to_tokens(melody, self.encoding)
        if len(tokens) < 2:
            return InfillScore(np.zeros(0))
        with adapted(self, melody, start, end, adapt) as scorer:
            return _score_steps(scorer, melody, tokens, start, end, samples, seed)

    def vary(
        self,
        melody: Melody,
        every: int | str = 2,
        n: int = 1,
        *,
        phrase_bars: int = 4,
        candidates: int = DEFAULT_CANDIDATES,
        adapt: int = 0,
        **sampling,
    ) -> list[Melody]:
        """Variations: rewrites every other bar (or every k-th), or the second half of each phrase, in one call.

        The gaps are filled one after another, left to right, each infill seeing the bars already rewritten
        before it and the kept bars after it.

        Args:
            melody: the `Melody` to vary.
            every: see `variation_gaps`: 2 (every other bar), k, or "second_half".
            n: variations to return, each rewritten independently.
            phrase_bars: 4 or 8, for "second_half".
            candidates, adapt, **sampling: as for `infill` (adaptation is redone for each gap, on its kept bars).

        Returns:
            `n` `Melody` objects; the bars not rewritten are the melody's, exactly.

        Raises:
            InfillError, MelodyRNNError: see `infill` and `variation_gaps`.
        """
        gaps = variation_gaps(len(bar_lines(melody)) - 1, every, phrase_bars)
        n = checked_count("n", n)
        base = checked_seed(sampling.pop("seed", None))
        out = []
        for version in range(n):
            varied = melody
            for i, (start_bar, end_bar) in enumerate(gaps):
                seed = (base * 1_000_003 + version * 10_007 + i) % (1 << 31)
                (varied,) = self.infill(
                    varied, start_bar, end_bar, 1, candidates=candidates, adapt=adapt, seed=seed, **sampling
                )
            out.append(varied)
        return out
