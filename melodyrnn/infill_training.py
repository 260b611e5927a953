"""Training the infill model: gaps cut from training melodies, laid out by `infill_sequence`, learnt by a warm-started
melody model.

Start at `train_infill(data, run_dir, base)`; `python -m melodyrnn.infill_training DATA -o RUN --from BUNDLE` runs
it. `infill_example` builds one training example (inputs, targets, loss weights), `InfillTrainConfig` holds the
settings. Each update draws fresh gaps (1-8 bars of the melody's own meter, mostly 1-4) at random places in random
training melodies, each transposed with its chords; every step carries its meter and chord conditions and the gap
column (`melodyrnn.infill_model.infill_conditions`); only the gap's steps (and, lighter, the prefix's) carry loss.
`InfillTrainConfig(layout="backward")` (`--layout backward`) trains the backward reader of
`melodyrnn.infill_backward` on the same gaps instead (`backward_example`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import keras
import numpy as np

from melodyrnn.bundle import DEFAULT_BUNDLE_PATH, load_bundle
from melodyrnn.chords import arrays_to_chords
from melodyrnn.conditioning import NUM_FIELDS, step_conditions, transpose_conditions
from melodyrnn.configs import Config, is_int, is_real
from melodyrnn.dataset import PreparedData, prepare
from melodyrnn.encoding import NUM_SPECIAL, EncodingConfig
from melodyrnn.errors import DataError
from melodyrnn.infill_backward import backward_inputs, backward_warm_start, save_backward
from melodyrnn.infill_model import (
    MAX_GAP_BARS,
    SUFFIX_STEPS,
    event_log_probs,
    infill_conditions,
    infill_sequence,
    save_infill,
    warm_start,
)
from melodyrnn.model import MelodyModel
from melodyrnn.theory import steps_per_bar

__all__ = [
    "GAP_BAR_WEIGHTS",
    "LAYOUTS",
    "InfillTrainConfig",
    "backward_example",
    "infill_example",
    "train_infill",
    "main",
]

#: How often each gap length (in bars) is drawn in training: the lengths people ask for most, then up to 8 bars.
GAP_BAR_WEIGHTS = (0.2, 0.2, 0.2, 0.2, 0.05, 0.05, 0.05, 0.05)
_PAD_STEPS = 64  # batches are padded to a multiple of this, so few shapes are traced
_VALIDATION_GAPS = (1, 2, 4)
#: The layouts `train_infill` learns: the suffix first in a causal model's sequence (`melodyrnn.infill_model`), or
#: the suffix read backwards by an encoder (`melodyrnn.infill_backward`).
LAYOUTS = ("suffix_first", "backward")


@dataclass(frozen=True)
class InfillTrainConfig(Config):
    """Settings of `train_infill`.

    Attributes:
        max_minutes: wall-clock budget, validations and saving included.
        max_updates: optimizer updates at most.
        batch_size: sequences per update.
        learning_rate: Adam's, after a linear warm-up over `warmup_updates`; clipnorm 1.
        transpose: each example moves by a random shift in [-transpose, transpose] semitones (kept in range).
        prefix_weight: the loss weight of the prefix's steps (the gap's weigh 1; the suffix's 0).
        validate_every: updates between validations (each writes log.csv and, on improvement, best.melodyrnn).
        validation_gaps: held-out examples scored at each validation.
        seed: makes the gaps, transpositions and validation set repeatable.
        layout: one of `LAYOUTS`.
    """

    max_minutes: float = 35.0
    max_updates: int = 100_000
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_updates: int = 50
    transpose: int = 5
    prefix_weight: float = 0.5
    validate_every: int = 100
    validation_gaps: int = 300
    seed: int = 0
    layout: str = "suffix_first"

    what = "infill training config"

    def __post_init__(self):
        check = self._require
        check(is_real(self.max_minutes) and self.max_minutes > 0, "max_minutes", "> 0")
        for name in ("max_updates", "batch_size", "validate_every", "validation_gaps"):
            check(is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "an integer >= 1")
        check(is_int(self.warmup_updates) and self.warmup_updates >= 0, "warmup_updates", "an integer >= 0")
        check(is_real(self.learning_rate) and self.learning_rate > 0, "learning_rate", "> 0")
        check(is_int(self.transpose) and 0 <= self.transpose <= 24, "transpose", "an integer in [0, 24]")
        check(is_real(self.prefix_weight) and 0 <= self.prefix_weight <= 1, "prefix_weight", "in [0, 1]")
        check(is_int(self.seed) and self.seed >= 0, "seed", "an integer >= 0")
        check(self.layout in LAYOUTS, "layout", f"one of {LAYOUTS}")


def infill_example(
    tokens: np.ndarray,
    lines: np.ndarray,
    start_bar: int,
    end_bar: int,
    encoding: EncodingConfig,
    conditions: np.ndarray,
    prefix_weight: float = 0.5,
    shift: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One training example: the gap of bars `[start_bar, end_bar)` of a melody, laid out by `infill_sequence`.

    Args:
        tokens: int `(steps,)`, the melody's ids; lines: int `(bars + 1,)`, its bar lines.
        start_bar, end_bar: the gap, `0 <= start_bar < end_bar <= bars`.
        encoding: the melody encoding.
        conditions: int `(steps, NUM_FIELDS)`, the melody's (`melodyrnn.conditioning.step_conditions`).
        prefix_weight: loss weight of the steps predicting the prefix; the gap's are 1, the suffix's and the
            separator's 0.
        shift: semitones every note and chord moves by (the caller keeps the notes in range).

    Returns:
        `(inputs, conditions, targets, weights)`: int32 `(length - 1,)`, int32 `(length - 1, NUM_FIELDS + 1)`,
        int32 and float32 `(length - 1,)`; position i reads the conditions of and predicts `targets[i] =
        sequence[i + 1]`.
    """
    sequence, gap_offset, prefix_offset = infill_sequence(tokens, lines, start_bar, end_bar, encoding)
    rows = infill_conditions(conditions, lines, start_bar, end_bar)
    notes = (sequence >= NUM_SPECIAL) & (sequence < encoding.vocab_size)
    sequence = np.where(notes, sequence + shift, sequence).astype(np.int32)
    if shift:
        rows = np.concatenate([transpose_conditions(rows[:, :NUM_FIELDS], shift), rows[:, NUM_FIELDS:]], axis=1)
    weights = np.zeros(len(sequence) - 1, np.float32)
    weights[prefix_offset - 1 : gap_offset - 1] = prefix_weight
    weights[gap_offset - 1 :] = 1.0
    return sequence[:-1], rows[1:].astype(np.int32), sequence[1:], weights


