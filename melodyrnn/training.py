"""Training: `TrainConfig` → `train()`, which fits a model and keeps a run folder that survives any interruption.

Start at `train(data, run_dir)` (what `melodyrnn train` runs). Each finished epoch scores the validation melodies
whole (as `melodyrnn evaluate` does), then writes `latest.melodyrnn` and, on improvement, `best.melodyrnn`, both
atomically, so a kill at any moment leaves loadable bundles; `resume=True` carries on from `latest` with its
optimizer state. The run's progress lives in the bundles' metadata, so the bundle is the checkpoint.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import math
import numbers
import os
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import keras

from melodyrnn.dataset import PreparedData, check_steps_per_bar, prepare
from melodyrnn.errors import DataError, MelodyRNNError
from melodyrnn.evaluation import score_token_lists, summarize
from melodyrnn.model import ModelConfig, atomic_write, build_model, config_from_dict, load_bundle, save_bundle

__all__ = ["TrainConfig", "TrainResult", "train", "default_model_config", "format_history", "read_run",
           "LATEST", "BEST", "STATE", "LOG", "TENSORBOARD", "DATA"]

LATEST = "latest.melodyrnn"
BEST = "best.melodyrnn"
STATE = "train_state.json"
LOG = "log.csv"
TENSORBOARD = "tensorboard"
DATA = "data.npz"
_STRATEGIES = ("default", "mirrored", "multiworker")
# The columns of log.csv and of the summary table, in order.
_COLUMNS = ("epoch", "loss", "perplexity", "accuracy", "val_loss", "val_perplexity", "val_accuracy",
            "val_event_accuracy", "val_no_event_accuracy", "learning_rate", "seconds")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
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

    def __post_init__(self):
        def check(ok: bool, name: str, expected: str):
            if not ok:
                raise MelodyRNNError(f"`{name}` must be {expected}, got {getattr(self, name)!r}")

        check(_is_int(self.epochs) and self.epochs >= 1, "epochs", "an integer >= 1")
        check(_is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "an integer >= 1")
        check(_is_int(self.seq_len) and self.seq_len >= 2, "seq_len", "an integer >= 2")
        check(_is_real(self.learning_rate) and 0 < self.learning_rate < math.inf, "learning_rate", "a number > 0")
        check(self.clipnorm is None or (_is_real(self.clipnorm) and 0 < self.clipnorm < math.inf), "clipnorm",
              "a number > 0 or None")
        check(self.patience is None or (_is_int(self.patience) and self.patience >= 1), "patience",
              "an integer >= 1 or None")
        check(_is_int(self.transpose) and 0 <= self.transpose <= 24, "transpose", "an integer in [0, 24]")
        check(_is_int(self.seed), "seed", "an integer")
        check(self.strategy in _STRATEGIES, "strategy", f"one of {list(_STRATEGIES)}")
        check(self.steps_per_epoch is None or (_is_int(self.steps_per_epoch) and self.steps_per_epoch >= 1),
              "steps_per_epoch", "an integer >= 1 or None")
        check(self.max_minutes is None or (_is_real(self.max_minutes) and 0 < self.max_minutes < math.inf),
              "max_minutes", "a number > 0 or None")

    def to_dict(self) -> dict:
        """A plain, JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The inverse of `to_dict`; missing fields take their defaults.

        Raises:
            MelodyRNNError: `d` is not a dict, has unknown fields, or a field is invalid.
        """
        return config_from_dict(cls, d, "train config")


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
        best_epoch: the epoch (1-based) whose bundle is `best.melodyrnn`, or None.
        best_val_loss: its validation NLL per step (nats), or its training loss when there is no validation split.
        history: one dict per epoch (the columns of log.csv).
        stopped: "completed", "early_stopping", "time_budget" or "nothing_to_do" (a resumed run already done).
        seconds: wall time of this session.
        replicas: devices the batches were split across.
        model: the model in memory as training left it (the state of `latest.melodyrnn`).
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

    def summary(self) -> str:
        """The summary table of every epoch plus one line on how the run ended."""
        return format_history(self.history, self.best_epoch) + (
            f"\nstopped: {self.stopped}; best epoch {self.best_epoch} (val loss {self.best_val_loss:.4f}) in "
            f"{self.best_path}" if self.best_epoch is not None else f"\nstopped: {self.stopped}")


def format_history(history: list[dict], best_epoch: int | None = None) -> str:
    """A fixed-width table: epoch, loss, val loss, val perplexity, val accuracy, val event accuracy, seconds."""
    header = f"{'epoch':>6} {'loss':>8} {'val loss':>9} {'val ppl':>8} {'val acc':>8} {'val ev acc':>10} {'time':>8}"
    lines = [header, "-" * len(header)]

    def num(row, key, width, digits):
        value = row.get(key)
        return f"{value:{width}.{digits}f}" if isinstance(value, (int, float)) and value == value else " " * (
            width - 1) + "-"

    for row in history:
        mark = "*" if row.get("epoch") == best_epoch else " "
        partial = "~" if row.get("partial") else " "
        lines.append(f"{row['epoch']:>5}{mark} {num(row, 'loss', 8, 4)} {num(row, 'val_loss', 9, 4)} "
                     f"{num(row, 'val_perplexity', 8, 3)} {num(row, 'val_accuracy', 8, 3)} "
                     f"{num(row, 'val_event_accuracy', 10, 3)} {num(row, 'seconds', 7, 1)}s{partial}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Run folder


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _atomic_copy(source: Path, target: Path) -> None:
    def write(out) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)

    atomic_write(target, write)


def _bundle_metadata(path: Path) -> dict | None:
    """The metadata of a bundle file without loading its model, or None if it is missing or unreadable."""
    try:
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read("bundle.json")).get("metadata") or {}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def read_run(run_dir: str | os.PathLike) -> dict:
    """The state of a run folder, from its latest bundle: `epoch`, `history`, `best`, `train_config`, ...

    Raises:
        MelodyRNNError: the folder holds no readable `latest.melodyrnn`.
    """
    metadata = _bundle_metadata(Path(run_dir) / LATEST)
    if metadata is None or "training" not in metadata:
        raise MelodyRNNError(f"`{run_dir}` holds no training run (no readable {LATEST})")
    return metadata["training"]


class _ScalarLog:
    """TensorBoard scalars (`train/` and `validation/`, named like Keras's `epoch_loss`), written with TensorFlow's
    core summary ops, so no `tensorboard` package is needed to write them (only to view them)."""

    def __init__(self, folder: Path):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self._tf = tf
        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
        self._writers = {name: tf.summary.create_file_writer(str(folder / name)) for name in ("train", "validation")}

    def write(self, row: dict, step: int) -> None:
        for key, value in row.items():
            if key in ("epoch", "partial", "seconds") or not isinstance(value, float) or value != value:
                continue
            name, key = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writers[name].as_default():
                self._tf.summary.write(f"epoch_{key}", self._tf.constant(value, self._tf.float32), step=step,
                                       metadata=self._metadata)
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
    _atomic_write_text(path, buf.getvalue())


# ----------------------------------------------------------------------------------------------------------
# Data and devices


def _resolve_data(data, cache: Path | None, progress: bool) -> tuple[PreparedData, str]:
    # `cache`: where a MIDI folder's prepared data is kept; None prepares it in memory (a worker, not the chief).
    if isinstance(data, PreparedData):
        return data, "<in memory>"
    if not isinstance(data, (str, os.PathLike)):
        raise DataError(f"`data` must be PreparedData, a prepared cache or a folder of MIDI files, "
                        f"got {type(data).__name__}")
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


def _make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    return _multiworker_strategy(os.environ["TF_CONFIG"])


@functools.lru_cache(maxsize=None)
def _multiworker_strategy(tf_config: str):
    # One per process (and TF_CONFIG, the cache key): TensorFlow sets up collectives once, before anything else runs.
    # Creating it waits until every worker of the cluster has started.
    import tensorflow as tf

    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as err:  # "Collective ops must be configured at program startup"
        raise MelodyRNNError('`strategy="multiworker"` must be the first TensorFlow work of its process (train in a '
                             f"fresh one, as `melodyrnn train` does): {err}") from err
    except (ValueError, tf.errors.OpError) as err:  # "Could not start gRPC server": the task's port is taken
        raise MelodyRNNError(f'`strategy="multiworker"` could not start this task of TF_CONFIG: {err} (is its port '
                             "free on this host?)") from err


def _multiworker_is_chief() -> bool:
    """Whether this process is the chief of the cluster in TF_CONFIG: the "chief" task, or worker 0 when there is
    none (TensorFlow's rule). Only the chief writes the run folder.

    Raises:
        MelodyRNNError: TF_CONFIG is missing, not JSON, or lacks a "cluster" of hosts or a "task" among them.
    """
    example = '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        raise MelodyRNNError(f'`strategy="multiworker"` needs the TF_CONFIG environment variable, e.g. {example}; '
                             "it is not set")
    try:
        tf_config = json.loads(raw)
    except ValueError:
        raise MelodyRNNError(f"TF_CONFIG must be JSON like {example}, got {raw[:200]!r}") from None
    cluster, task = (tf_config.get(key) if isinstance(tf_config, dict) else None for key in ("cluster", "task"))
    jobs = {k: v for k, v in cluster.items() if k in ("chief", "worker")} if isinstance(cluster, dict) else {}
    if not jobs or not all(isinstance(hosts, list) and hosts and all(isinstance(h, str) for h in hosts)
                           for hosts in jobs.values()):
        raise MelodyRNNError(f'TF_CONFIG must hold "cluster": {{"worker": ["host:port", ...]}}, got {cluster!r}')
    if not (isinstance(task, dict) and task.get("type") in jobs and _is_int(task.get("index"))
            and 0 <= task["index"] < len(jobs[task["type"]])):
        raise MelodyRNNError('TF_CONFIG must hold "task": {"type": "worker", "index": i} naming one of its cluster\'s '
                             f"hosts, got {task!r}")
    return task["type"] == "chief" or (task["index"] == 0 and "chief" not in jobs)


def _any_worker(strategy):
    """A vote across workers: `vote(flag) -> bool` is True on every worker when `flag` is True on any, since workers
    must stop at the same step or the others wait in a collective forever. The vote is a collective too, so every
    worker votes at the same points. With one process (no collectives) the flag decides alone."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return bool

    @tf.function
    def total(flag):  # identity: the collective needs a tensor placed on the replica's own device
        return strategy.run(lambda f: tf.distribute.get_replica_context().all_reduce("SUM", tf.identity(f)),
                            args=(flag,))

    return lambda flag: float(strategy.experimental_local_results(total(tf.constant(float(flag))))[0]) > 0


@contextlib.contextmanager
def _multiworker_fit(model, strategy, element_spec):
    """Works around two bugs that stop Keras 3's `fit` (to 3.15 at least) under MultiWorkerMirroredStrategy
    (keras-team/keras#20585), for a `fit` inside this context:

    - fit reduces its first batch across replicas only to read its shapes, and that reduce fails across workers:
      the model, metrics and optimizer are built from the dataset's spec here instead, and fit finds the strategy
      through the scope rather than the model, which skips that step;
    - each step's metrics are averaged across workers with `reduce("MEAN", axis=0)`, and a scalar has no axis 0:
      train_step gives them a leading axis of length 1.
    """
    import tensorflow as tf

    with strategy.scope():
        model._symbolic_build(data_batch=element_spec)
    own_strategy, train_step = model._distribute_strategy, model.train_step
    model._distribute_strategy = None
    model.train_step = lambda data: keras.tree.map_structure(lambda v: tf.expand_dims(v, 0), train_step(data))
    try:
        with strategy.scope():
            yield
    finally:
        del model.train_step
        model._distribute_strategy, model.train_function = own_strategy, None


def _compile(model, config: TrainConfig) -> None:
    # Only Keras's own loss, optimizer and metric: a bundle's compile config must load in safe mode anywhere.
    # The melody metrics are computed by _RunCallback on whole validation melodies instead.
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=config.clipnorm),
        # mean over real steps: padded steps have weight 0 and must not dilute the loss
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        # XLA on the whole model is slower on CPU (FIELD_NOTES); the recurrent layers compile their own loops.
        jit_compile=False,
    )


