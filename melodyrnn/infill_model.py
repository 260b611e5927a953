"""The trained infill model: a causal melody model that reads the bars AFTER the gap first.

Start at `InfillModel` (`InfillModel().infill(melody, 4, 8)`; `melodyrnn.infill(...)` uses it when no model is
given). Its sequences are laid out by `infill_sequence`: [suffix][SEP_g][prefix][gap], where SEP_g is one of
`MAX_GAP_BARS` new tokens after the melody vocabulary that also says how many bars the gap has. Every step also
carries its own place in the melody (`infill_conditions`: bar position, metrical level, meter, chord, as a
conditioned melody model reads them) and a gap column: before the gap, after it, or how many steps the gap has
left, so the model knows when it must join the suffix. The compiled sampler is primed with everything before the
gap and draws exactly the gap's steps; `score_infill` is the exact log p(gap | both sides) from one full call.
`warm_start` turns a melody model into an `InfillNetwork` (every weight copied); `melodyrnn.infill_training`
fine-tunes it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from melodyrnn.adaptation import checked_adapt
from melodyrnn.bundle import load_task_bundle, read_bundle_task, save_task_bundle
from melodyrnn.conditioning import CHORD, NUM_FIELDS, step_conditions
from melodyrnn.configs import config_from_dict
from melodyrnn.decoding import decode
from melodyrnn.encoding import NUM_SPECIAL, EncodingConfig, Melody, melody_to_tokens
from melodyrnn.errors import BundleError, MelodyRNNError
from melodyrnn.gaps import (
    DEFAULT_CANDIDATES,
    FIXED_OPTIONS,
    GapFilling,
    InfillScore,
    bar_lines,
    checked_count,
    checked_seed,
    gap_steps,
    splice,
)
from melodyrnn.model import MelodyModel, ModelConfig
from melodyrnn.sample_config import SampleConfig, progression_to_chords
from melodyrnn.warm_start import add_conditions

__all__ = [
    "DEFAULT_INFILL_PATH",
    "GAP_COLUMN",
    "INFILL_TASK",
    "LAYOUT",
    "MAX_GAP_BARS",
    "MAX_STEPS_LEFT",
    "InfillModel",
    "InfillNetwork",
    "bundle_configs",
    "context_layout",
    "infill_conditions",
    "infill_model_for",
    "infill_sequence",
    "load_infill",
    "save_infill",
    "separator_id",
    "warm_start",
]

#: The `task` an infill bundle's bundle.json names.
INFILL_TASK = "infill"
#: The shipped infill model, when this install has one.
DEFAULT_INFILL_PATH = Path(__file__).parent / "pretrained" / "infill.melodyrnn"
#: Gap lengths the separator tokens tell apart; a longer gap reads as this many bars (the join may come early).
MAX_GAP_BARS = 8
#: Context the model reads: at most this many bars (and steps) before the gap, and after it.
PREFIX_BARS, PREFIX_STEPS = 16, 320
SUFFIX_BARS, SUFFIX_STEPS = 8, 160
#: The layout an infill bundle names; bundles of another layout are refused.
LAYOUT = "suffix, separator (gap bars), prefix, gap; conditions with a gap column"
#: The column after `melodyrnn.conditioning`'s that says where a step is: 0 before the gap, 1 after it, and
#: `1 + min(steps left, MAX_STEPS_LEFT)` inside it (the step itself counted: 2 on the gap's last step).
GAP_COLUMN = NUM_FIELDS
BEFORE_GAP, AFTER_GAP = 0, 1
#: Steps left in the gap are told apart up to this (4 bars of 4/4); more read as this many.
MAX_STEPS_LEFT = 64
_GAP_IDS = 2 + MAX_STEPS_LEFT
# The sampling loop compiles once per length; lengths rounded up to this many steps share one loop (the extra
# steps after the gap are drawn and dropped).
_LENGTH_QUANTUM = 32


def separator_id(encoding: EncodingConfig, gap_bars: int) -> int:
    """The token after the suffix that opens the prefix and says the gap has `gap_bars` bars (capped)."""
    return encoding.vocab_size + min(max(int(gap_bars), 1), MAX_GAP_BARS) - 1


def context_layout(lines: np.ndarray, start_bar: int, end_bar: int) -> tuple[int, int, int, int]:
    """`(prefix_start, start, end, suffix_end)` in steps: the context the model reads around the gap."""
    start, end = int(lines[start_bar]), int(lines[end_bar])
    bars = len(lines) - 1
    suffix_end = min(int(lines[min(bars, end_bar + SUFFIX_BARS)]), end + SUFFIX_STEPS)
    first = max(0, start_bar - PREFIX_BARS)
    while first < start_bar and start - int(lines[first]) > PREFIX_STEPS:
        first += 1
    prefix_start = int(lines[first]) if start - int(lines[first]) <= PREFIX_STEPS else start - PREFIX_STEPS
    return prefix_start, start, end, suffix_end


def infill_sequence(tokens: np.ndarray, lines: np.ndarray, start_bar: int, end_bar: int, encoding: EncodingConfig):
    """The infill model's sequence for the gap of bars `[start_bar, end_bar)` of a melody.

    Args:
        tokens: int `(steps,)`, the melody's ids.
        lines: int `(bars + 1,)`, its bar lines (`melodyrnn.gaps.bar_lines`).
        start_bar, end_bar: the gap, checked by the caller.
        encoding: the melody model's encoding (the separators follow its vocabulary).

    Returns:
        `(sequence, gap_offset, prefix_offset)`: int32 `(suffix + 1 + prefix + gap,)` laid out as
        [suffix][SEP_g][prefix][gap], where the suffix is at most `SUFFIX_BARS` bars (`SUFFIX_STEPS` steps) after
        the gap and the prefix at most `PREFIX_BARS` bars (`PREFIX_STEPS` steps, cut at a bar line) before it;
        the gap starts at `gap_offset` and the prefix at `prefix_offset`.
    """
    prefix_start, start, end, suffix_end = context_layout(lines, start_bar, end_bar)
    sep = np.array([separator_id(encoding, end_bar - start_bar)], np.int32)
    suffix, prefix, gap = tokens[end:suffix_end], tokens[prefix_start:start], tokens[start:end]
    sequence = np.concatenate([suffix, sep, prefix, gap]).astype(np.int32)
    return sequence, len(suffix) + 1 + len(prefix), len(suffix) + 1


def infill_conditions(conditions: np.ndarray, lines: np.ndarray, start_bar: int, end_bar: int) -> np.ndarray:
    """Every element of `infill_sequence`'s sequence with the conditions of its own step in the melody.

    Args:
        conditions: int `(steps, NUM_FIELDS)`, the melody's (`melodyrnn.conditioning.step_conditions`).
        lines, start_bar, end_bar: as `infill_sequence`.

    Returns:
        int32 `(len(sequence), NUM_FIELDS + 1)`, aligned with the sequence: each step's own conditions, then
        `GAP_COLUMN` (`BEFORE_GAP`, `AFTER_GAP`, or `1 + min(end - step, MAX_STEPS_LEFT)` inside the gap). The
        separator's row copies the row after it. A model reading element i is given row i + 1 (the step it
        predicts), as `melodyrnn.model.MelodyModel` expects.
    """
    prefix_start, start, end, suffix_end = context_layout(lines, start_bar, end_bar)
    rows = np.asarray(conditions, np.int32)
    where = np.concatenate([np.full(suffix_end - end, AFTER_GAP), np.full(start - prefix_start, BEFORE_GAP),
                            1 + np.minimum(end - np.arange(start, end), MAX_STEPS_LEFT)])  # fmt: skip
    parts = np.concatenate([rows[end:suffix_end], rows[prefix_start:start], rows[start:end]])
    out = np.concatenate([parts, where[:, None]], axis=1).astype(np.int32)
    separator = suffix_end - end
    return np.concatenate([out[:separator], out[separator : separator + 1], out[separator:]])


# ----------------------------------------------------------------------------------------------------------
# The network: warm start, bundle


@keras.saving.register_keras_serializable(package="melodyrnn")
class InfillNetwork(MelodyModel):
    """A meter- and chord-aware `MelodyModel` that also reads `GAP_COLUMN`: its embedding is added to each step's
    event embedding (zero at the warm start, so the network first predicts what its melody model did).

    Inputs are `{"ids": int (batch, steps), "conditions": int (batch, steps, NUM_FIELDS + 1)}`, laid out by
    `infill_sequence` and `infill_conditions`; `step` takes `(batch, NUM_FIELDS + 1)` conditions.

    Args:
        config: a `ModelConfig` with `condition_meter` and `condition_chords`, without lookback.

    Raises:
        MelodyRNNError: another config.
    """

    def __init__(self, config: ModelConfig | dict = ModelConfig(), **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        if c.lookback or not (c.condition_meter and c.condition_chords):
            raise MelodyRNNError("an infill network reads meter and chords and has no lookback")
        self.gap = keras.layers.Embedding(_GAP_IDS, c.embedding_dim, embeddings_initializer="zeros", name="gap")

    def build(self, input_shape=None):
        self.gap.build((None,))
        super().build(input_shape)

    def _with_conditions(self, x, conditions, step):
        if conditions is None:
            raise MelodyRNNError("an infill network needs its conditions (infill_conditions), with the gap column")
        x = x + ops.cast(self.gap(ops.cast(conditions[..., GAP_COLUMN], "int32")), x.dtype)
        return super()._with_conditions(x, conditions[..., :NUM_FIELDS], step)


def warm_start(model: MelodyModel, encoding: EncodingConfig, seed: int = 0) -> InfillNetwork:
    """An infill network made from a melody model: every weight copied, `MAX_GAP_BARS` separator tokens added.

    A model without conditions first gains the meter's and the chords' (zero input rows, `add_conditions`). The
    separators' embedding rows start at the mean of the note rows plus a little noise (distinct, so the model can
    tell gap lengths apart); their logits start at zero weight and a bias of -10, as the model never has to
    predict them (the sampler masks them anyway). The gap column's embedding starts at zero.

    Args:
        model: a built, non-lookback `MelodyModel` reading `encoding`.
        encoding: its `EncodingConfig`.
        seed: for the separators' noise.

    Returns:
        A built, uncompiled `InfillNetwork` with `vocab_size = encoding.vocab_size + MAX_GAP_BARS`.

    Raises:
        MelodyRNNError: not a `MelodyModel`, another vocabulary, or a lookback model (its bar counter runs from
            the first id, which the infill layout reorders).
    """
    if not isinstance(model, MelodyModel):
        raise MelodyRNNError(f"`model` must be a melodyrnn MelodyModel, got {type(model).__name__}")
    if model.config.vocab_size != encoding.vocab_size:
        raise MelodyRNNError(
            f"`encoding` must have the model's {model.config.vocab_size} events, got {encoding.vocab_size}"
        )
    if model.config.lookback:
        raise MelodyRNNError("an infill model must start from a model without lookback: its sequences put the "
                             "bars after the gap first, so its bar counter would mislead it")  # fmt: skip
    if not (model.config.condition_meter and model.config.condition_chords):
        model = add_conditions(model, condition_meter=True, condition_chords=True)
    config = model.config
    new = InfillNetwork(ModelConfig.from_dict({**config.to_dict(), "vocab_size": config.vocab_size + MAX_GAP_BARS}),
                       name="infill_network")  # fmt: skip
    new.build()
    old = {w.path.split("/", 1)[1]: np.asarray(w.numpy()) for w in model.weights}
    rng = np.random.default_rng(seed)
    for weight in new.weights:
        key = weight.path.split("/", 1)[1]
        if key.startswith("gap/"):
            continue  # the gap column's embedding stays zero
        value = old[key]
        if key.endswith("embedding/embeddings"):
            notes = value[NUM_SPECIAL:]
            extra = notes.mean(axis=0) + rng.normal(0, notes.std() / 4, (MAX_GAP_BARS, value.shape[1]))
            value = np.concatenate([value, extra.astype(value.dtype)])
        elif key.endswith("logits/kernel"):
            value = np.concatenate([value, np.zeros((value.shape[0], MAX_GAP_BARS), value.dtype)], axis=1)
        elif key.endswith("logits/bias"):
            value = np.concatenate([value, np.full(MAX_GAP_BARS, -10.0, value.dtype)])
        weight.assign(value)
    return new


def save_infill(path: str | os.PathLike, model: MelodyModel, encoding: EncodingConfig, metadata: dict | None) -> Path:
    """Writes an infill model as one bundle whose bundle.json says `"task": "infill"`."""
    config = {
        "model_config": model.config.to_dict(),
        "encoding_config": encoding.to_dict(),
        "max_gap_bars": MAX_GAP_BARS,
        "layout": LAYOUT,
    }
    return save_task_bundle(path, model, INFILL_TASK, config, metadata)


def bundle_configs(path, config: dict) -> tuple[EncodingConfig, ModelConfig]:
    """The encoding and model configs a task bundle's bundle.json declares (`config`, its task config).

    Raises:
        BundleError: either is missing or invalid.
    """
    try:
        encoding = EncodingConfig.from_dict(config.get("encoding_config"))
        return encoding, ModelConfig.from_dict(config.get("model_config"))
    except (MelodyRNNError, TypeError, ValueError) as err:
        raise BundleError(f"{path} is corrupt: bad configs in its bundle.json ({err})") from err


def load_infill(path: str | os.PathLike) -> tuple[InfillNetwork, EncodingConfig, dict]:
    """Loads an infill bundle (Keras safe mode, the checks of `load_task_bundle`).

    Returns:
        `(model, encoding, metadata)`.

    Raises:
        BundleError: a missing or unusable file, a bundle of another task (a melody model: "use it with..."), an
            infill bundle of an older layout, or configs that disagree with the model.
    """
    model, config, metadata = load_task_bundle(path, INFILL_TASK)
    if config.get("layout") != LAYOUT:
        raise BundleError(f"{path} is an infill model of an older layout ({config.get('layout')!r}): train it again "
                          "with melodyrnn.infill_training")  # fmt: skip
    encoding, model_config = bundle_configs(path, config)
    if (
        not isinstance(model, InfillNetwork)
        or model.config != model_config
        or config.get("max_gap_bars") != MAX_GAP_BARS
        or model_config.vocab_size != encoding.vocab_size + MAX_GAP_BARS
    ):
        raise BundleError(f"{path} is corrupt: its model does not match its infill config")
    return model, encoding, metadata


# ----------------------------------------------------------------------------------------------------------
# Sampling and scoring


class InfillModel(GapFilling):
    """Infill with a model trained for it: `infill`, `score_infill` and `vary`, like a `Sampler`'s.

    Args:
        path: an infill bundle (`"task": "infill"`), or None for the shipped one (`DEFAULT_INFILL_PATH`).
        jit_compile: compile the sampling loop with XLA (falls back with a warning, as `Sampler` does).

    Raises:
        BundleError: no such bundle, or a bundle of another task (a melody model goes to `Sampler`).

    Example:
        >>> versions = InfillModel().infill(melody, 4, 8, n=4, temperature=0.9, seed=1)
    """

    def __init__(self, path: str | os.PathLike | None = None, *, jit_compile: bool = True):
        if path is None and not DEFAULT_INFILL_PATH.is_file():
            raise BundleError(f"no infill model is bundled with this install (expected {DEFAULT_INFILL_PATH})")
        self.path = Path(path if path is not None else DEFAULT_INFILL_PATH)
        self.model, self.encoding, self.metadata = load_infill(self.path)
        self.jit_compile = jit_compile
        self._compiled: dict[tuple, Any] = {}

    def _sequence(self, melody: Melody, start_bar: int, end_bar: int, chords=None):
        """`(sequence, conditions, gap_offset)`: the layout, its rows of conditions, where the gap starts. `chords`
        (a progression, as `SampleConfig.chords`, from the melody's first step) replaces the melody's own over the
        gap's steps."""
        tokens = melody_to_tokens(melody, self.encoding)  # a pitch outside the vocabulary fails here
        lines = bar_lines(melody)
        spq, length = melody.steps_per_quarter, len(melody)
        steps = step_conditions(length, spq, melody.time_signatures, melody.chords)
        if chords is not None:
            start, end = int(lines[start_bar]), int(lines[end_bar])
            asked = progression_to_chords(chords, melody.time_signature, spq, length)
            steps[start:end] = step_conditions(length, spq, melody.time_signatures, asked)[start:end]
        sequence, gap_offset, _ = infill_sequence(tokens, lines, start_bar, end_bar, self.encoding)
        return sequence, infill_conditions(steps, lines, start_bar, end_bar), gap_offset

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
        """New versions of bars `start_bar <= bar < end_bar`, drawn from the model given both sides.

        The compiled sampler reads the bars after the gap, the separator and the bars before it, then draws the
        gap's steps under every sampling control; every step outside the gap is the melody's, bit for bit.

        Args:
            melody, start_bar, end_bar, n: as `melodyrnn.gaps.GapFilling.infill`.
            candidates: accepted for a melody model's calls and checked; the trained model needs no candidates.
            adapt: accepted for a melody model's calls; must be 0.
            **sampling: `temperature`, `top_k`, `top_p`, `key`, `min_pitch`, `max_pitch`, `repetition_penalty`,
                `max_repeats`, `beam_size`, `branch_factor`, `seed`, `chords` (a progression from the melody's
                first step, which the gap follows instead of the melody's own chords) and `chord_guidance` (how
                closely the gap follows the chords in force over it, as for `Sampler.generate`).

        Returns:
            `n` `Melody` objects as long as `melody`.

        Raises:
            InfillError, MelodyRNNError: as `GapFilling.infill`.
        """
        start, end = gap_steps(melody, start_bar, end_bar)
        n = checked_count("n", n)
        checked_count("candidates", candidates)
        _no_adaptation(adapt)
        fixed = sorted(set(sampling) & set(FIXED_OPTIONS))
        if fixed:
            raise MelodyRNNError(f"infill keeps the melody's length and metadata: remove {', '.join(fixed)}")
        seed = checked_seed(sampling.pop("seed", None))
        options = {k: v for k, v in sampling.items() if v is not None or k not in ("top_k", "top_p")}
        beam = options.get("beam_size", 1) != 1 or options.get("branch_factor", 1) != 1
        config = config_from_dict(SampleConfig, {"num_melodies": n, "num_steps": 1, **options, "seed": seed},
                                  "sampling option")  # fmt: skip
        sequence, conditions, gap_offset = self._sequence(melody, start_bar, end_bar, config.chords)
        # beam search ranks whole rows, so it must not rank steps drawn after the gap: no rounding for it
        steps = len(sequence) if beam else -(-len(sequence) // _LENGTH_QUANTUM) * _LENGTH_QUANTUM
        config = replace(config, num_steps=steps)
        primer = np.zeros(steps, np.int32)
        primer[:gap_offset] = sequence[:gap_offset]
        rows = np.zeros((steps, GAP_COLUMN + 1), np.int32)  # steps after the gap (dropped) read the defaults
        rows[: len(conditions)] = conditions
        request = {
            "primer": primer,
            "primer_length": gap_offset,
            "seed": config.seed,
            "steps_per_bar": self.model.config.steps_per_bar,
            "conditions": rows,
        }
        # like Sampler: chord guidance only where the gap has chords to follow
        chords_given = bool(conditions[gap_offset:, CHORD].any())
        ids = decode(
            self._compiled, self.model, config, self.encoding, steps, request, chords_given=chords_given,
            jit_compile=self.jit_compile,
        )  # fmt: skip
        return [splice(melody, start, row[gap_offset : gap_offset + end - start], self.encoding) for row in ids]

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
        """The exact log-likelihood of the gap's steps given both sides, from one full call (no estimate).

        Args:
            melody, start_bar, end_bar: as `infill`.
            samples, seed: accepted for a melody model's calls and checked; nothing is sampled.
            adapt: accepted for a melody model's calls; must be 0 (see `_no_adaptation`).

        Returns:
            An `InfillScore` `(total, per_step)`: float64 `(gap steps,)` log p(step | suffix, prefix, gap steps
            before it) in nats, over the melody's events (the separators excluded); its standard error is 0. Here
            `per_step` already sees both sides, so `prefix_only` equals `total`.

        Raises:
            InfillError, MelodyRNNError: as `infill`.
        """
        start, end = gap_steps(melody, start_bar, end_bar)
        checked_count("samples", samples)
        checked_seed(seed)
        _no_adaptation(adapt)
        sequence, conditions, gap_offset = self._sequence(melody, start_bar, end_bar)
        inputs = {"ids": sequence[None, :-1], "conditions": conditions[None, 1:]}
        log_probs = event_log_probs(self.model, inputs, self.encoding)[0]
        targets = sequence[gap_offset:]
        per_step = log_probs[np.arange(gap_offset - 1, len(sequence) - 1), targets].astype(np.float64)
        assert per_step.size == end - start
        return InfillScore(per_step)


def _no_adaptation(adapt) -> None:
    if checked_adapt(adapt):
        raise MelodyRNNError("`adapt` is for melody models: an infill model already reads both sides (use 0)")


def event_log_probs(model: MelodyModel, inputs: dict, encoding: EncodingConfig) -> np.ndarray:
    """float32 `(batch, steps, encoding.vocab_size)`: log-probabilities of the next event over the melody's events
    (the separators masked out, as the sampler masks them), from one full call on `{"ids": int (batch, steps),
    "conditions": int (batch, steps, NUM_FIELDS + 1)}`."""
    tensors = {k: ops.convert_to_tensor(np.asarray(v, np.int32)) for k, v in inputs.items()}
    logits = model(tensors, training=False)[..., : encoding.vocab_size]
    return np.asarray(ops.log_softmax(logits, axis=-1))


_LOADED: dict[str, InfillModel] = {}


def infill_model_for(model: Any) -> InfillModel | None:
    """The trained infill model that `model` names, or None when it names a melody model (or nothing is shipped).

    Args:
        model: an `InfillModel`; a bundle path (an infill bundle is loaded once per process, any other is left to
            the melody path); None for the shipped infill model when this install has one; anything else (a
            `Sampler`, a `Bundle`) is a melody model.

    Returns:
        An `InfillModel`, or None: infill then resamples the melody model's gaps (`melodyrnn.gaps`).
    """
    if isinstance(model, InfillModel):
        return model
    if model is None:
        if not DEFAULT_INFILL_PATH.is_file():
            return None
        model = DEFAULT_INFILL_PATH
    if not isinstance(model, (str, os.PathLike)) or read_bundle_task(model) != INFILL_TASK:
        return None
    key = os.fspath(model)
    if key not in _LOADED:
        _LOADED[key] = InfillModel(model)
    return _LOADED[key]
