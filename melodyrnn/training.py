"""Training: `TrainConfig` → `train()`, which fits a model and keeps a run folder that survives any interruption.

Start at `train(data, run_dir)` (what `melodyrnn train` runs). The starting model is scored first (epoch 0), and
each finished epoch scores the validation melodies whole (as `melodyrnn evaluate` does), then writes
`latest.melodyrnn` and, on improvement, `best.melodyrnn`, both atomically, so a kill at any moment leaves
loadable bundles; `resume=True` carries on from `latest` with its optimizer state. The run's progress lives in
the bundles' metadata, so the bundle is the checkpoint. The run folder's files and the per-epoch callback live in
`run_folder`, the multi-worker plumbing in `distribute`, the baselines the summary prints in `baselines`.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import keras

from melodyrnn import distribute
from melodyrnn.baselines import format_baselines, score_baselines
from melodyrnn.bundle import load_bundle
from melodyrnn.configs import Config, is_int, is_real
from melodyrnn.dataset import PreparedData, prepare
from melodyrnn.errors import DataError, MelodyRNNError
from melodyrnn.model import ModelConfig, build_model
from melodyrnn.run_folder import (
    BEST,
    DATA,
    LATEST,
    RunCallback,
    check_run_folder,
    format_history,
    initial_state,
    open_run_folder,
)
from melodyrnn.theory import check_steps_per_bar

__all__ = ["TrainConfig", "TrainResult", "train", "default_model_config"]


@dataclass(frozen=True)
class TrainConfig(Config):
    """How to train. Defaults give a good model of a folder of tunes on a laptop CPU in about ten minutes.

    The budget (`max_minutes`) and early stopping, not `epochs`, usually end a default run: a small collection
    overfits within a few epochs and stops early; a large one uses the time it is given, then stops with the
    best epoch kept.

    Attributes:
        epochs: epochs in all (a resumed run counts the epochs already done), >= 1.
        batch_size: windows per batch (global, split across replicas), >= 1.
        seq_len: steps per training window, >= 2. 256 steps = 16 bars of 4/4 at 4 steps per quarter: long enough
            for attention to learn to reach back to a repeated strain.
        learning_rate: Adam's learning rate, > 0. 3e-3 learned faster than 1e-3 in a run of minutes (val NLL
            1.24 against 1.33 after three epochs on training_data/).
        clipnorm: clip each gradient to this norm (recurrent nets have exploding gradients), > 0, or None.
        patience: stop after this many epochs without a lower validation loss, >= 1, or None (never stop early).
        transpose: move each training window by a random shift in [-transpose, transpose] semitones, in [0, 24].
        seed: seeds weights, shuffling and augmentation.
        strategy: "default" (one device), "mirrored" (every local GPU, or every logical CPU when there is no GPU)
            or "multiworker" (the hosts in the TF_CONFIG environment variable, each running the same command;
            only the chief writes the run folder, and resuming needs it readable by every worker).
        steps_per_epoch: batches per epoch, None for one pass over the training windows. Set it to validate and
            checkpoint more often on large data.
        max_minutes: stop after this many minutes of this session (mid-epoch if need be; that epoch is then
            validated and saved, marked partial), None for no limit.

    Raises:
        MelodyRNNError: a field out of range, naming it and the value received.
    """

    epochs: int = 50
    batch_size: int = 64
    seq_len: int = 256
    learning_rate: float = 3e-3
    clipnorm: float | None = 1.0
    patience: int | None = 4
    transpose: int = 0
    seed: int = 0
    strategy: str = "default"
    steps_per_epoch: int | None = None
    max_minutes: float | None = 10.0

    what: ClassVar[str] = "train config"

    def __post_init__(self):
        check = self._require

        check(is_int(self.epochs) and self.epochs >= 1, "epochs", "an integer >= 1")
        check(is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "an integer >= 1")
        check(is_int(self.seq_len) and self.seq_len >= 2, "seq_len", "an integer >= 2")
        check(is_real(self.learning_rate) and 0 < self.learning_rate < math.inf, "learning_rate", "a number > 0")
        check(
            self.clipnorm is None or (is_real(self.clipnorm) and 0 < self.clipnorm < math.inf),
            "clipnorm",
            "a number > 0 or None",
        )
        check(
            self.patience is None or (is_int(self.patience) and self.patience >= 1),
            "patience",
            "an integer >= 1 or None",
        )
        check(is_int(self.transpose) and 0 <= self.transpose <= 24, "transpose", "an integer in [0, 24]")
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


def default_model_config(data: PreparedData) -> ModelConfig:
    """A model size that suits the amount of training data, for a run of minutes on a laptop CPU.

    The project's default network (`ModelConfig()`: 2 x 128 LSTM with causal self-attention, the shape of the
    bundled default model) suits a collection of thousands of tunes; on less data a network with fewer units and
    more dropout overfits less. Thresholds count training steps (tokens):

    - under 30,000 (a few dozen tunes): 2 x 96 units, dropout 0.3;
    - under 300,000 (a few hundred tunes): 2 x 128 units, dropout 0.2;
    - otherwise `ModelConfig()` (2 x 128, dropout 0.1).

    Every size keeps the attention layer: tunes repeat bars and phrases, and a model that can look back wins
    (`benchmarks/results/model_comparison.json`). `vocab_size` is the data's.
    """
    steps = int(data.lengths[data.indices("train")].sum())
    vocab = data.config.vocab_size
    if steps < 30_000:
        return ModelConfig(units=96, embedding_dim=32, dropout=0.3, vocab_size=vocab)
    if steps < 300_000:
        return ModelConfig(units=128, embedding_dim=48, dropout=0.2, vocab_size=vocab)
    return ModelConfig(vocab_size=vocab)


@dataclass
class TrainResult:
    """What `train` did.

    Attributes:
        run_dir: the run folder.
        latest_path, best_path: the bundles (`best_path` is None when no epoch finished).
        epochs: epochs done in all, including those of earlier sessions of a resumed run.
        best_epoch: the epoch whose bundle is `best.melodyrnn` (0: a fine-tuned run's starting model, which no
            epoch beat), or None.
        best_val_loss: its validation NLL per step (nats), or its training loss when there is no validation split.
        history: one dict per epoch (the columns of log.csv), from epoch 0 (the starting model, validation
            columns only) when there is a validation split.
        stopped: "completed", "early_stopping", "time_budget" or "nothing_to_do" (a resumed run already done).
        seconds: wall time of this session.
        replicas: devices the batches were split across.
        model: the model in memory as training left it (the state of `latest.melodyrnn`).
        baselines: the validation NLL of the untouched bundled default model (`bundled_default`, None with a
            `bundled_default_note` when it reads another encoding) and of a 6-gram fit on the training split
            (`ngram_6`), on the same melodies; empty without a validation split.
    """

    run_dir: Path
    latest_path: Path
    best_path: Path | None
    epochs: int
    best_epoch: int | None
    best_val_loss: float | None
    history: list[dict] = field(default_factory=list)
    stopped: str = "completed"
    seconds: float = 0.0
    replicas: int = 1
    model: Any = field(default=None, repr=False)
    baselines: dict = field(default_factory=dict)

    def summary(self) -> str:
        """The summary table of every epoch, one line on how the run ended and one on the baselines' val loss."""
        baselines = format_baselines(self.baselines)
        return (
            format_history(self.history, self.best_epoch)
            + (
                f"\nstopped: {self.stopped}; best epoch {self.best_epoch} (val loss {self.best_val_loss:.4f}) in "
                f"{self.best_path}"
                if self.best_epoch is not None
                else f"\nstopped: {self.stopped}"
            )
            + (f"\n{baselines}" if baselines else "")
        )