def backward_example(
    tokens: np.ndarray,
    lines: np.ndarray,
    start_bar: int,
    end_bar: int,
    conditions: np.ndarray,
    prefix_weight: float = 0.5,
    shift: int = 0,
) -> tuple[np.ndarray, ...]:
    """One training example for the backward-reader layout (`melodyrnn.infill_backward.backward_inputs`).

    Args:
        tokens, lines, start_bar, end_bar, conditions, prefix_weight, shift: as `infill_example`.

    Returns:
        `(inputs, conditions, targets, weights, suffix, suffix_conditions)`: the first four as `infill_example`'s
        over [prefix][gap] (a gap at the melody's first step leaves that step unpredicted); int32 `(suffix,)` and
        `(suffix, NUM_FIELDS)`, the bars after the gap.
    """
    sequence, rows, suffix, suffix_rows, gap_offset = backward_inputs(tokens, conditions, lines, start_bar, end_bar)
    if shift:
        sequence = np.where(sequence >= NUM_SPECIAL, sequence + shift, sequence).astype(np.int32)
        suffix = np.where(suffix >= NUM_SPECIAL, suffix + shift, suffix).astype(np.int32)
        rows = np.concatenate([transpose_conditions(rows[:, :NUM_FIELDS], shift), rows[:, NUM_FIELDS:]], axis=1)
        suffix_rows = transpose_conditions(suffix_rows, shift)
    weights = np.full(len(sequence) - 1, prefix_weight, np.float32)
    weights[max(gap_offset - 1, 0) :] = 1.0
    return sequence[:-1], rows[1:].astype(np.int32), sequence[1:], weights, suffix, suffix_rows.astype(np.int32)


# ----------------------------------------------------------------------------------------------------------
# Drawing examples


