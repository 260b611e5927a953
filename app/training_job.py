"""Training in a background thread, so the page stays responsive: `TrainingJob(...).start()`, `.stop()`.

The thread makes one call, `melodyrnn.training.train`, with a Keras callback that records progress and sets
`model.stop_training` when the stop flag is raised (training then finishes its epoch's bookkeeping: the run
folder keeps loadable `latest`/`best` bundles). The app polls `progress()`; nothing here touches Streamlit.
"""

from __future__ import annotations

import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import keras

from melodyrnn.errors import MelodyRNNError

if TYPE_CHECKING:
    from melodyrnn.training import TrainResult

#: The app's small model, for a run from scratch: trains in a minute or two on a laptop CPU. (By default the app
#: fine-tunes its default model instead, with the settings `melodyrnn.planning` plans for small data.)
APP_MODEL_CONFIG = {
    "units": 64,
    "num_layers": 1,
    "embedding_dim": 32,
    "dropout": 0.2,
    "attention": True,
    "attention_heads": 2,
    "attention_window": 128,
}
APP_TRAIN_CONFIG = {"epochs": 10, "batch_size": 32, "seq_len": 64, "patience": 3, "max_minutes": 2.0, "transpose": 0}


class _Progress(keras.callbacks.Callback):
    def __init__(self, job: TrainingJob):
        super().__init__()
        self.job = job

    def on_train_begin(self, logs=None):
        with self.job._lock:  # the planned number of epochs, known once training starts
            self.job.epochs = int(self.params.get("epochs") or self.job.epochs)

    def on_epoch_begin(self, epoch, logs=None):
        with self.job._lock:
            self.job._epoch, self.job._batch, self.job._in_epoch = epoch + 1, 0, True
            self.job._batches = self.params.get("steps")

    def on_train_batch_end(self, batch, logs=None):
        with self.job._lock:
            self.job._batch = batch + 1
            if logs and "loss" in logs:
                self.job._loss = float(logs["loss"])
        if self.job._stop.is_set():
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        row = {
            "epoch": epoch + 1,
            **{
                k: float(v)
                for k, v in (logs or {}).items()
                if k in ("loss", "val_loss", "val_accuracy", "val_perplexity")
            },
        }
        with self.job._lock:
            self.job._in_epoch = False
            self.job._history.append(row)


class TrainingJob:
    """One training run in a daemon thread.

    Args:
        data: the prepared cache (`.npz`) to train on.
        run_dir: the new run folder.
        model_config: dict of fields changed from the library's defaults for a new model, or None.
        train_config: dict of fields changed from the library's defaults.
        from_bundle: fine-tune this bundle (then `model_config` must be None).
    """

    def __init__(
        self,
        data: str | Path,
        run_dir: str | Path,
        model_config: dict | None,
        train_config: dict,
        from_bundle: str | Path | None = None,
    ):
        self.data, self.run_dir = Path(data), Path(run_dir)
        self.model_config = None if model_config is None else dict(model_config)
        self.train_config, self.from_bundle = dict(train_config), from_bundle
        self.epochs = int(train_config.get("epochs") or 1)  # until training has planned its epochs
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._epoch, self._batch, self._in_epoch = 0, 0, False
        self._batches: int | None = None
        self._loss: float | None = None
        self._history: list[dict] = []
        self.result: TrainResult | None = None
        self.error: str | None = None
        self.started: float | None = None
        self.finished: float | None = None
        #: Set by the app once it has offered the run's best bundle as a model choice.
        self.collected = False
        self._thread = threading.Thread(target=self._run, name=f"melodyrnn-train-{self.run_dir.name}", daemon=True)

    def _run(self) -> None:
        from melodyrnn.training import train

        try:
            self.result = train(
                self.data,
                self.run_dir,
                model_config=self.model_config,
                train_config=self.train_config,
                from_bundle=self.from_bundle,
                callbacks=[_Progress(self)],
                progress=False,
            )
        except MelodyRNNError as err:
            self.error = str(err)
        except Exception as err:  # noqa: BLE001  the page must show it, not lose it in a thread
            self.error = f"training failed: {type(err).__name__}: {err}"
            traceback.print_exc()
        finally:
            self.finished = time.time()

    def start(self) -> TrainingJob:
        self.started = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Asks training to stop after the current batch."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def done(self) -> bool:
        return self.started is not None and not self._thread.is_alive()

    @property
    def best_bundle(self) -> Path | None:
        """The run's best bundle, once it exists (after the first epoch)."""
        from melodyrnn.run_folder import BEST

        path = self.run_dir / BEST
        return path if path.is_file() else None

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def progress(self) -> dict:
        """A snapshot: fraction done in [0, 1], epoch (1-based, the current or last one), batch, batches per
        epoch, last training loss, one history row per finished epoch, seconds so far."""
        with self._lock:
            epoch, batch, batches, loss = self._epoch, self._batch, self._batches, self._loss
            history, in_epoch = list(self._history), self._in_epoch
        within = batch / batches if (in_epoch and batches) else 0.0
        fraction = 1.0 if self.done else min((len(history) + within) / max(self.epochs, 1), 1.0)
        return {
            "fraction": fraction,
            "epoch": epoch,
            "batch": batch,
            "batches": batches,
            "loss": loss,
            "history": history,
            "seconds": (self.finished or time.time()) - (self.started or time.time()),
        }
