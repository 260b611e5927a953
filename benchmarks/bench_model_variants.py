"""Training and sampling speed of the model variants: plain recurrent, lookback, causal self-attention (default).

Training: token ids (batch x seq_len) through `build_model(config)`, Adam, sparse cross-entropy; the variants
alternate step by step in one process after warm-up and the median step time is reported (the machine is
shared, so single timings are noisy). Sampling: a whole loop of `model.step` + `tf.random.categorical` inside
ONE `tf.function(jit_compile=True)`, as the sampler runs it; the median of a few runs after compilation.
Quality (NLL per step on whole tunes) needs the training loop and real data, so it is not measured here.

    python benchmarks/bench_model_variants.py [--units 256] [--batch 64] [--seq-len 128] [--out results.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from melodyrnn.model import ModelConfig, build_model  # noqa: E402


def variants(units: int, window: int) -> dict[str, ModelConfig]:
    base = dict(units=units, attention_window=window)
    return {
        "plain": ModelConfig(**base, attention=False),
        "lookback": ModelConfig(**base, attention=False, lookback=True),
        "attention": ModelConfig(**base),
        "lookback_attention": ModelConfig(**base, lookback=True),
    }


def train_step_fn(model):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def train_step(inputs, targets):
        with tf.GradientTape() as tape:
            loss = loss_fn(targets, model(inputs, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return train_step


def sample_fn(model, batch: int, steps: int):
    @tf.function(jit_compile=True)
    def sample(seed_ids):
        state = model.initial_state(batch)
        ids = seed_ids
        out = tf.TensorArray(tf.int32, size=steps)
        for t in tf.range(steps):
            logits, state = model.step(ids, state)
            ids = tf.cast(tf.random.categorical(logits, 1)[:, 0], tf.int32)
            out = out.write(t, ids)
        return out.stack()

    return sample


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        np.asarray(result)  # wait for the result
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--window", type=int, default=512, help="attention window (the sampler's cache size)")
    parser.add_argument("--steps", type=int, default=7, help="timed training steps per variant")
    parser.add_argument("--sample-batch", type=int, default=16)
    parser.add_argument("--sample-steps", type=int, default=512)
    parser.add_argument("--sample-repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run")
    parser.add_argument("--out", default="benchmarks/results/bench_model_variants.json")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    configs = variants(args.units, args.window)
    if args.only:
        configs = {k: v for k, v in configs.items() if k in args.only}
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.integers(0, 130, (args.batch, args.seq_len)), tf.int32)
    targets = tf.constant(rng.integers(0, 130, (args.batch, args.seq_len)), tf.int32)

    models = {name: build_model(config) for name, config in configs.items()}
    steps = {name: train_step_fn(model) for name, model in models.items()}
    for step in steps.values():  # warm-up: tracing and the first XLA compilations
        step(inputs, targets)
        step(inputs, targets)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.steps):
        for name, step in steps.items():
            start = time.perf_counter()
            float(step(inputs, targets))
            times[name].append(time.perf_counter() - start)

    results = {}
    tokens = args.batch * args.seq_len
    for name, model in models.items():
        train_s = statistics.median(times[name])
        sample = sample_fn(model, args.sample_batch, args.sample_steps)
        seed_ids = tf.zeros((args.sample_batch,), tf.int32)
        start = time.perf_counter()
        np.asarray(sample(seed_ids))
        compile_s = time.perf_counter() - start
        sample_s = median_seconds(functools.partial(sample, seed_ids), args.sample_repeats)
        results[name] = {
            "config": configs[name].to_dict(),
            "parameters": int(model.count_params()),
            "train_step_seconds": round(train_s, 4),
            "train_tokens_per_second": round(tokens / train_s, 1),
            "sample_compile_seconds": round(compile_s, 2),
            "sample_seconds": round(sample_s, 4),
            "sample_steps_per_second": round(args.sample_batch * args.sample_steps / sample_s, 1),
        }
        print(
            f"{name:20s} train {tokens / train_s:9.0f} tokens/s   sample {args.sample_steps} steps × "
            f"{args.sample_batch}: {sample_s * 1000:7.1f} ms",
            flush=True,
        )

    report = {
        "benchmark": "bench_model_variants",
        "args": vars(args),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__},
        "results": results,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
