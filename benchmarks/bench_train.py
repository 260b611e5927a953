"""Training speed: tokens/s of `model.fit` for the default configuration on training_data/, and optionally the wall
time of a `train` run from scratch to reach the default model's validation loss (NLL per step on whole melodies).

"The default configuration" is the shipped default model's (`--model shipped`, the default): its `ModelConfig`
and the `TrainConfig` recorded in its bundle, and its best validation loss as the target. `--model default` is
`ModelConfig()` with `TrainConfig()`, and `--model auto` what `melodyrnn train` picks for this data.

Throughput is timed over `--steps` batches after `--warmup` batches (tracing and XLA compilation excluded), the
way `train()` compiles the model; the median and best of `--repeats` are kept (the machine is shared and noisy).
`--time-to-target` then trains from scratch with the same configuration (time budget `--max-minutes`) and
records the first epoch whose validation loss reaches the target (`--target-val-loss`, default the shipped
model's). Prints JSON and writes it to --out.

    python benchmarks/bench_train.py [--data training_data/midi | cache.npz] [--model shipped|default|auto]
        [--steps 30] [--repeats 3] [--time-to-target [--target-val-loss 0.8] --max-minutes 40]
        [--out benchmarks/results/bench_train.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from repo_paths import ROOT, repo_relative

from melodyrnn.bundle import load
from melodyrnn.dataset import PreparedData, prepare
from melodyrnn.model import ModelConfig, build_model
from melodyrnn.training import TrainConfig, _compile, default_model_config, train


class _BatchClock(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


class _TargetClock(keras.callbacks.Callback):
    def __init__(self, target: float, start: float):
        super().__init__()
        self.target, self.start, self.reached = target, start, None

    def on_epoch_end(self, epoch, logs=None):
        val = (logs or {}).get("val_loss")
        if self.reached is None and val is not None and val <= self.target:
            self.reached = {
                "epoch": epoch + 1,
                "seconds": round(time.perf_counter() - self.start, 1),
                "val_loss": round(float(val), 4),
            }


def load_data(source: str) -> PreparedData:
    path = Path(source)
    if path.is_file():
        return PreparedData.load(path)
    return prepare(path, progress=False)


def throughput(
    data: PreparedData, model_config: ModelConfig, config: TrainConfig, warmup: int, steps: int, repeats: int
) -> dict:
    keras.utils.set_random_seed(0)
    model = build_model(model_config)
    _compile(model, config)
    dataset = data.dataset(config.seq_len, config.batch_size, split="train", seed=0, drop_remainder=True).repeat()
    # real (unpadded) share of the tokens in a batch, from a sample of batches
    weights = np.concatenate([np.asarray(w).ravel() for _, _, w in dataset.take(50)])
    real_fraction = float(weights.mean())
    rates = []
    for _ in range(repeats):
        clock = _BatchClock()
        model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, callbacks=[clock], verbose=0, shuffle=False)
        seconds = clock.ends[-1] - clock.ends[warmup - 1]
        rates.append(steps * config.batch_size * config.seq_len / seconds)
    return {
        "parameters": int(model.count_params()),
        "padded_tokens_per_s_median": round(statistics.median(rates)),
        "padded_tokens_per_s_best": round(max(rates)),
        "real_token_fraction": round(real_fraction, 4),
        "tokens_per_s_median": round(statistics.median(rates) * real_fraction),
        "runs_tokens_per_s": [round(r) for r in rates],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "training_data" / "midi"), help="MIDI folder or cache")
    parser.add_argument(
        "--model",
        choices=["shipped", "default", "auto"],
        default="shipped",
        help="shipped: the default model's configuration (from its bundle); default: ModelConfig() "
        "and TrainConfig(); auto: what `melodyrnn train` picks for this data",
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--time-to-target",
        action="store_true",
        help="also train from scratch and time it to the target validation loss",
    )
    parser.add_argument(
        "--target-val-loss",
        type=float,
        default=None,
        help="the target (default: the shipped model's best validation loss)",
    )
    parser.add_argument("--max-minutes", type=float, default=60.0, help="budget of that run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_train.json"))
    args = parser.parse_args()

    data = load_data(args.data)
    config, target = TrainConfig(), args.target_val_loss
    if args.model == "shipped":
        shipped = load(compile=False)
        model_config = shipped.model_config
        training = shipped.metadata.get("training", {})
        config = TrainConfig.from_dict({**training.get("train_config", {}), "max_minutes": None})
        if target is None:
            target = training.get("best", {}).get("val_loss")
        history = training.get("history", [])
        best_epoch = training.get("best", {}).get("epoch")
        best_epoch = len(history) if best_epoch is None else best_epoch
        recorded = {  # what the shipped model's own run took (its log, possibly over several resumed sessions)
            "best_val_loss": training.get("best", {}).get("val_loss"),
            "best_epoch": best_epoch,
            # newer runs' histories open with epoch 0 (the starting model scored): its seconds count too
            "seconds_to_best_epoch": round(
                sum(row.get("seconds", 0.0) for row in history if row.get("epoch", 0) <= best_epoch), 1
            ),
            "sessions_note": shipped.metadata.get("note"),
        }
    elif args.model == "default":
        model_config = ModelConfig(vocab_size=data.config.vocab_size)
    else:
        model_config = default_model_config(data)
    if args.time_to_target and target is None:
        parser.error("--time-to-target needs --target-val-loss unless --model shipped")
    result = {
        "benchmark": "train",
        "data": repo_relative(args.data),
        # prepare() records its folder as given: only an absolute one can be made repository-relative
        "data_root": repo_relative(data.report.root) if os.path.isabs(data.report.root) else data.report.root,
        "train_melodies": int(data.indices("train").size),
        "train_steps": int(data.lengths[data.indices("train")].sum()),
        "model": args.model,
        "model_config": model_config.to_dict(),
        "train_config": config.to_dict(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "threads": {name: os.environ.get(name) for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")},
        "throughput": throughput(data, model_config, config, args.warmup, args.steps, args.repeats),
    }
    if args.model == "shipped":
        result["shipped_training_record"] = recorded
    if args.time_to_target:
        start = time.perf_counter()
        clock = _TargetClock(target, start)
        with tempfile.TemporaryDirectory() as run_dir:
            run = train(
                data,
                Path(run_dir) / "run",
                model_config,
                {**config.to_dict(), "max_minutes": args.max_minutes},
                callbacks=[clock],
                progress=False,
            )
        result["time_to_target"] = {
            "target_val_loss": target,
            "reached": clock.reached,
            "best_val_loss": run.best_val_loss,
            "best_epoch": run.best_epoch,
            "epochs": run.epochs,
            "stopped": run.stopped,
            "seconds": round(time.perf_counter() - start, 1),
            "val_loss_by_epoch": [round(row.get("val_loss", float("nan")), 4) for row in run.history],
        }
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