# ----------------------------------------------------------------------------------------------------------
# The per-epoch callback: validation, checkpoints, early stopping, time budget


class _RunCallback(keras.callbacks.Callback):
    def __init__(self, *, run_dir: Path, encoding, train_config: TrainConfig, val_tokens: list, val_bars: list,
                 state: dict, base_metadata: dict, is_chief: bool, session_start: float):
        super().__init__()
        self.run_dir, self.encoding, self.train_config = run_dir, encoding, train_config
        self.val_tokens, self.val_bars, self.state, self.base_metadata = val_tokens, val_bars, state, base_metadata
        self.is_chief, self.session_start = is_chief, session_start
        self.stopped = "completed"
        self._partial = False
        self._budget = None if train_config.max_minutes is None else 60.0 * train_config.max_minutes
        self._scalars = _ScalarLog(run_dir / TENSORBOARD) if is_chief else None

    def on_train_begin(self, logs=None):
        self._any_worker = _any_worker(self.model.distribute_strategy)

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
            metrics = summarize(self.val_tokens, score_token_lists(self.model, self.val_tokens,
                                                                   steps_per_bar=self.val_bars))
            row.update(val_loss=metrics["nll_per_step"], val_perplexity=metrics["perplexity"],
                       val_accuracy=metrics["accuracy"], val_event_accuracy=metrics["event_accuracy"],
                       val_no_event_accuracy=metrics["no_event_accuracy"])
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
        improved = monitored == monitored and (state["best"]["val_loss"] is None
                                               or monitored < state["best"]["val_loss"])
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

    def _save(self, improved: bool) -> None:
        metadata = {**self.base_metadata, "training": dict(self.state)}
        if not self.is_chief:
            # Every worker must take part in saving (variables may be synchronized), but only the chief's file
            # counts: the others write to a scratch folder.
            with tempfile.TemporaryDirectory() as scratch:
                save_bundle(Path(scratch) / LATEST, self.model, encoding=self.encoding, metadata=metadata)
            return
        latest = self.run_dir / LATEST
        save_bundle(latest, self.model, encoding=self.encoding, metadata=metadata)
        if improved:
            _atomic_copy(latest, self.run_dir / BEST)
        _atomic_write_text(self.run_dir / STATE, json.dumps(
            {k: v for k, v in self.state.items() if k != "history"}, indent=2, allow_nan=True) + "\n")
        _write_log(self.run_dir / LOG, self.state["history"])
        self._scalars.write(self.state["history"][-1], step=self.state["epoch"])


