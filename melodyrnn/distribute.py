"""Training on several devices or hosts: the `TrainConfig.strategy` names and what `train()` needs of each.

Start at `make_strategy(name)`. With "multiworker" the hosts come from the TF_CONFIG environment variable
(`is_chief` checks it); `any_worker`, `shard_batches` and `fit_context` keep the workers in step through `fit`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import keras

from melodyrnn.configs import is_int
from melodyrnn.errors import MelodyRNNError

__all__ = ["STRATEGIES", "is_chief", "make_strategy", "any_worker", "shard_batches", "fit_context"]

STRATEGIES = ("default", "mirrored", "multiworker")
_TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'


def is_chief(name: str) -> bool:
    """Whether this process writes the run folder: always, except in a "multiworker" run, where only the chief of
    the cluster in TF_CONFIG does: the "chief" task, or worker 0 when there is none (TensorFlow's rule).

    Raises:
        MelodyRNNError: "multiworker" and TF_CONFIG is missing, not JSON, or lacks a "cluster" of hosts or a "task"
            among them.
    """
    if name != "multiworker":
        return True
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        raise MelodyRNNError(
            f'`strategy="multiworker"` needs the TF_CONFIG environment variable, e.g. '
            f"{_TF_CONFIG_EXAMPLE}; it is not set"
        )
    try:
        tf_config = json.loads(raw)
    except ValueError:
        raise MelodyRNNError(f"TF_CONFIG must be JSON like {_TF_CONFIG_EXAMPLE}, got {raw[:200]!r}") from None
    cluster, task = (tf_config.get(key) if isinstance(tf_config, dict) else None for key in ("cluster", "task"))
    jobs = {k: v for k, v in cluster.items() if k in ("chief", "worker")} if isinstance(cluster, dict) else {}
    if not jobs or not all(
        isinstance(hosts, list) and hosts and all(isinstance(h, str) for h in hosts) for hosts in jobs.values()
    ):
        raise MelodyRNNError(f'TF_CONFIG must hold "cluster": {{"worker": ["host:port", ...]}}, got {cluster!r}')
    fields: dict = task if isinstance(task, dict) else {}
    kind, index = fields.get("type"), fields.get("index", -1)
    if not (kind in jobs and is_int(index) and 0 <= index < len(jobs[kind])):
        raise MelodyRNNError(
            'TF_CONFIG must hold "task": {"type": "worker", "index": i} naming one of its cluster\'s '
            f"hosts, got {task!r}"
        )
    return kind == "chief" or (index == 0 and "chief" not in jobs)


def make_strategy(name: str) -> Any:
    """The `tf.distribute` strategy of `name` (one of `STRATEGIES`): "default" (one device), "mirrored" (every
    local GPU, or every logical CPU when there is no GPU) or "multiworker" (the hosts in TF_CONFIG; call
    `is_chief` first, which checks it). "multiworker" must come before any other TensorFlow work of the process.

    Raises:
        MelodyRNNError: "multiworker" after TensorFlow already ran in this process, or when this task of
            TF_CONFIG cannot start (its port is taken).
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    return _multiworker_strategy(os.environ["TF_CONFIG"])


@functools.cache
def _multiworker_strategy(tf_config: str):
    # One per process (and TF_CONFIG, the cache key): TensorFlow sets up collectives once, before anything else runs.
    # Creating it waits until every worker of the cluster has started.
    import tensorflow as tf

    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as err:  # "Collective ops must be configured at program startup"
        raise MelodyRNNError(
            '`strategy="multiworker"` must be the first TensorFlow work of its process (train in a '
            f"fresh one, as `melodyrnn train` does): {err}"
        ) from err
    except (ValueError, tf.errors.OpError) as err:  # "Could not start gRPC server": the task's port is taken
        raise MelodyRNNError(
            f'`strategy="multiworker"` could not start this task of TF_CONFIG: {err} (is its port free on this host?)'
        ) from err


def any_worker(strategy) -> Callable[[bool], bool]:
    """A vote across workers: `vote(flag) -> bool` is True on every worker when `flag` is True on any, since workers
    must stop at the same step or the others wait in a collective forever. The vote is a collective too, so every
    worker votes at the same points. With one process (no collectives) the flag decides alone."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return bool

    @tf.function
    def total(flag):  # identity: the collective needs a tensor placed on the replica's own device
        return strategy.run(
            lambda f: tf.distribute.get_replica_context().all_reduce("SUM", tf.identity(f)), args=(flag,)
        )

    return lambda flag: float(strategy.experimental_local_results(total(tf.constant(float(flag))))[0]) > 0


def shard_batches(dataset, name: str):
    """`dataset` as strategy `name` should feed it to `fit`: unchanged but for "multiworker", where every worker
    builds the same batches in the same order (same seeds) and keeps its share of each, so all run the same number
    of steps."""
    if name != "multiworker":
        return dataset
    import tensorflow as tf

    # AUTO would pick DATA too, after a warning: the windows come from no files.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def fit_context(name: str, model, strategy, element_spec) -> contextlib.AbstractContextManager:
    """The context to run `model.fit` in under strategy `name`: nothing for one process; for "multiworker",
    the workarounds of `_multiworker_fit`."""
    if name != "multiworker":
        return contextlib.nullcontext()
    return _multiworker_fit(model, strategy, element_spec)


@contextlib.contextmanager
def _multiworker_fit(model, strategy, element_spec) -> Iterator[None]:
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