# ----------------------------------------------------------------------------------------------------------
# Data


def _resolve_data(data, cache: Path | None, progress: bool) -> tuple[PreparedData, str]:
    # `cache`: where a MIDI folder's prepared data is kept; None prepares it in memory (a worker, not the chief).
    if isinstance(data, PreparedData):
        return data, "<in memory>"
    if not isinstance(data, (str, os.PathLike)):
        raise DataError(
            f"`data` must be PreparedData, a prepared cache or a folder of MIDI files, got {type(data).__name__}"
        )
    path = Path(data)
    if path.is_file():
        return PreparedData.load(path), str(path)
    if not path.is_dir():
        raise DataError(f"`{path}` is neither a prepared cache (.npz) nor a folder of MIDI files")
    if cache is not None and cache.is_file():
        cached = PreparedData.load(cache)
        if cached.report.root == str(path):
            return cached, str(path)
    return prepare(path, cache, progress=None if progress else False), str(path)


def _data_metadata(data: PreparedData, source: str) -> dict:
    return {
        "source": source,
        "train_melodies": int(data.indices("train").size),
        "validation_melodies": int(data.indices("validation").size),
        "train_steps": int(data.lengths[data.indices("train")].sum()),
        "validation_fraction": data.validation_fraction,
        "report": data.report.to_dict(),
    }


