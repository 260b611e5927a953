"""Sampling speed: the sampler's compiled loop against the naive way, for 1 and for 16 melodies.

The sampler runs `Sampler.generate` (ONE `tf.function(jit_compile=True)` of single steps carrying the state;
temperature 1, top-p 0.95, so the controls are in the timed path). The naive way calls the full-sequence model on
the whole prefix at every step and draws from the last logits; its cost grows with the prefix, so it is timed over
the first `--naive-steps` steps only (its steps/s there is an upper bound of its speed over 512 steps, which makes
the ratio conservative). Timings are medians of `--repeats` runs after a warm-up (compilation excluded). Also timed:
the same loop without XLA, and "16 melodies of 32 bars" (4/4 at the bundle's steps per quarter).

    python benchmarks/bench_sample.py [BUNDLE] [--steps 512] [--naive-steps 64] [--repeats 3] [--out FILE]

Without BUNDLE it uses the default model if it is bundled, else an UNTRAINED model of the default `ModelConfig()`
(the speed is the same; the JSON says which).
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
from repo_paths import repo_relative  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from melodyrnn.bundle import DEFAULT_BUNDLE_PATH, Bundle, load  # noqa: E402
from melodyrnn.encoding import EncodingConfig  # noqa: E402
from melodyrnn.model import ModelConfig, build_model  # noqa: E402
from melodyrnn.sampling import Sampler  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def naive_generate(model, batch: int, steps: int, seed: int) -> np.ndarray:
    """The naive way: the whole prefix through the model at every step (eager Keras call), then a draw."""
    tf.random.set_seed(seed)
    ids = tf.fill([batch, 1], 60)
    for _ in range(steps - 1):
        logits = model(ids, training=False)[:, -1]
        nxt = tf.random.categorical(logits, 1, dtype=tf.int32)
        ids = tf.concat([ids, nxt], axis=1)
    return ids.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", default=None, help="bundle file (default: the default model)")
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--naive-steps", type=int, default=64)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "bench_sample.json"))
    args = parser.parse_args()

    if args.bundle is not None or DEFAULT_BUNDLE_PATH.is_file():
        bundle = load(args.bundle, compile=False)
        model_note = f"bundle {repo_relative(bundle.path)}"
    else:
        keras.utils.set_random_seed(0)
        encoding = EncodingConfig()
        config = ModelConfig(vocab_size=encoding.vocab_size)
        bundle = Bundle(build_model(config), config, encoding)
        model_note = (
            "UNTRAINED model of the default ModelConfig() (no default bundle yet); speed does not depend on the weights"
        )
    print(model_note, flush=True)
    sampler = Sampler(bundle)
    no_xla = Sampler(bundle, jit_compile=False)
    kwargs = dict(temperature=1.0, top_p=0.95)
    results = []
    for batch in args.batches:
        row = {"melodies": batch, "steps": args.steps}
        start = time.perf_counter()
        sampler.generate(batch, steps=args.steps, seed=0, **kwargs)
        row["compile_and_first_run_seconds"] = round(time.perf_counter() - start, 2)
        t = median_seconds(functools.partial(sampler.generate, batch, steps=args.steps, seed=1, **kwargs), args.repeats)
        row["compiled_seconds"] = round(t, 4)
        row["compiled_steps_per_second"] = round(args.steps / t, 1)
        row["compiled_melody_steps_per_second"] = round(batch * args.steps / t, 1)
        row["compiled_melodies_per_second"] = round(batch / t, 2)

        no_xla.generate(batch, steps=args.steps, seed=0, **kwargs)
        t_plain = median_seconds(
            functools.partial(no_xla.generate, batch, steps=args.steps, seed=1, **kwargs), args.repeats
        )
        row["no_xla_seconds"] = round(t_plain, 4)
        row["no_xla_steps_per_second"] = round(args.steps / t_plain, 1)

        naive_generate(bundle.model, batch, 4, 0)  # warm-up (first calls build/trace the layers)
        t_naive = median_seconds(functools.partial(naive_generate, bundle.model, batch, args.naive_steps, 1), 1)
        row["naive_timed_steps"] = args.naive_steps
        row["naive_seconds_for_timed_steps"] = round(t_naive, 3)
        row["naive_steps_per_second"] = round(args.naive_steps / t_naive, 2)
        row["ratio_compiled_vs_naive_steps_per_second"] = round((args.steps / t) / (args.naive_steps / t_naive), 1)
        row["ratio_compiled_vs_no_xla"] = round(t_plain / t, 2)
        results.append(row)
        print(json.dumps(row), flush=True)

    spq = bundle.encoding.steps_per_quarter
    sampler.generate(16, bars=32, seed=0, **kwargs)
    t32 = median_seconds(lambda: sampler.generate(16, bars=32, seed=1, **kwargs), args.repeats)
    summary = {
        "benchmark": "bench_sample",
        "model": model_note,
        "model_config": bundle.model_config.to_dict(),
        "controls": kwargs,
        "naive_note": (
            f"the naive way (full model on the whole prefix each step, eager) is timed over its first "
            f"{args.naive_steps} steps only; its per-step cost grows with the prefix, so over {args.steps} "
            "steps it would be slower still and the ratios are conservative"
        ),
        "results": results,
        "sixteen_melodies_32_bars": {"steps": 32 * 4 * spq, "seconds": round(t32, 4), "target_seconds": 1.0},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "load_average": os.getloadavg(),
        },
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"16 melodies of 32 bars: {t32:.3f} s; wrote {out}")


if __name__ == "__main__":
    main()
