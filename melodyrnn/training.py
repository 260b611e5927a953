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
from typing import Any

import keras
import numpy as np

from melodyrnn import distribute
from melodyrnn.baselines import format_baselines, score_baselines
from melodyrnn.bundle import load_bundle
from melodyrnn.conditioning import prepared_conditions
from melodyrnn.dataset import PreparedData, prepare
from melodyrnn.encoding import NUM_SPECIAL
from melodyrnn.errors import DataError, MelodyRNNError
from melodyrnn.model import ModelConfig, build_model
from melodyrnn.planning import Plan, Start, TrainConfig, choose_start, default_model_config, plan_run
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
from melodyrnn.warm_start import add_conditions

__all__ = ["TrainConfig", "TrainResult", "train", "default_model_config"]


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
        start: where the run started (`from`: a bundle path or None for scratch) and why (`reason`).
        plan: the planned budget and settings (`melodyrnn.planning.Plan.to_dict()`), with a line per decision in
            `notes`.
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
    start: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)

    def setup_lines(self) -> list[str]:
        """Where the run started and why, and its planned budget: what `train` prints before the first update."""
        return setup_lines(self.start, self.plan)

    def summary(self) -> str:
        """Where the run started, its budget, the table of every epoch, how it ended and the baselines' val loss."""
        baselines = format_baselines(self.baselines)
        setup = "\n".join(self.setup_lines())
        return (
            (setup + "\n" if setup else "")
            + format_history(self.history, self.best_epoch)
            + (
                f"\nstopped: {self.stopped}; best epoch {self.best_epoch} (val loss {self.best_val_loss:.4f}) in "
                f"{self.best_path}"
                if self.best_epoch is not None
                else f"\nstopped: {self.stopped}"
            )
            + (f"\n{baselines}" if baselines else "")
        )


def setup_lines(start: dict | None, plan: dict | None) -> list[str]:
    """`start: ...` and one line per planning decision, from a run state's `start` and `plan` (absent in runs
    from before they were kept)."""
    lines = [f"start: {start['reason']}"] if isinstance(start, dict) and start.get("reason") else []
    notes = plan.get("notes") if isinstance(plan, dict) else None
    return lines + [str(n) for n in notes] if isinstance(notes, list) else lines


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
    train = data.indices("train")
    firsts = data.tokens[data.offsets[train][data.lengths[train] > 0]]
    return {
        "source": source,
        # how many training melodies open with silence before their first note (a pickup): the sampler opens
        # that share of unprimed melodies the same way (`SampleConfig.pickup`)
        "pickup_share": round(float(np.mean(firsts < NUM_SPECIAL)), 4) if firsts.size else 0.0,
        "train_melodies": int(train.size),
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


def _validation_conditions(data: PreparedData) -> list:
    # each validation melody's meter and chords, in `_validation_melodies`' order (for conditioned models)
    every, offsets = prepared_conditions(data), data.offsets
    return [every[offsets[i] : offsets[i + 1]] for i in data.indices("validation") if data.lengths[i] >= 2]


def _training_windows(data: PreparedData, config: TrainConfig, plan: Plan, model, initial_epoch: int):
    def windows(drop_remainder):
        # lookback models get each melody's bar length, and windows that start on its bar lines
        return data.dataset(
            config.seq_len,
            config.batch_size,
            split="train",
            transpose=plan.transpose,
            seed=config.seed + initial_epoch,
            drop_remainder=drop_remainder,
            with_bars=model.config.lookback,
            with_conditions=model.config.conditioned,  # meter- or chord-aware models read each step's
            max_steps_per_bar=model.config.max_steps_per_bar,
        )

    # A last, smaller batch would be traced and compiled again (once per replica when mirrored) for a few
    # windows, which the next epoch's shuffle brings back anyway; keep it only when it is all there is.
    dataset = windows(True)
    if int(dataset.cardinality()) == 0:
        dataset = windows(False)
    # Budgets count updates: the windows repeat, each pass reshuffled and freshly transposed.
    return distribute.shard_batches(dataset.repeat(), config.strategy)


# ----------------------------------------------------------------------------------------------------------
# The model: new, fine-tuned from a bundle, or resumed


def _compile(model, config: TrainConfig, learning_rate: float) -> None:
    # Only Keras's own loss, optimizer and metric: a bundle's compile config must load in safe mode anywhere.
    # The melody metrics are computed by _RunCallback on whole validation melodies instead.
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=config.clipnorm),
        # mean over real steps: padded steps have weight 0 and must not dilute the loss
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        # measured: XLA on the whole model made CPU training slower; the recurrent layers compile their own loops.
        jit_compile=False,
    )


def _new_model(data: PreparedData, model_config: ModelConfig | dict | None):
    encoding = data.config
    model_cfg = replace(_merge(ModelConfig, default_model_config(data), model_config), vocab_size=encoding.vocab_size)
    return build_model(model_cfg), encoding


