"""A training run's folder: its file names, the per-epoch callback that validates and writes it, and readers.

The folder holds `latest.melodyrnn` (every epoch) and `best.melodyrnn` (on improvement; a fine-tuned run's
starting model until an epoch beats it) — bundles whose metadata carry the whole run state, so a run resumes from
its latest bundle alone — plus `train_state.json`, `log.csv` and TensorBoard scalars, all written atomically.
Start with `RunCallback` (used by `melodyrnn.training.train`) and `read_run`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import keras

from melodyrnn import distribute
from melodyrnn.bundle import read_bundle_metadata, save_bundle
from melodyrnn.errors import MelodyRNNError
from melodyrnn.evaluation import score_token_lists, summarize
from melodyrnn.files import atomic_write, atomic_write_text

if TYPE_CHECKING:
    from melodyrnn.training import TrainConfig

__all__ = [
    "LATEST",
    "BEST",
    "STATE",
    "LOG",
    "TENSORBOARD",
    "DATA",
    "RunCallback",
    "format_history",
    "read_run",
    "check_run_folder",
    "initial_state",
    "open_run_folder",
]

LATEST = "latest.melodyrnn"
BEST = "best.melodyrnn"
STATE = "train_state.json"
LOG = "log.csv"
TENSORBOARD = "tensorboard"
DATA = "data.npz"
# The columns of log.csv and of the summary table, in order.
_COLUMNS = (
    "epoch",
    "loss",
    "perplexity",
    "accuracy",
    "val_loss",
    "val_perplexity",
    "val_accuracy",
    "val_event_accuracy",
    "val_no_event_accuracy",
    "learning_rate",
    "seconds",
)


def format_history(history: list[dict], best_epoch: int | None = None) -> str:
    """A fixed-width table: epoch, loss, val loss, val perplexity, val accuracy, val event accuracy, seconds.

    The best epoch is marked `*`, a partial one `~`; a missing number (epoch 0, the starting model scored before
    any training, has no training loss) shows as `-`.
    """
    header = f"{'epoch':>6} {'loss':>8} {'val loss':>9} {'val ppl':>8} {'val acc':>8} {'val ev acc':>10} {'time':>8}"
    lines = [header, "-" * len(header)]

    def num(row, key, width, digits):
        value = row.get(key)
        return (
            f"{value:{width}.{digits}f}"
            if isinstance(value, (int, float)) and value == value
            else " " * (width - 1) + "-"
        )

    for row in history:
        mark = "*" if row.get("epoch") == best_epoch else " "
        partial = "~" if row.get("partial") else " "
        lines.append(
            f"{row['epoch']:>5}{mark} {num(row, 'loss', 8, 4)} {num(row, 'val_loss', 9, 4)} "
            f"{num(row, 'val_perplexity', 8, 3)} {num(row, 'val_accuracy', 8, 3)} "
            f"{num(row, 'val_event_accuracy', 10, 3)} {num(row, 'seconds', 7, 1)}s{partial}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Run folder


def _atomic_copy(source: Path, target: Path) -> None:
    def write(out) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)

    atomic_write(target, write)


def read_run(run_dir: str | os.PathLike) -> dict:
    """The state of a run folder, from its latest bundle: `epoch`, `history`, `best`, `train_config`, ...

    Raises:
        MelodyRNNError: the folder holds no readable `latest.melodyrnn`.
    """
    metadata = read_bundle_metadata(Path(run_dir) / LATEST)
    if metadata is None or "training" not in metadata:
        raise MelodyRNNError(f"`{run_dir}` holds no training run (no readable {LATEST})")
    state = metadata["training"]
    problem = _state_problem(state)
    if problem:
        raise MelodyRNNError(f"`{run_dir}` holds a run whose training state in {LATEST} is unusable: {problem}")
    return state


def _state_problem(state) -> str | None:
    """What makes a run state (as the bundles keep it, possibly hand-edited) unusable for resuming, or None."""
    if not isinstance(state, dict):
        return f"it is a {type(state).__name__}, not a dict"
    expected = {"epoch": int, "history": list, "best": dict, "epochs_without_improvement": int, "monitor": str,
                "train_config": dict}  # fmt: skip
    for key, kind in expected.items():
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"`{key}` must be a {kind.__name__}, got {value!r}"[:200]
    if state["epoch"] < 0 or state["monitor"] not in ("val_loss", "loss"):
        return f"`epoch` {state['epoch']!r} or `monitor` {state['monitor']!r} is out of range"
    if not all(isinstance(row, dict) and isinstance(row.get("epoch"), int) for row in state["history"]):
        return "`history` must be a list of rows, each with its `epoch`"
    best = state["best"].get("val_loss")
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))):
        return f"`best.val_loss` must be a number or null, got {best!r}"
    return None


class _ScalarLog:
    """TensorBoard scalars (`train/` and `validation/`, named like Keras's `epoch_loss`), written with TensorFlow's
    core summary ops, so no `tensorboard` package is needed to write them (only to view them)."""

    def __init__(self, folder: Path):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self._tf = tf
        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        )
        self._writers = {name: tf.summary.create_file_writer(str(folder / name)) for name in ("train", "validation")}

    def write(self, row: dict, step: int) -> None:
        for key, value in row.items():
            if key in ("epoch", "partial", "seconds") or not isinstance(value, float) or value != value:
                continue
            name, key = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writers[name].as_default():
                self._tf.summary.write(
                    f"epoch_{key}", self._tf.constant(value, self._tf.float32), step=step, metadata=self._metadata
                )
        for writer in self._writers.values():
            writer.flush()


def _write_log(path: Path, history: list[dict]) -> None:
    # Rewritten whole from the bundle's history each epoch, so the log always agrees with the checkpoint,
    # however the previous session ended.
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*_COLUMNS, "partial"], extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in (*_COLUMNS, "partial")})
    atomic_write_text(path, buf.getvalue())


def check_run_folder(run_dir: Path, resume: bool, from_bundle) -> dict | None:
    # The state of the run to resume (None without `resume`), once the folder is known to suit the request.
    if resume and from_bundle is not None:
        raise MelodyRNNError(
            "`resume` and `from_bundle` exclude each other: resume continues this run, from_bundle starts a new one"
        )
    latest = run_dir / LATEST
    if resume and not latest.is_file():
        raise MelodyRNNError(f"`resume` needs a run to continue, but `{run_dir}` holds no {LATEST}")
    if not resume and latest.exists():
        raise MelodyRNNError(
            f"`{run_dir}` already holds a run ({LATEST}); resume it (--resume) or choose another folder"
        )
    return read_run(run_dir) if resume else None


def initial_state(
    run_dir: Path, saved_state: dict | None, config: TrainConfig, strategy, has_validation: bool, from_bundle
) -> dict:
    """The run's progress as the bundles' metadata keeps it: carried over from `saved_state` (`read_run`'s) when
    resuming, else a new run's (epoch 0, nothing best yet, the loss to monitor, no baselines scored yet)."""
    if saved_state:
        state = {k: saved_state[k] for k in ("epoch", "history", "best", "epochs_without_improvement", "monitor")}
        # best.melodyrnn is copied after latest is written: trust what the best file itself says it holds.
        best_meta = read_bundle_metadata(run_dir / BEST)
        state["best"] = (best_meta or {}).get("training", {}).get("best") or {"epoch": None, "val_loss": None}
        fine_tuned_from = saved_state.get("fine_tuned_from")
        baselines = saved_state.get("baselines")  # absent in a run from before baselines were kept
        state["baselines"] = baselines if isinstance(baselines, dict) else {}
    else:
        state = {
            "epoch": 0,
            "history": [],
            "best": {"epoch": None, "val_loss": None},
            "epochs_without_improvement": 0,
            "monitor": "val_loss" if has_validation else "loss",
            "baselines": {},
        }
        fine_tuned_from = str(from_bundle) if from_bundle is not None else None
    state.update(
        train_config=config.to_dict(),
        fine_tuned_from=fine_tuned_from,
        stopped=None,
        strategy={"name": config.strategy, "replicas": int(strategy.num_replicas_in_sync)},
    )
    return state


def open_run_folder(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob(".*.tmp"):  # left by a kill in the middle of an atomic write
        stale.unlink(missing_ok=True)


def _validation_columns(model, val_tokens: list, val_bars: list, val_conditions: list | None = None) -> dict:
    # The validation melodies scored whole, as `melodyrnn evaluate` scores them: the val_* columns of a row.
    scores = score_token_lists(model, val_tokens, steps_per_bar=val_bars, conditions=val_conditions)
    metrics = summarize(val_tokens, scores)
    return {
        "val_loss": metrics["nll_per_step"],
        "val_perplexity": metrics["perplexity"],
        "val_accuracy": metrics["accuracy"],
        "val_event_accuracy": metrics["event_accuracy"],
        "val_no_event_accuracy": metrics["no_event_accuracy"],
    }


class RunCallback(keras.callbacks.Callback):
    """After every epoch: score the validation melodies whole, update the run state (history, best, patience),
    stop on the time budget or early stopping (decided across workers), and write the run folder.

    A fresh run with validation melodies also scores the starting model before the first update, as epoch 0 of
    its history. With `start_may_be_best` (fine-tuning) epoch 0 is the first best and `best.melodyrnn` is written
    at once, so a run in which no epoch improves on the starting bundle keeps it; a model trained from scratch
    starts from random weights, which are never worth keeping, so its first real epoch is its first best.
    Patience counts the epochs after 0.
    """

    def __init__(
        self,
        *,
        run_dir: Path,
        encoding,
        train_config: TrainConfig,
        val_tokens: list,
        val_bars: list,
        state: dict,
        base_metadata: dict,
        is_chief: bool,
        session_start: float,
        start_may_be_best: bool = False,
        val_conditions: list | None = None,
    ):
        super().__init__()
        self.run_dir, self.encoding, self.train_config = run_dir, encoding, train_config
        self.val_tokens, self.val_bars, self.state, self.base_metadata = val_tokens, val_bars, state, base_metadata
        self.val_conditions = val_conditions  # each validation melody's meter and chords, for conditioned models
        self.is_chief, self.session_start, self.start_may_be_best = is_chief, session_start, start_may_be_best
        self.stopped = "completed"
        self._partial = False
        self._budget = None if train_config.max_minutes is None else 60.0 * train_config.max_minutes
        self._scalars = _ScalarLog(run_dir / TENSORBOARD) if is_chief else None

    def on_train_begin(self, logs=None):
        self._any_worker = distribute.any_worker(self.model.distribute_strategy)
        # Here rather than before fit: the model is built and placed as it will be when each epoch is scored.
        if self.val_tokens and self.state["epoch"] == 0 and not self.state["history"]:
            self._score_start()

    def _score_start(self) -> None:
        start = time.perf_counter()
        row: dict = {"epoch": 0, **_validation_columns(self.model, self.val_tokens, self.val_bars, self.val_conditions)}
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["seconds"] = time.perf_counter() - start
        self.state["history"].append(row)
        if self.start_may_be_best and row["val_loss"] == row["val_loss"]:
            self.state["best"] = {"epoch": 0, "val_loss": row["val_loss"]}
            self._write_bundle(BEST)
        if self._scalars is not None:
            self._scalars.write(row, step=0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self._budget is not None and self._any_worker(time.perf_counter() - self.session_start > self._budget):
            self.model.stop_training = True
            self.stopped = "time_budget"
            self._partial = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        row = {"epoch": epoch + 1}
        loss = float(logs.get("loss", float("nan")))
        row.update(loss=loss, perplexity=math.exp(min(loss, 50.0)), accuracy=float(logs.get("accuracy", "nan")))
        if self.val_tokens:
            row.update(_validation_columns(self.model, self.val_tokens, self.val_bars, self.val_conditions))
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["seconds"] = time.perf_counter() - self._epoch_start
        if self._partial:
            row["partial"] = True
        # Shared with the callbacks after this one (TensorBoard, the progress bar, the user's).
        logs.update({k: v for k, v in row.items() if k not in ("epoch", "partial", "seconds", "learning_rate")})

        state = self.state
        state["history"].append(row)
        state["epoch"] = epoch + 1
        monitored = row.get(state["monitor"], float("nan"))
        improved = monitored == monitored and (
            state["best"]["val_loss"] is None or monitored < state["best"]["val_loss"]
        )
        if improved:
            state["best"] = {"epoch": epoch + 1, "val_loss": monitored}
            state["epochs_without_improvement"] = 0
        else:
            state["epochs_without_improvement"] += 1
        patience = self.train_config.patience
        if self._any_worker(patience is not None and state["epochs_without_improvement"] >= patience):
            self.model.stop_training = True
            self.stopped = "early_stopping"
        state["stopped"] = self.stopped if self.model.stop_training else None
        self._save(improved)

    def _write_bundle(self, name: str) -> bool:
        # The model with the run state as it stands; True when it landed in the run folder (the chief's).
        metadata = {**self.base_metadata, "training": dict(self.state)}
        if not self.is_chief:
            # Every worker must take part in saving (variables may be synchronized), but only the chief's file
            # counts: the others write to a scratch folder.
            with tempfile.TemporaryDirectory() as scratch:
                save_bundle(Path(scratch) / name, self.model, encoding=self.encoding, metadata=metadata)
            return False
        save_bundle(self.run_dir / name, self.model, encoding=self.encoding, metadata=metadata)
        return True

    def _save(self, improved: bool) -> None:
        if not self._write_bundle(LATEST):
            return
        latest = self.run_dir / LATEST
        if improved:
            _atomic_copy(latest, self.run_dir / BEST)
        atomic_write_text(
            self.run_dir / STATE,
            json.dumps({k: v for k, v in self.state.items() if k != "history"}, indent=2, allow_nan=True) + "\n",
        )
        _write_log(self.run_dir / LOG, self.state["history"])
        if self._scalars is not None:  # the chief's, always
            self._scalars.write(self.state["history"][-1], step=self.state["epoch"])