def _check_data_fits(data: PreparedData, encoding, model) -> None:
    if data.config != encoding:
        raise DataError(f"the data was encoded with {data.config}, but the model expects {encoding}")
    if model.config.lookback:  # now, not when the first validation finds a bar the model cannot take
        check_steps_per_bar(data.steps_per_bar, model.config.max_steps_per_bar)


def _validation_melodies(data: PreparedData) -> tuple[list, list]:
    # The melodies each epoch is scored on, whole, and their bar lengths.
    indices = [i for i in data.indices("validation") if data.lengths[i] >= 2]
    return [data.melody_tokens(i) for i in indices], data.steps_per_bar[indices].tolist()


def _training_windows(data: PreparedData, config: TrainConfig, model, initial_epoch: int):
    def windows(drop_remainder):
        # lookback models get each melody's bar length, and windows that start on its bar lines
        return data.dataset(
            config.seq_len,
            config.batch_size,
            split="train",
            transpose=config.transpose,
            seed=config.seed + initial_epoch,
            drop_remainder=drop_remainder,
            with_bars=model.config.lookback,
            max_steps_per_bar=model.config.max_steps_per_bar,
        )

    # A last, smaller batch would be traced and compiled again (once per replica when mirrored) for a few
    # windows, which the next epoch's shuffle brings back anyway; keep it only when it is all there is.
    dataset = windows(True)
    if int(dataset.cardinality()) == 0:
        dataset = windows(False)
    if config.steps_per_epoch is not None:
        dataset = dataset.repeat()
    return distribute.shard_batches(dataset, config.strategy)


# ----------------------------------------------------------------------------------------------------------
# The model: new, fine-tuned from a bundle, or resumed


def _compile(model, config: TrainConfig) -> None:
    # Only Keras's own loss, optimizer and metric: a bundle's compile config must load in safe mode anywhere.
    # The melody metrics are computed by _RunCallback on whole validation melodies instead.
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=config.clipnorm),
        # mean over real steps: padded steps have weight 0 and must not dilute the loss
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        # measured: XLA on the whole model made CPU training slower; the recurrent layers compile their own loops.
        jit_compile=False,
    )


def _new_model(data: PreparedData, model_config: ModelConfig | dict | None, config: TrainConfig):
    encoding = data.config
    model_cfg = replace(_merge(ModelConfig, default_model_config(data), model_config), vocab_size=encoding.vocab_size)
    model = build_model(model_cfg)
    _compile(model, config)
    return model, encoding


def _fine_tune_model(from_bundle: str | os.PathLike, config: TrainConfig):
    bundle = load_bundle(from_bundle, compile=False)
    _compile(bundle.model, config)  # a fresh optimizer
    return bundle.model, bundle.encoding


