"""Training throughput of melodyrnn's recurrent layers against Keras's built-ins, and of the loop forms tried.

Model: token ids (batch 64 x 128 steps) -> Embedding(130, 128) -> 2 recurrent layers -> Dense(130) logits, Adam,
sparse cross-entropy. Variants of one comparison alternate step by step in one process after warm-up, and the
median step time is reported (the machine is shared, so single timings are noisy).

    python benchmarks/bench_layers.py [--units 256 512] [--steps 7] [--out benchmarks/results/bench_layers.json]
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from melodyrnn import layers as L  # noqa: E402

VOCABULARY, EMBEDDING = 130, 128
BUILTINS = {"SimpleRNN": keras.layers.SimpleRNN, "LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU}
OURS = {"SimpleRNN": L.SimpleRNN, "LSTM": L.LSTM, "GRU": L.GRU}


def keras_rnn_loop(cls):
    """`cls` with its generic loop replaced by Keras's backend `rnn` (a while_loop differentiated by autodiff)."""

    class KerasRnnLoop(cls):
        def _scan(self, projected, states, mask, recurrent_mask):
            from keras.src import backend

            def step(x, states):
                return self.cell.recurrent_step(x, list(states), recurrent_mask)

            # input_length explicitly: with time_major=True, Keras 3.15 takes it from shape[1] (the batch)
            _, outputs, final = backend.rnn(
                step, projected, states, mask=mask, time_major=True, input_length=projected.shape[0]
            )
            return outputs, list(final)

    return KerasRnnLoop


def variant(kind: str, form: str):
    """(layer class, constructor kwargs, attributes to set) for one loop form.

    `_fused_jit` is the layer's choice of XLA for `melodyrnn.fused_tf`'s loops (None, the default, is
    `fused_tf.JIT`); `implementation="generic"` keeps the layer off the fused loops altogether.
    """
    if form == "builtin":
        return BUILTINS[kind], {}, {}
    if form == "fused_xla":
        return OURS[kind], {}, {"_fused_jit": True}
    if form == "fused":
        return OURS[kind], {}, {"_fused_jit": False}
    if form == "scan":
        return OURS[kind], {"implementation": "generic"}, {}
    if form == "keras_rnn":
        return keras_rnn_loop(OURS[kind]), {"implementation": "generic"}, {}
    raise ValueError(f"unknown form {form!r}")


def build_model(kind: str, form: str, units: int, steps: int, seed: int = 0):
    keras.utils.set_random_seed(seed)
    cls, kwargs, attributes = variant(kind, form)
    recurrent = [cls(units, return_sequences=True, **kwargs) for _ in range(2)]
    for layer in recurrent:
        for name, value in attributes.items():
            setattr(layer, name, value)
    model = keras.Sequential(
        [
            keras.Input((steps,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, EMBEDDING),
            *recurrent,
            keras.layers.Dense(VOCABULARY),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def compare(kind: str, forms: list[str], units: int, batch: int, steps: int, rounds: int, warmup: int):
    """Median training tokens/s of each form, steps interleaved across forms."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, VOCABULARY, size=(batch, steps + 1)).astype("int32")
    x, y = tokens[:, :-1], tokens[:, 1:]
    models = {form: build_model(kind, form, units, steps) for form in forms}
    for model in models.values():
        for _ in range(warmup):
            model.train_on_batch(x, y)
    seconds = {form: [] for form in forms}
    for _ in range(rounds):
        for form, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            seconds[form].append(time.perf_counter() - start)
    median = {form: round(batch * steps / statistics.median(s), 1) for form, s in seconds.items()}
    # the fastest step is the least disturbed by other processes on a shared machine; reported beside the median
    best = {form: round(batch * steps / min(s), 1) for form, s in seconds.items()}
    return median, best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--kinds", nargs="+", default=["LSTM", "GRU", "SimpleRNN"], choices=list(OURS))
    parser.add_argument("--steps", type=int, default=9, help="timed training steps per variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=128, help="time steps per sequence")
    parser.add_argument(
        "--loop-forms",
        nargs="*",
        default=["LSTM", "GRU"],
        help="kinds for the loop-form comparison at the smallest --units (none to skip)",
    )
    parser.add_argument("--out", default="benchmarks/results/bench_layers.json")
    args = parser.parse_args(argv)

    result = {
        "model": f"Embedding({VOCABULARY}, {EMBEDDING}) -> 2 x recurrent(return_sequences) -> Dense({VOCABULARY}),"
        " Adam, sparse CE",
        "batch": args.batch,
        "seq": args.seq,
        "timed_steps_per_variant": args.steps,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "ratio": "melodyrnn / keras tokens/s from median step times (best_step_ratio: from the fastest steps)",
        "pairs": [],
        "loop_forms": [],
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        result["tensorflow"] = tf.__version__
        result["gpu"] = bool(tf.config.list_physical_devices("GPU"))

    for units in args.units:
        for kind in args.kinds:
            tokens_per_s, best = compare(
                kind, ["fused_xla", "builtin"], units, args.batch, args.seq, args.steps, args.warmup
            )
            entry = {
                "layer": kind,
                "units": units,
                "melodyrnn_tokens_per_s": tokens_per_s["fused_xla"],
                "keras_tokens_per_s": tokens_per_s["builtin"],
                "ratio": round(tokens_per_s["fused_xla"] / tokens_per_s["builtin"], 3),
                "best_step_ratio": round(best["fused_xla"] / best["builtin"], 3),
            }
            result["pairs"].append(entry)
            print(json.dumps(entry), flush=True)

    forms = ["builtin", "keras_rnn", "scan", "fused", "fused_xla"]
    for kind in args.loop_forms:
        units = min(args.units)
        tokens_per_s, best = compare(kind, forms, units, args.batch, args.seq, args.steps, args.warmup)
        entry = {
            "layer": kind,
            "units": units,
            "tokens_per_s": tokens_per_s,
            "ratio_to_builtin": {f: round(v / tokens_per_s["builtin"], 3) for f, v in tokens_per_s.items()},
            "best_step_ratio_to_builtin": {f: round(v / best["builtin"], 3) for f, v in best.items()},
        }
        result["loop_forms"].append(entry)
        print(json.dumps(entry), flush=True)

    result["loop_form_legend"] = {
        "builtin": "keras.layers.<kind> (CPU: Keras's generic per-step loop, autodiff)",
        "keras_rnn": "our cell, input product hoisted, Keras's backend rnn (tf.while_loop), autodiff",
        "scan": "our generic path: input product hoisted, keras.ops.scan, autodiff",
        "fused": "our TF path (melodyrnn.fused_tf): forward/reverse tf.while_loop, hand-written backward, no XLA",
        "fused_xla": "the same with each loop its own tf.function(jit_compile=True) (the default, fused_tf.JIT)",
    }
    print(json.dumps(result, indent=2))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