class _Melodies:
    """The melodies of one split with whole-step bars: ids, conditions (meter and chords), bar lines, note range."""

    def __init__(self, data: PreparedData, split: Literal["train", "validation"]):
        self.tokens, self.conditions, self.lines, self.low, self.high = [], [], [], [], []
        for i in data.indices(split):
            meter = (int(data.numerator[i]), int(data.denominator[i]))
            bar = steps_per_bar(data.config.steps_per_quarter, *meter)
            tokens = data.melody_tokens(i)
            if bar != int(bar) or len(tokens) < bar + 1 or not (tokens >= NUM_SPECIAL).any():
                continue
            self.tokens.append(tokens)
            chords = arrays_to_chords(data.chord_offsets, data.chord_steps, data.chord_ids, data.chord_labels, i)
            self.conditions.append(step_conditions(len(tokens), data.config.steps_per_quarter, ((0, *meter),), chords))
            self.lines.append(np.array([*range(0, len(tokens), int(bar)), len(tokens)], np.int64))
            notes = tokens[tokens >= NUM_SPECIAL]
            self.low.append(int(notes.min()))
            self.high.append(int(notes.max()))
        if not self.tokens:
            raise DataError(f"the {split} split has no melody of at least one whole bar to cut gaps from")
        bars = np.array([len(lines) - 1 for lines in self.lines], np.float64)
        self.chance = bars / bars.sum()  # by bars, so every bar is as likely to be a gap

    def draw(self, rng: np.random.Generator, encoding: EncodingConfig, config: InfillTrainConfig, gap_bars=None):
        i = int(rng.choice(len(self.tokens), p=self.chance))
        lines = self.lines[i]
        bars = len(lines) - 1
        wanted = gap_bars or 1 + int(rng.choice(MAX_GAP_BARS, p=GAP_BAR_WEIGHTS))
        gap = min(wanted, bars)
        start = int(rng.integers(0, bars - gap + 1))
        shift = 0
        if config.transpose and gap_bars is None:
            low = max(-config.transpose, NUM_SPECIAL - self.low[i])
            high = min(config.transpose, encoding.vocab_size - 1 - self.high[i])
            shift = int(rng.integers(low, high + 1))
        weight = config.prefix_weight if gap_bars is None else 0.0
        if config.layout == "backward":
            return backward_example(self.tokens[i], lines, start, start + gap, self.conditions[i], weight, shift)
        return infill_example(self.tokens[i], lines, start, start + gap, encoding, self.conditions[i], weight, shift)


def _batches(examples: list, batch_size: int, rng: np.random.Generator):
    """Padded `(inputs, targets, weights)` batches of examples of similar length, in random order; inputs are
    `{"ids": int32 (batch, steps), "conditions": int32 (batch, steps, NUM_FIELDS + 1)}`, and for the backward
    layout also `"suffix"`, `"suffix_conditions"` (right-padded) and `"suffix_length"` int32 `(batch,)`."""
    examples = sorted(examples, key=lambda e: len(e[0]))
    batches = []
    for first in range(0, len(examples), batch_size):
        chunk = examples[first : first + batch_size]
        # suffixes always to SUFFIX_STEPS: the encoder's masked loop needs a known length once training retraces
        parts = [_padded([e[k] for e in chunk], SUFFIX_STEPS if k > 3 else None) for k in range(len(chunk[0]))]
        inputs = {"ids": parts[0], "conditions": parts[1]}
        if len(parts) > 4:
            lengths = np.array([len(e[4]) for e in chunk], np.int32)
            inputs.update(suffix=parts[4], suffix_conditions=parts[5], suffix_length=lengths)
        batches.append((inputs, parts[2], parts[3]))
    return [batches[i] for i in rng.permutation(len(batches))]


