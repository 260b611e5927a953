"""How a training run is set up from its data: where it starts, how many updates it makes, what decides when it stops.

Start at `choose_start` (fine-tune the bundled default model, or train from scratch, with the reason) and
`plan_run` (the update budget, the updates between validations, and whether the validation split is big enough to
stop early on). `melodyrnn.training.train` calls both when a run begins and keeps their reasons in the run folder.
The numbers below were measured by `benchmarks/bench_small_data.py` on collections the bundled model never saw.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from melodyrnn import distribute
from melodyrnn.bundle import DEFAULT_BUNDLE_PATH, read_bundle_encoding, read_bundle_metadata
from melodyrnn.collection import MIN_VALIDATION_STEPS
from melodyrnn.configs import Config, is_int, is_real
from melodyrnn.dataset import PreparedData
from melodyrnn.encoding import NUM_SPECIAL, EncodingConfig
from melodyrnn.errors import MelodyRNNError
from melodyrnn.model import ModelConfig

__all__ = [
    "TrainConfig",
    "FINE_TUNE_MAX_STEPS",
    "MIN_UPDATES",
    "MIN_ROUND_UPDATES",
    "FALLBACK_UPDATES",
    "MIN_PITCH_COVERAGE",
    "Start",
    "Plan",
    "choose_start",
    "default_model_config",
    "plan_run",
]

#: Collections with fewer training steps than this fine-tune the bundled model when their encoding fits it. Measured
#: (benchmarks/bench_small_data.py, 10-300 files of two styles the bundled model never saw): fine-tuning beat a model
#: trained from scratch at every size, by 0.13-0.3 nats/step; at the largest (316,824 steps of Palestrina) the model
#: from scratch (0.382) had not yet reached even the untouched bundled model (0.362). The line sits between that and
#: the ~940,000 steps the bundled model itself learnt from, past which a new model has as much to learn from.
FINE_TUNE_MAX_STEPS = 500_000
#: No automatic run makes fewer optimizer updates than this, however few its training windows (except a
#: fine-tuned run whose validation cannot decide: FALLBACK_UPDATES): a handful of tunes is repeated (freshly
#: transposed each pass) rather than ending after a few batches.
MIN_UPDATES = 200
#: Updates between two validations (an "epoch" of the run's log) when one pass over the data is shorter.
MIN_ROUND_UPDATES = 25
#: Updates of a fine-tuned run whose validation split is too small to stop on (below MIN_VALIDATION_STEPS). On ten
#: Essen songs 50, 150 and 300 updates kept the same best round (the round after 50 updates) and beat the untouched
#: bundled model on held-out songs (0.327 against 0.347 nats/step); 150 leaves room for data that learns slower.
FALLBACK_UPDATES = 150
#: Passes over the data an automatic run may make when validation decides (early stopping usually ends it).
MAX_PASSES = 50
#: The share of the data's notes that must lie in the pitch range the bundled model learnt, for it to start there.
MIN_PITCH_COVERAGE = 0.9
#: Fine-tuning settings: a lower learning rate than from scratch, reached after a short warm-up, and transposition
#: of every window (small data is repeated many times; fresh keys each pass keep it from being memorised).
FINE_TUNE_LEARNING_RATE = 1e-3
FINE_TUNE_WARMUP_UPDATES = 20
SMALL_DATA_TRANSPOSE = 5
SCRATCH_LEARNING_RATE = 3e-3
#: Rounds without a lower validation loss before an automatic run stops (when its validation can decide).
AUTO_PATIENCE = 4


@dataclass(frozen=True)
class TrainConfig(Config):
    """How to train. Defaults give a good model of a folder of tunes on a laptop CPU in at most ten minutes.

    A field left None is planned from the data when the run starts (`melodyrnn.planning.plan_run`, which says
    why): budgets count optimizer updates, not passes over the data, so a small collection is repeated (freshly
    transposed each pass) rather than ending after a few batches, and a fine-tuned run gets fine-tuning settings.
    The budget (`max_minutes`) and early stopping usually end a default run, with the best epoch kept. An "epoch"
    of the run's log is one round of updates between two validations.

    Attributes:
        epochs: rounds (validations) in all, >= 1 (a resumed run counts the rounds already done), or None: as many
            as `updates` needs. Excludes `updates`.
        updates: optimizer updates in all, >= 1, or None: planned (at least `planning.MIN_UPDATES`; see
            `plan_run`).
        batch_size: windows per batch (global, split across replicas), >= 1.
        seq_len: steps per training window, >= 2. 256 steps = 16 bars of 4/4 at 4 steps per quarter: long enough
            for attention to learn to reach back to a repeated strain.
        learning_rate: Adam's learning rate, > 0, or None: 3e-3 from scratch (it learned faster than 1e-3 in a
            run of minutes: val NLL 1.24 against 1.33 after three epochs on training_data/), lower to fine-tune.
        warmup_updates: updates over which the learning rate rises linearly from 0, >= 0, or None: planned
            (a few when fine-tuning, so the first steps of a fresh optimizer do not wreck what the bundle learnt).
        freeze: how many of the lowest layers keep their weights while fine-tuning, >= 0: 1 freezes the embedding,
            2 also the first recurrent layer, and so on.
        schedule: the learning rate after warm-up: "constant", or "cosine" (down to a tenth of it at the run's
            last planned update).
        clipnorm: clip each gradient to this norm (recurrent nets have exploding gradients), > 0, or None.
        patience: stop after this many epochs without a lower validation loss, >= 1; None never stops early;
            "auto" is 4 when the validation split holds enough steps to decide (`collection.MIN_VALIDATION_STEPS`)
            and None otherwise.
        transpose: move each training window by a random shift in [-transpose, transpose] semitones, in [0, 24],
            or None: planned (transposed on small data, where windows repeat).
        seed: seeds weights, shuffling and augmentation.
        strategy: "default" (one device), "mirrored" (every local GPU, or every logical CPU when there is no GPU)
            or "multiworker" (the hosts in the TF_CONFIG environment variable, each running the same command;
            only the chief writes the run folder, and resuming needs it readable by every worker).
        steps_per_epoch: updates per epoch (between validations), >= 1, or None: one pass over the training
            windows, at least `planning.MIN_ROUND_UPDATES`. Set it to validate and checkpoint more often on large
            data.
        max_minutes: stop after this many minutes of this session (mid-epoch if need be; that epoch is then
            validated and saved, marked partial), None for no limit.

    Raises:
        MelodyRNNError: a field out of range, naming it and the value received.
    """

    epochs: int | None = None
    updates: int | None = None
    batch_size: int = 64
    seq_len: int = 256
    learning_rate: float | None = None
    warmup_updates: int | None = None
    freeze: int = 0
    schedule: str = "constant"
    clipnorm: float | None = 1.0
    patience: int | str | None = "auto"
    transpose: int | None = None
    seed: int = 0
    strategy: str = "default"
    steps_per_epoch: int | None = None
    max_minutes: float | None = 10.0

    what: ClassVar[str] = "train config"

    def __post_init__(self):
        check = self._require

        check(self.epochs is None or (is_int(self.epochs) and self.epochs >= 1), "epochs", "an integer >= 1 or None")
        check(
            self.updates is None or (is_int(self.updates) and self.updates >= 1), "updates", "an integer >= 1 or None"
        )
        check(self.epochs is None or self.updates is None, "updates", "None when `epochs` is given (one budget)")
        check(is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "an integer >= 1")
        check(is_int(self.seq_len) and self.seq_len >= 2, "seq_len", "an integer >= 2")
        check(
            self.learning_rate is None or (is_real(self.learning_rate) and 0 < self.learning_rate < math.inf),
            "learning_rate",
            "a number > 0 or None",
        )
        check(
            self.warmup_updates is None or (is_int(self.warmup_updates) and self.warmup_updates >= 0),
            "warmup_updates",
            "an integer >= 0 or None",
        )
        check(is_int(self.freeze) and self.freeze >= 0, "freeze", "an integer >= 0")
        check(self.schedule in ("constant", "cosine"), "schedule", "'constant' or 'cosine'")
        check(
            self.clipnorm is None or (is_real(self.clipnorm) and 0 < self.clipnorm < math.inf),
            "clipnorm",
            "a number > 0 or None",
        )
        check(
            self.patience is None or self.patience == "auto" or (is_int(self.patience) and self.patience >= 1),
            "patience",
            "an integer >= 1, 'auto' or None",
        )
        check(
            self.transpose is None or (is_int(self.transpose) and 0 <= self.transpose <= 24),
            "transpose",
            "an integer in [0, 24] or None",
        )
        check(is_int(self.seed), "seed", "an integer")
        check(self.strategy in distribute.STRATEGIES, "strategy", f"one of {list(distribute.STRATEGIES)}")
        check(
            self.steps_per_epoch is None or (is_int(self.steps_per_epoch) and self.steps_per_epoch >= 1),
            "steps_per_epoch",
            "an integer >= 1 or None",
        )
        check(
            self.max_minutes is None or (is_real(self.max_minutes) and 0 < self.max_minutes < math.inf),
            "max_minutes",
            "a number > 0 or None",
        )


@dataclass(frozen=True)
class Start:
    """Where a run starts: `bundle` (a path, or None for random weights) and why, in one sentence."""

    bundle: Path | None
    reason: str

    @property
    def fine_tune(self) -> bool:
        return self.bundle is not None

    def to_dict(self) -> dict:
        return {"from": None if self.bundle is None else str(self.bundle), "reason": self.reason}


def _train_steps(data: PreparedData) -> int:
    return int(data.lengths[data.indices("train")].sum())


def _misfit(data: PreparedData, theirs: EncodingConfig, metadata: dict) -> str | None:
    # Why the bundled model cannot (or should not) start on this data, or None when it fits.
    if theirs != data.config:
        ours, bundled = data.config.to_dict(), theirs.to_dict()
        differ = ", ".join(f"{k} {ours[k]} (it has {bundled[k]})" for k in ours if ours[k] != bundled[k])
        return f"the data's encoding does not fit the bundled model: {differ}"
    learnt = (metadata.get("data") or {}).get("report", {}).get("pitch_range")
    notes = data.tokens[data.tokens >= NUM_SPECIAL].astype(np.int64) - NUM_SPECIAL + data.config.min_pitch
    if learnt and notes.size:
        inside = float(np.mean((notes >= learnt[0]) & (notes <= learnt[1])))
        if inside < MIN_PITCH_COVERAGE:
            return (
                f"only {inside:.0%} of the data's notes lie in the pitch range the bundled model learnt "
                f"({learnt[0]}-{learnt[1]}); it needs {MIN_PITCH_COVERAGE:.0%}"
            )
    return None


def choose_start(
    data: PreparedData,
    from_bundle: str | os.PathLike | None = None,
    from_scratch: bool = False,
    *,
    default_bundle: str | os.PathLike = DEFAULT_BUNDLE_PATH,
) -> Start:
    """Where a new run starts, and why.

    `from_bundle` and `from_scratch` decide when given. Otherwise the run fine-tunes the bundled default model
    when (1) the data's encoding (steps per quarter, pitch range of the vocabulary) is the model's, (2) at least
    `MIN_PITCH_COVERAGE` of the data's notes lie in the pitch range the model learnt, and (3) the training split
    has fewer than `FINE_TUNE_MAX_STEPS` steps — on less data than that a model trained from scratch did not beat
    it. Anything else trains from scratch.

    Args:
        data: the run's prepared data.
        from_bundle: fine-tune this bundle.
        from_scratch: train a new model.
        default_bundle: the bundled default model (a test may point elsewhere).

    Returns:
        A `Start`.

    Raises:
        MelodyRNNError: both `from_bundle` and `from_scratch`.
    """
    if from_bundle is not None and from_scratch:
        raise MelodyRNNError("`from_bundle` and `from_scratch` exclude each other: give one or neither")
    if from_scratch:
        return Start(None, "from scratch, as asked (--from-scratch)")
    if from_bundle is not None:
        return Start(Path(from_bundle), f"fine-tuning {from_bundle}, as asked (--from)")
    steps = _train_steps(data)
    metadata = read_bundle_metadata(default_bundle) if Path(default_bundle).is_file() else None
    encoding = read_bundle_encoding(default_bundle) if metadata is not None else None
    if metadata is None or encoding is None:
        return Start(None, "from scratch: no bundled default model in this install to start from")
    misfit = _misfit(data, encoding, metadata)
    if misfit:
        return Start(None, f"from scratch: {misfit}")
    if steps >= FINE_TUNE_MAX_STEPS:
        return Start(
            None,
            f"from scratch: {steps:,} training steps, enough to beat the bundled model "
            f"(it is fine-tuned below {FINE_TUNE_MAX_STEPS:,})",
        )
    return Start(
        Path(default_bundle),
        f"fine-tuning the bundled default model: {steps:,} training steps is small data "
        f"(below {FINE_TUNE_MAX_STEPS:,}, where fine-tuning it beat training from scratch)",
    )


@dataclass(frozen=True)
class Plan:
    """The resolved numbers of a run and why.

    Attributes:
        updates: optimizer updates in all.
        updates_per_round: updates between two validations (Keras's `steps_per_epoch`).
        rounds: validations in all (Keras's `epochs`).
        patience: rounds without improvement before stopping, or None (no early stopping).
        learning_rate, warmup_updates, transpose: the training settings.
        validation_steps: steps in the validation melodies.
        notes: one line per decision, for the run's output and metadata.
    """

    updates: int
    updates_per_round: int
    rounds: int
    patience: int | None
    learning_rate: float
    warmup_updates: int
    transpose: int
    validation_steps: int
    notes: tuple[str, ...]

    def to_dict(self) -> dict:
        return {**self.__dict__, "notes": list(self.notes)}


def default_model_config(data: PreparedData) -> ModelConfig:
    """A model size that suits the amount of training data, for a run of minutes on a laptop CPU (from scratch).

    The project's default network (`ModelConfig()`: 2 x 128 LSTM with causal self-attention, the shape of the
    bundled default model) suits a collection of thousands of tunes; on less data a network with fewer units and
    more dropout overfits less. Thresholds count training steps (tokens):

    - under 30,000 (a few dozen tunes): 2 x 96 units, dropout 0.3;
    - under 300,000 (a few hundred tunes): 2 x 128 units, dropout 0.2;
    - otherwise `ModelConfig()` (2 x 128, dropout 0.1).

    Every size keeps the attention layer: tunes repeat bars and phrases, and a model that can look back wins
    (`benchmarks/results/model_comparison.json`). `vocab_size` is the data's.
    """
    steps = _train_steps(data)
    vocab = data.config.vocab_size
    if steps < 30_000:
        return ModelConfig(units=96, embedding_dim=32, dropout=0.3, vocab_size=vocab)
    if steps < 300_000:
        return ModelConfig(units=128, embedding_dim=48, dropout=0.2, vocab_size=vocab)
    return ModelConfig(vocab_size=vocab)


def _explicit(patience: int | str | None) -> int | None:
    return patience if isinstance(patience, int) else None


def plan_run(data: PreparedData, config: TrainConfig, fine_tune: bool, windows: int) -> Plan:
    """The run's budget and settings: what the config gives, and for what it leaves None, the measured defaults.

    - Updates: at least `MIN_UPDATES` (small data is repeated, each pass freshly transposed); with a validation
      split that can decide, up to `MAX_PASSES` passes and early stopping ends it; without one, a fine-tuned run
      makes `FALLBACK_UPDATES` (measured to help on a few files and not to overfit them) and never stops early.
    - Updates per round: one pass over the training windows, at least `MIN_ROUND_UPDATES`.
    - Learning rate, warm-up, transposition: `FINE_TUNE_*` when fine-tuning; from scratch 3e-3, no warm-up; windows
      are transposed by up to `SMALL_DATA_TRANSPOSE` semitones when the data is small (`FINE_TUNE_MAX_STEPS`).

    Args:
        data: the run's prepared data.
        config: its `TrainConfig` (fields left None are planned here).
        fine_tune: whether the run starts from a bundle.
        windows: training windows in one pass.
    """
    val_steps = int(data.lengths[data.indices("validation")].sum())
    small = _train_steps(data) < FINE_TUNE_MAX_STEPS
    batches_per_pass = max(1, math.ceil(windows / config.batch_size))
    decides = val_steps >= MIN_VALIDATION_STEPS
    notes = []
    if decides:
        notes.append(f"validation: {val_steps:,} steps (at least {MIN_VALIDATION_STEPS:,}): its loss stops the run")
        auto_updates = max(MIN_UPDATES, MAX_PASSES * batches_per_pass)
        patience = AUTO_PATIENCE if config.patience == "auto" else _explicit(config.patience)
    else:
        auto_updates = FALLBACK_UPDATES if fine_tune else MIN_UPDATES
        notes.append(
            f"validation: only {val_steps:,} steps (under {MIN_VALIDATION_STEPS:,}), too few to stop on: "
            f"a fixed {auto_updates} updates, no early stopping"
        )
        patience = None if config.patience == "auto" else _explicit(config.patience)
    per_round = config.steps_per_epoch or max(batches_per_pass, MIN_ROUND_UPDATES)
    if config.epochs is not None:
        rounds = config.epochs
    else:
        budget = config.updates or auto_updates
        per_round = per_round if config.steps_per_epoch else min(per_round, budget)
        rounds = max(1, math.ceil(budget / per_round))
    learning_rate = config.learning_rate or (FINE_TUNE_LEARNING_RATE if fine_tune else SCRATCH_LEARNING_RATE)
    warmup = config.warmup_updates if config.warmup_updates is not None else (
        FINE_TUNE_WARMUP_UPDATES if fine_tune else 0
    )  # fmt: skip
    transpose = config.transpose if config.transpose is not None else (SMALL_DATA_TRANSPOSE if small else 0)
    notes.append(
        f"budget: {rounds * per_round:,} updates ({rounds} rounds of {per_round}; one pass = {batches_per_pass} "
        f"batches of {config.batch_size}), learning rate {learning_rate:g}"
        + (f" after {warmup} warm-up updates" if warmup else "")
        + (f", windows transposed by up to {transpose} semitones" if transpose else "")
    )
    return Plan(
        updates=rounds * per_round,
        updates_per_round=per_round,
        rounds=rounds,
        patience=patience,
        learning_rate=learning_rate,
        warmup_updates=warmup,
        transpose=transpose,
        validation_steps=val_steps,
        notes=tuple(notes),
    )