def _resumed_model(
    latest: Path, model_config: ModelConfig | dict | None, config: TrainConfig, saved_learning_rate: float
):
    bundle = load_bundle(latest, compile=True)
    model = bundle.model
    if model_config is not None and _merge(ModelConfig, bundle.model_config, model_config) != model.config:
        raise MelodyRNNError(
            "the model config cannot change when resuming; leave it out (or start a new "
            "run with from_bundle to fine-tune)"
        )
    if getattr(model, "optimizer", None) is None or not model.compiled:
        _compile(model, config)
    elif config.learning_rate != saved_learning_rate:
        model.optimizer.learning_rate.assign(config.learning_rate)
    return model, bundle.encoding


# ----------------------------------------------------------------------------------------------------------
# train()


def _merge(config_cls, base, overrides):
    if overrides is None:
        return base
    if isinstance(overrides, config_cls):
        return overrides
    if isinstance(overrides, dict):
        return config_cls.from_dict({**base.to_dict(), **overrides})
    raise MelodyRNNError(
        f"expected a {config_cls.__name__}, a dict of its fields or None, got {type(overrides).__name__}"
    )


def train(
    data: PreparedData | str | os.PathLike,
    run_dir: str | os.PathLike,
    model_config: ModelConfig | dict | None = None,
    train_config: TrainConfig | dict | None = None,
    *,
    resume: bool = False,
    from_bundle: str | os.PathLike | None = None,
    callbacks: list | None = None,
    progress: bool = True,
) -> TrainResult:
    """Trains a melody model and keeps its run folder up to date after every epoch.

    The run folder holds `latest.melodyrnn` and `best.melodyrnn` (bundles: weights, optimizer state, configs and
    the run's metadata, all written atomically), `train_state.json` (epoch, best epoch, patience counter),
    `log.csv` (one row per epoch), `tensorboard/` and, when `data` is a MIDI folder, `data.npz` (its cache).

    Each epoch is validated on whole validation melodies (NLL per step in nats, the number `melodyrnn evaluate`
    prints), which is the loss that early stopping watches and that picks `best.melodyrnn`. A new run scores its
    starting model first, as epoch 0; fine-tuned, that model is the first `best.melodyrnn`, kept unless an epoch
    beats it. A new run also scores, once, the bundled default model and a 6-gram fit on the training split on
    the same melodies (`TrainResult.baselines`, kept in the bundles' metadata), so the summary shows whether
    training helped.

    Args:
        data: a `PreparedData`, the path of a prepared cache (`.npz`), or a folder of MIDI files (prepared into
            `run_dir/data.npz` with a 10% validation split by file).
        run_dir: the run folder; created if needed. A folder that already holds a run needs `resume=True`.
        model_config: a `ModelConfig`, a dict of fields to change from `default_model_config(data)`, or None
            for `default_model_config(data)`. Its `vocab_size` is taken from the data. Ignored with
            `from_bundle`; must be None or unchanged with `resume`.
        train_config: a `TrainConfig`, or a dict of fields to change from the defaults (from the run's own
            config with `resume`), or None.
        resume: continue the run in `run_dir` from `latest.melodyrnn`: same model, optimizer state, epoch count,
            best epoch and patience counter.
        from_bundle: fine-tune: start from this bundle's weights (and model config) with a fresh optimizer.
        callbacks: extra Keras callbacks; they see the validation metrics in `logs`.
        progress: show Keras's progress bar (one line per epoch when stdout is not a terminal).

    Returns:
        A `TrainResult`; `.summary()` is the table `melodyrnn train` prints.

    Raises:
        DataError: unusable data, data of another vocabulary than the model's, or an empty training split.
        BundleError: an unreadable `latest.melodyrnn` (resume) or `from_bundle`.
        MelodyRNNError: bad configs, a run folder that already holds a run (without `resume`), `resume` with
            nothing to resume, `resume` together with `from_bundle`, or `strategy="multiworker"` without a usable
            TF_CONFIG or after TensorFlow already ran in this process.

    Example:
        >>> result = train("my_midis/", "run")                          # minutes on a laptop CPU
        >>> result = train("run/data.npz", "run", train_config={"epochs": 80}, resume=True)
        >>> print(result.summary())
    """
    session_start = time.perf_counter()
    run_dir = Path(run_dir)
    saved_state = check_run_folder(run_dir, resume, from_bundle)
    saved_config = TrainConfig.from_dict(saved_state["train_config"]) if saved_state else TrainConfig()
    config = _merge(TrainConfig, saved_config, train_config)
    # Only the chief of a multi-worker run writes the run folder; the others must never clobber its files.
    is_chief = distribute.is_chief(config.strategy)
    created = is_chief and not run_dir.exists()
    if is_chief:
        open_run_folder(run_dir)
    try:
        data, data_source = _resolve_data(data, run_dir / DATA if is_chief else None, progress)
        if data.indices("train").size == 0:
            raise DataError("the training split has no melodies")

        strategy = distribute.make_strategy(config.strategy)  # before any other TensorFlow work: multiworker needs that
        keras.utils.set_random_seed(config.seed + (saved_state["epoch"] if saved_state else 0))
        with strategy.scope():
            if resume:
                model, encoding = _resumed_model(run_dir / LATEST, model_config, config, saved_config.learning_rate)
            elif from_bundle is not None:
                model, encoding = _fine_tune_model(from_bundle, config)
            else:
                model, encoding = _new_model(data, model_config, config)
        _check_data_fits(data, encoding, model)

        val_tokens, val_bars = _validation_melodies(data)
        state = initial_state(run_dir, saved_state, config, strategy, bool(val_tokens), from_bundle)
        base_metadata = {"data": _data_metadata(data, data_source)}
        initial_epoch = state["epoch"]
        if initial_epoch >= config.epochs:
            return _result(run_dir, state, "nothing_to_do", session_start, strategy, model)
        if not saved_state and val_tokens:  # once per run: a resumed run carries them over
            train_tokens = [data.melody_tokens(i) for i in data.indices("train")]
            state["baselines"] = score_baselines(train_tokens, val_tokens, val_bars, encoding)

        dataset = _training_windows(data, config, model, initial_epoch)
        run_callback = RunCallback(
            run_dir=run_dir,
            encoding=encoding,
            train_config=config,
            val_tokens=val_tokens,
            val_bars=val_bars,
            state=state,
            base_metadata=base_metadata,
            is_chief=is_chief,
            session_start=session_start,
            start_may_be_best=from_bundle is not None,
        )
        _fit(model, strategy, dataset, config, initial_epoch, [run_callback, *(callbacks or [])], progress)
        return _result(run_dir, state, run_callback.stopped, session_start, strategy, model)
    except BaseException:
        if created and not (run_dir / LATEST).exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # a run that never saved an epoch leaves no folder behind
        raise


def _fit(model, strategy, dataset, config: TrainConfig, initial_epoch: int, callbacks: list, progress: bool) -> None:
    verbose = (1 if sys.stdout.isatty() else 2) if progress else 0
    with distribute.fit_context(config.strategy, model, strategy, dataset.element_spec):
        model.fit(
            dataset,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=config.steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,
        )  # the dataset shuffles itself


def _result(run_dir: Path, state: dict, stopped: str, session_start: float, strategy, model) -> TrainResult:
    best = state["best"]
    best_path = run_dir / BEST
    return TrainResult(
        run_dir=run_dir,
        latest_path=run_dir / LATEST,
        best_path=best_path if best_path.is_file() else None,
        epochs=state["epoch"],
        best_epoch=best["epoch"],
        best_val_loss=best["val_loss"],
        history=list(state["history"]),
        stopped=stopped,
        seconds=time.perf_counter() - session_start,
        replicas=int(strategy.num_replicas_in_sync),
        model=model,
        baselines=dict(state.get("baselines") or {}),
    )