def _padded(arrays: list, steps: int | None = None) -> np.ndarray:
    """The arrays stacked, zero-padded after their ends to `steps`, or by default a multiple of `_PAD_STEPS`."""
    steps = steps or max(-(-max(len(a) for a in arrays) // _PAD_STEPS) * _PAD_STEPS, _PAD_STEPS)
    out = np.zeros((len(arrays), steps, *arrays[0].shape[1:]), arrays[0].dtype)
    for row, array in enumerate(arrays):
        out[row, : len(array)] = array
    return out


def _validate(model: MelodyModel, batches: list, encoding: EncodingConfig) -> float:
    """Gap NLL per step (nats) over the validation batches (their weights mark the gap steps)."""
    total, steps = 0.0, 0.0
    for inputs, targets, weights in batches:
        log_probs = event_log_probs(model, inputs, encoding)
        picked = np.take_along_axis(log_probs, np.minimum(targets, encoding.vocab_size - 1)[..., None], -1)[..., 0]
        total -= float((picked * weights).sum())
        steps += float(weights.sum())
    return total / max(steps, 1.0)


# ----------------------------------------------------------------------------------------------------------
# Training


def train_infill(
    data: PreparedData | str | Path,
    run_dir: str | Path,
    base: MelodyModel | str | Path | None = None,
    config: InfillTrainConfig = InfillTrainConfig(),
    *,
    log=print,
) -> dict:
    """Fine-tunes an infill model from a melody model on `data`'s training split.

    Validation (the gap NLL per step of `config.validation_gaps` held-out gaps of 1, 2 and 4 bars, no
    transposition) runs before the first update and every `validate_every` updates; each writes a row of
    `run_dir/log.csv`, and each improvement `run_dir/best.melodyrnn` (an infill bundle).

    Args:
        data: `PreparedData`, a prepared cache (.npz) or a folder of MIDI files.
        run_dir: the run folder (created).
        base: the melody model to start from: a `MelodyModel` (read with the data's encoding), a bundle path, or
            None for the bundled default model.
        config: the settings.
        log: called with one line per validation.

    Returns:
        A dict: `best_path`, `best_update`, `best_gap_nll`, `start_gap_nll`, `updates`, `seconds`, `history`.

    Raises:
        DataError: data without training or validation melodies of a whole bar; BundleError: a bad `base`.
        MelodyRNNError: a base the infill layout cannot use (see `warm_start`).
    """
    started = time.monotonic()
    if not isinstance(data, PreparedData):
        path = Path(data)
        data = PreparedData.load(path) if path.is_file() else prepare(path, None, progress=False)
    encoding = data.config
    base_note = "model in memory"
    if not isinstance(base, MelodyModel):
        base_path = Path(base) if base is not None else DEFAULT_BUNDLE_PATH
        bundle = load_bundle(base_path, compile=False)
        if bundle.encoding != encoding:
            raise DataError(f"the data was encoded with {encoding}, but {base_path} reads {bundle.encoding}")
        base, base_note = bundle.model, f"{base_path} (sha256 {hashlib.sha256(base_path.read_bytes()).hexdigest()})"
    backward = config.layout == "backward"
    model = backward_warm_start(base) if backward else warm_start(base, encoding, config.seed)
    save = save_backward if backward else save_infill
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"),
        jit_compile=False,
    )
    rng = np.random.default_rng(config.seed)
    train, held_out = _Melodies(data, "train"), _Melodies(data, "validation")
    val_rng = np.random.default_rng(config.seed + 1)
    validation = [
        held_out.draw(val_rng, encoding, config, _VALIDATION_GAPS[i % 3]) for i in range(config.validation_gaps)
    ]
    val_batches = _batches(validation, 64, val_rng)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metadata = {"data": _data_note(data), "base": base_note, "config": config.to_dict()}
    history: list[dict] = []
    best = {"gap_nll": math.inf, "update": 0}
    updates = 0
    pending: list = []
    losses: list[float] = []

    def validate() -> None:
        nll = _validate(model, val_batches, encoding)
        row = {"update": updates, "seconds": round(time.monotonic() - started, 1),
               "train_loss": float(np.mean(losses)) if losses else math.nan, "val_gap_nll": nll}  # fmt: skip
        history.append(row)
        losses.clear()
        if nll < best["gap_nll"]:
            best.update(gap_nll=nll, update=updates)
            save(run_dir / "best.melodyrnn", model, encoding,
                        {**metadata, "updates": updates, "val_gap_nll_per_step": nll})  # fmt: skip
        _write_log(run_dir / "log.csv", history)
        log(f"update {updates:5d}  {row['seconds']:7.1f}s  train {row['train_loss']:.4f}  val gap NLL {nll:.4f}")

    validate()
    budget = config.max_minutes * 60
    while updates < config.max_updates and time.monotonic() - started < budget:
        if not pending:
            pending = _batches([train.draw(rng, encoding, config) for _ in range(config.batch_size * 16)],
                               config.batch_size, rng)  # fmt: skip
        inputs, targets, weights = pending.pop()
        warm = min(1.0, (updates + 1) / config.warmup_updates) if config.warmup_updates else 1.0
        model.optimizer.learning_rate.assign(config.learning_rate * warm)
        losses.append(float(model.train_on_batch(inputs, targets, sample_weight=weights)))
        updates += 1
        if updates % config.validate_every == 0:
            validate()
    if not history or history[-1]["update"] != updates:
        validate()
    return {"best_path": run_dir / "best.melodyrnn", "best_update": best["update"], "best_gap_nll": best["gap_nll"],
            "start_gap_nll": history[0]["val_gap_nll"], "updates": updates,
            "seconds": time.monotonic() - started, "history": history}  # fmt: skip


def _data_note(data: PreparedData) -> dict:
    splits = {f"{split}_melodies": int(data.indices(split).size) for split in ("train", "validation")}
    return {**splits, "source": data.report.root if data.report else ""}


def _write_log(path: Path, history: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def main(argv: list[str] | None = None) -> int:
    """`python -m melodyrnn.infill_training DATA -o RUN [--from BUNDLE] [--max-minutes M] ...`."""
    parser = argparse.ArgumentParser(description="Fine-tune an infill model from a melody model.")
    parser.add_argument("data", help="prepared cache (.npz) or folder of MIDI files")
    parser.add_argument("-o", "--output", required=True, help="run folder")
    parser.add_argument("--from", dest="base", default=None, help="melody bundle to start from (default: bundled)")
    for name, field in InfillTrainConfig.__dataclass_fields__.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(field.default), default=field.default)
    args = vars(parser.parse_args(argv))
    data, output, base = args.pop("data"), args.pop("output"), args.pop("base")
    result = train_infill(data, output, base, InfillTrainConfig(**args))
    print(f"best: update {result['best_update']}, val gap NLL {result['best_gap_nll']:.4f} "
          f"(start {result['start_gap_nll']:.4f}) in {result['best_path']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