def _freeze(model, layers: int) -> None:
    # The embedding, then the recurrent layers from the bottom: what a bundle learnt about notes and their order.
    if layers > 0:
        model.embedding.trainable = False
    for layer in model.recurrent[: max(0, layers - 1)]:
        layer.trainable = False


def _resumed_model(latest: Path, model_config: ModelConfig | dict | None, config: TrainConfig, plan: Plan):
    bundle = load_bundle(latest, compile=True)
    model = bundle.model
    if model_config is not None and _merge(ModelConfig, bundle.model_config, model_config) != model.config:
        raise MelodyRNNError(
            "the model config cannot change when resuming; leave it out (or start a new "
            "run with from_bundle to fine-tune)"
        )
    _freeze(model, config.freeze)
    if config.freeze or getattr(model, "optimizer", None) is None or not model.compiled:
        _compile(model, config, plan.learning_rate)  # freezing changes what the optimizer updates
    else:
        model.optimizer.learning_rate.assign(plan.learning_rate)
    return model, bundle.encoding


class _Schedule(keras.callbacks.Callback):
    """Sets the learning rate before every update from the optimizer's own update count (so a resumed run picks
    up where it was): a linear rise from 0 over `warmup` updates, then constant or, with `cosine`, a half-cosine
    down to a tenth of it at the run's last planned update."""

    def __init__(self, learning_rate: float, warmup: int, cosine: bool, total: int):
        super().__init__()
        self.learning_rate, self.warmup, self.cosine, self.total = learning_rate, warmup, cosine, max(total, 1)

    def rate(self, done: int) -> float:
        if done < self.warmup:
            return self.learning_rate * (done + 1) / self.warmup
        if not self.cosine:
            return self.learning_rate
        progress = min(1.0, (done - self.warmup) / max(self.total - self.warmup, 1))
        return self.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))

    def on_train_batch_begin(self, batch, logs=None):
        done = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if self.cosine or done <= self.warmup:
            self.model.optimizer.learning_rate.assign(self.rate(done))


# ----------------------------------------------------------------------------------------------------------
# train()