# ----------------------------------------------------------------------------------------------------------
# train()


def _merge(config_cls, base, overrides):
    if overrides is None:
        return base
    if isinstance(overrides, config_cls):
        return overrides
    if isinstance(overrides, dict):
        return config_cls.from_dict({**base.to_dict(), **overrides})
    raise MelodyRNNError(f"expected a {config_cls.__name__}, a dict of its fields or None, got "
                         f"{type(overrides).__name__}")


def train(
    data,
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
    prints), which is the loss that early stopping watches and that picks `best.melodyrnn`.

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
    if resume and from_bundle is not None:
        raise MelodyRNNError("`resume` and `from_bundle` exclude each other: resume continues this run, "
                             "from_bundle starts a new one")
    latest = run_dir / LATEST
    if resume and not latest.is_file():
        raise MelodyRNNError(f"`resume` needs a run to continue, but `{run_dir}` holds no {LATEST}")
    if not resume and latest.exists():
        raise MelodyRNNError(f"`{run_dir}` already holds a run ({LATEST}); resume it (--resume) or choose "
                             "another folder")
    saved_state = read_run(run_dir) if resume else None
    base_train = TrainConfig.from_dict(saved_state["train_config"]) if saved_state else TrainConfig()
    config = _merge(TrainConfig, base_train, train_config)
    # Only the chief of a multi-worker run writes the run folder; the others must never clobber its files.
    is_chief = _multiworker_is_chief() if config.strategy == "multiworker" else True
    if is_chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob(".*.tmp"):  # left by a kill in the middle of an atomic write
            stale.unlink(missing_ok=True)
    data, data_source = _resolve_data(data, run_dir / DATA if is_chief else None, progress)
    if data.indices("train").size == 0:
        raise DataError("the training split has no melodies")

    strategy = _make_strategy(config.strategy)  # before any other TensorFlow work: multiworker needs that
    keras.utils.set_random_seed(config.seed + (saved_state["epoch"] if saved_state else 0))
    with strategy.scope():
        if resume:
            bundle = load_bundle(latest, compile=True)
            model = bundle.model
            if model_config is not None and _merge(ModelConfig, bundle.model_config, model_config) != model.config:
                raise MelodyRNNError("the model config cannot change when resuming; leave it out (or start a new "
                                     "run with from_bundle to fine-tune)")
            if getattr(model, "optimizer", None) is None or not model.compiled:
                _compile(model, config)
            elif train_config is not None and config.learning_rate != base_train.learning_rate:
                model.optimizer.learning_rate.assign(config.learning_rate)
            encoding = bundle.encoding
        elif from_bundle is not None:
            bundle = load_bundle(from_bundle, compile=False)
            model, encoding = bundle.model, bundle.encoding
            _compile(model, config)
        else:
            encoding = data.config
            base_model = default_model_config(data)
            model_cfg = replace(_merge(ModelConfig, base_model, model_config), vocab_size=encoding.vocab_size)
            model = build_model(model_cfg)
            _compile(model, config)
    if data.config != encoding:
        raise DataError(f"the data was encoded with {data.config}, but the model expects {encoding}")

    val_indices = [i for i in data.indices("validation") if data.lengths[i] >= 2]
    val_tokens, val_bars = [data.melody_tokens(i) for i in val_indices], data.steps_per_bar[val_indices].tolist()
    if model.config.lookback:  # now, not when the first validation finds a bar the model cannot take
        check_steps_per_bar(data.steps_per_bar, model.config.max_steps_per_bar)
    if saved_state:
        state = {k: saved_state[k] for k in ("epoch", "history", "best", "epochs_without_improvement", "monitor")}
        # best.melodyrnn is copied after latest is written: trust what the best file itself says it holds.
        best_meta = _bundle_metadata(run_dir / BEST)
        state["best"] = (best_meta or {}).get("training", {}).get("best") or {"epoch": None, "val_loss": None}
        fine_tuned_from = saved_state.get("fine_tuned_from")
    else:
        state = {"epoch": 0, "history": [], "best": {"epoch": None, "val_loss": None},
                 "epochs_without_improvement": 0, "monitor": "val_loss" if val_tokens else "loss"}
        fine_tuned_from = str(from_bundle) if from_bundle is not None else None
    state.update(train_config=config.to_dict(), fine_tuned_from=fine_tuned_from, stopped=None,
                 strategy={"name": config.strategy, "replicas": int(strategy.num_replicas_in_sync)})
    report = data.report
    base_metadata = {"data": {
        "source": data_source, "train_melodies": int(data.indices("train").size),
        "validation_melodies": int(data.indices("validation").size),
        "train_steps": int(data.lengths[data.indices("train")].sum()),
        "validation_fraction": data.validation_fraction, "report": report.to_dict(),
    }}

    initial_epoch = state["epoch"]
    if initial_epoch >= config.epochs:
        return _result(run_dir, state, "nothing_to_do", session_start, strategy, model)

    def windows(drop_remainder):
        # lookback models get each melody's bar length, and windows that start on its bar lines
        return data.dataset(config.seq_len, config.batch_size, split="train", transpose=config.transpose,
                            seed=config.seed + initial_epoch, drop_remainder=drop_remainder,
                            with_bars=model.config.lookback, max_steps_per_bar=model.config.max_steps_per_bar)

    # A last, smaller batch would be traced and compiled again (once per replica when mirrored) for a few
    # windows, which the next epoch's shuffle brings back anyway; keep it only when it is all there is.
    dataset = windows(True)
    if int(dataset.cardinality()) == 0:
        dataset = windows(False)
    if config.steps_per_epoch is not None:
        dataset = dataset.repeat()
    if config.strategy == "multiworker":
        import tensorflow as tf

        # Every worker builds the same windows in the same order (same seeds) and keeps its share of each batch, so
        # all run the same number of steps. (AUTO picks DATA too, after a warning: the windows come from no files.)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.with_options(options)
    run_callback = _RunCallback(run_dir=run_dir, encoding=encoding, train_config=config, val_tokens=val_tokens,
                                val_bars=val_bars, state=state, base_metadata=base_metadata,
                                is_chief=is_chief, session_start=session_start)
    all_callbacks = [run_callback, *(callbacks or [])]
    verbose = (1 if sys.stdout.isatty() else 2) if progress else 0
    multiworker = config.strategy == "multiworker"
    with _multiworker_fit(model, strategy, dataset.element_spec) if multiworker else contextlib.nullcontext():
        model.fit(dataset, epochs=config.epochs, initial_epoch=initial_epoch, steps_per_epoch=config.steps_per_epoch,
                  callbacks=all_callbacks, verbose=verbose, shuffle=False)  # the dataset shuffles itself
    return _result(run_dir, state, run_callback.stopped, session_start, strategy, model)


def _result(run_dir: Path, state: dict, stopped: str, session_start: float, strategy, model) -> TrainResult:
    best = state["best"]
    best_path = run_dir / BEST
    return TrainResult(
        run_dir=run_dir, latest_path=run_dir / LATEST, best_path=best_path if best_path.is_file() else None,
        epochs=state["epoch"], best_epoch=best["epoch"], best_val_loss=best["val_loss"],
        history=list(state["history"]), stopped=stopped, seconds=time.perf_counter() - session_start,
        replicas=int(strategy.num_replicas_in_sync), model=model,
    )