def _changes(model_config: ModelConfig | dict) -> dict:
    return model_config.to_dict() if isinstance(model_config, ModelConfig) else dict(model_config)


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
    from_scratch: bool = False,
    callbacks: list | None = None,
    progress: bool = True,
    task: str = "melody",
) -> TrainResult:
    """Trains a melody model and keeps its run folder up to date after every epoch.

    The run folder holds `latest.melodyrnn` and `best.melodyrnn` (bundles: weights, optimizer state, configs and
    the run's metadata, all written atomically), `train_state.json` (epoch, best epoch, patience counter),
    `log.csv` (one row per epoch), `tensorboard/` and, when `data` is a MIDI folder, `data.npz` (its cache).

    Where a new run starts is chosen from the data (`melodyrnn.planning.choose_start`): a small collection whose
    encoding fits the bundled default model fine-tunes it; anything else, or any `model_config`, trains a new
    model. Its budget, in updates, and settings are planned from the data too (`plan_run`). Both reasons are
    printed (with `progress`), kept in the run's metadata and returned in `TrainResult.start`/`.plan`.

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
            for `default_model_config(data)`. Its `vocab_size` is taken from the data. Giving one trains a new
            model (from scratch), must be None or unchanged with `resume`, and with `from_bundle` may only turn on
            conditions (``{"condition_meter": True, "condition_chords": True}``): a warm start
            (`melodyrnn.warm_start.add_conditions`), which starts out predicting exactly what the bundle did.
        train_config: a `TrainConfig`, or a dict of fields to change from the defaults (from the run's own
            config with `resume`), or None.
        resume: continue the run in `run_dir` from `latest.melodyrnn`: same model, optimizer state, epoch count,
            best epoch and patience counter.
        from_bundle: fine-tune: start from this bundle's weights (and model config) with a fresh optimizer.
        from_scratch: train a new model even where fine-tuning the bundled model would be chosen.
        callbacks: extra Keras callbacks; they see the validation metrics in `logs`.
        progress: show Keras's progress bar (one line per epoch when stdout is not a terminal).
        task: "melody", or "harmonize" to train a harmonizer instead (`harmonizer_training.train_harmonizer`:
            `model_config` and `train_config` are then dicts of its arguments, such as ``{"units": 64}`` and
            ``{"updates": 600}``, and it returns the `Harmonizer`).

    Returns:
        A `TrainResult`; `.summary()` is the table `melodyrnn train` prints.

    Raises:
        DataError: unusable data, data of another vocabulary than the model's, or an empty training split.
        BundleError: an unreadable `latest.melodyrnn` (resume) or `from_bundle`.
        MelodyRNNError: bad configs, a run folder that already holds a run (without `resume`), `resume` with
            nothing to resume, `resume` together with `from_bundle`, or `strategy="multiworker"` without a usable
            TF_CONFIG or after TensorFlow already ran in this process, `from_bundle` with `from_scratch` or with
            a `model_config` that changes more than the conditions.

    Example:
        >>> result = train("my_midis/", "run")                          # minutes on a laptop CPU
        >>> result = train("run/data.npz", "run", train_config={"epochs": 80}, resume=True)
        >>> print(result.summary())
    """
    if task != "melody":
        return _train_other_task(task, data, run_dir, model_config, train_config, resume or from_bundle, progress)
    session_start = time.perf_counter()
    run_dir = Path(run_dir)
    if resume and from_scratch:
        raise MelodyRNNError("`resume` and `from_scratch` exclude each other: resume continues this run")
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
        if saved_state:
            tuned = saved_state.get("fine_tuned_from")
            start = Start(Path(tuned) if tuned else None, str((saved_state.get("start") or {}).get("reason", "")))
        elif model_config is not None and from_bundle is None and not from_scratch:
            start = Start(None, "from scratch: a model config was given (a new model of that shape)")
        else:
            start = choose_start(data, from_bundle, from_scratch)
        windows = data.num_windows("train", config.seq_len)
        plan = plan_run(data, config, start.fine_tune, windows)
        with strategy.scope():
            if resume:
                model, encoding = _resumed_model(run_dir / LATEST, model_config, config, plan)
            else:
                if start.bundle is not None:
                    bundle = load_bundle(start.bundle, compile=False)
                    model, encoding = bundle.model, bundle.encoding
                    if model_config is not None:  # a warm start: the bundle's model, reading new conditions
                        model = add_conditions(model, **_changes(model_config))
                else:
                    model, encoding = _new_model(data, model_config)
                _freeze(model, config.freeze)
                _compile(model, config, plan.learning_rate)  # a fresh optimizer
        _check_data_fits(data, encoding, model)

        val_tokens, val_bars = _validation_melodies(data)
        state = initial_state(run_dir, saved_state, config, strategy, bool(val_tokens), start.bundle)
        state.update(start=start.to_dict(), plan=plan.to_dict())
        if progress and is_chief and not saved_state:
            print("\n".join(setup_lines(state["start"], state["plan"])), flush=True)
        base_metadata = {"data": _data_metadata(data, data_source)}
        initial_epoch = state["epoch"]
        if initial_epoch >= plan.rounds:
            return _result(run_dir, state, "nothing_to_do", session_start, strategy, model)
        if not saved_state and val_tokens:  # once per run: a resumed run carries them over
            train_tokens = [data.melody_tokens(i) for i in data.indices("train")]
            state["baselines"] = score_baselines(train_tokens, val_tokens, val_bars, encoding)

        dataset = _training_windows(data, config, plan, model, initial_epoch)
        run_callback = RunCallback(
            run_dir=run_dir,
            encoding=encoding,
            train_config=replace(config, patience=plan.patience),
            val_tokens=val_tokens,
            val_bars=val_bars,
            state=state,
            base_metadata=base_metadata,
            is_chief=is_chief,
            session_start=session_start,
            start_may_be_best=start.fine_tune,
            val_conditions=_validation_conditions(data) if model.config.conditioned and val_tokens else None,
        )
        cosine = config.schedule == "cosine"
        schedule = [_Schedule(plan.learning_rate, plan.warmup_updates, cosine, plan.updates)]
        callbacks = [*(schedule if plan.warmup_updates or cosine else []), run_callback, *(callbacks or [])]
        _fit(model, strategy, dataset, config.strategy, plan, initial_epoch, callbacks, progress)
        return _result(run_dir, state, run_callback.stopped, session_start, strategy, model)
    except BaseException:
        if created and not (run_dir / LATEST).exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # a run that never saved an epoch leaves no folder behind
        raise


def _train_other_task(task, data, run_dir, model_config, train_config, continued, progress):
    """`train(task="harmonize")`: the harmonizer's own training, with its arguments from the two config dicts."""
    if task != "harmonize":
        raise MelodyRNNError(f"`task` must be 'melody' or 'harmonize', got {task!r}")
    if continued:
        raise MelodyRNNError("a harmonizer run cannot `resume` or start `from_bundle`: it trains a new model")
    if not all(isinstance(c, (dict, type(None))) for c in (model_config, train_config)):
        raise MelodyRNNError("with task='harmonize', `model_config` and `train_config` must be dicts or None")
    from melodyrnn.harmonizer_training import train_harmonizer

    return train_harmonizer(data, run_dir, progress=progress, **(model_config or {}), **(train_config or {}))


def _fit(model, strategy, dataset, name: str, plan: Plan, initial_epoch: int, callbacks: list, progress: bool) -> None:
    verbose = (1 if sys.stdout.isatty() else 2) if progress else 0
    with distribute.fit_context(name, model, strategy, dataset.element_spec):
        model.fit(
            dataset,
            epochs=plan.rounds,
            initial_epoch=initial_epoch,
            steps_per_epoch=plan.updates_per_round,
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
        start=dict(state.get("start") or {}),
        plan=dict(state.get("plan") or {}),
    )
