"""Infill adapted to the kept bars: gap NLL per step with both sides, with and without adaptation, vs the prefix alone.

The melodies, crops and gaps are `bench_infill.py`'s (16-bar crops of training_data/'s validation split and of
Essen songs the model never saw; a 1-, 2- or 4-bar gap from bar 6). For each gap, in nats per gap step:

- `prefix_only`: today's model from the prefix alone (the baseline the targets are stated against);
- `both_sides`: `score_infill` without adaptation (resampling by the suffix's likelihood);
- `both_sides_adapted`: `score_infill(..., adapt=K)`: the model first takes K Adam steps on the kept bars on both
  sides of the gap, then scores the gap as `both_sides` does;
- `prefix_only_adapted`: the same K steps on the bars before the gap only, scoring from the prefix alone: the
  best prefix-only method here, so the difference to `both_sides_adapted` is what the bars after the gap add.

`score_infill`'s suffix evidence is a Monte Carlo estimate whose log is biased low (see bench_infill_samples.py):
use enough `--samples`. The learning rate (`melodyrnn.adaptation.ADAPT_LEARNING_RATE`) and the default K were
chosen on other melodies: training_data/ validation crops 24-59 and 36 crops from four other Essen books
(boehme10, erk10, kinder0, ballad20), never on the ones reported here; `--dev` repeats that choice (1- and 4-bar
gaps, 64 samples, K = 0, 10, 30; `bench_infill_adapt_dev.json`). Also: seconds for 4 versions of a 4-bar gap after
warm-up, by K.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_infill import BAR_STEPS, GAP_START, cropped, held_out_collections, timing  # noqa: E402
from repo_paths import repo_relative  # noqa: E402
from small_collections import build_style  # noqa: E402

from melodyrnn.adaptation import ADAPT_LEARNING_RATE  # noqa: E402
from melodyrnn.dataset import prepare  # noqa: E402
from melodyrnn.extraction import midi_to_melodies  # noqa: E402
from melodyrnn.sampling import Sampler  # noqa: E402


def _gap_scores(sampler, melodies, gap_bars, samples, adapt, seed):
    totals = {"prefix_only": 0.0, "both_sides": 0.0, "both_sides_adapted": 0.0, "prefix_only_adapted": 0.0}
    steps = 0
    end_bar = GAP_START + gap_bars
    for i, m in enumerate(melodies):
        plain = sampler.score_infill(m, GAP_START, end_bar, samples, seed=seed + i)
        adapted = sampler.score_infill(m, GAP_START, end_bar, samples, seed=seed + i, adapt=adapt)
        # the melody cut after the gap: adaptation then sees only the bars before it, and no suffix is scored
        prefix_adapted = sampler.score_infill(
            m.first_steps(end_bar * BAR_STEPS), GAP_START, end_bar, 1, seed=0, adapt=adapt
        )
        totals["prefix_only"] -= plain.prefix_only
        totals["both_sides"] -= plain.total
        totals["both_sides_adapted"] -= adapted.total
        totals["prefix_only_adapted"] -= prefix_adapted.total
        steps += len(plain.per_step)
    out = {f"nll_per_step_{k}": v / steps for k, v in totals.items()}
    base = totals["prefix_only"]
    out["reduction_both_sides"] = 1 - totals["both_sides"] / base
    out["reduction_both_sides_adapted"] = 1 - totals["both_sides_adapted"] / base
    out["reduction_prefix_only_adapted"] = 1 - totals["prefix_only_adapted"] / base
    return out


def dev_collections(data: Path, essen: Path) -> dict:
    """The melodies the settings were chosen on: validation crops 24-59 (the reported ones are 0-23) and 36 crops of
    four Essen books the reported Essen melodies do not come from."""
    validation = cropped(prepare(data, None, progress=False).melodies("validation"), 60)[24:]
    songs = []
    for path in build_style("essen_dev", essen):
        try:
            songs += midi_to_melodies(path)
        except ValueError:
            continue
    return {"training_data_validation_24_59": validation, "essen_dev": cropped(songs, 36)}


def _dev(sampler, collections, steps, samples) -> dict:
    out: dict = {}
    for name, melodies in collections.items():
        out[name] = {"melodies": len(melodies)}
        for gap_bars in (1, 4):
            base, totals = 0.0, dict.fromkeys(steps, 0.0)
            for i, m in enumerate(melodies):
                for k in steps:
                    score = sampler.score_infill(m, GAP_START, GAP_START + gap_bars, samples, seed=i, adapt=k)
                    totals[k] -= score.total
                    base -= score.prefix_only if k == 0 else 0.0
            out[name][f"{gap_bars}_bars_reduction_by_adapt_steps"] = {str(k): 1 - v / base for k, v in totals.items()}
            print(name, gap_bars, out[name][f"{gap_bars}_bars_reduction_by_adapt_steps"], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--melodies", type=int, default=24, help="per collection")
    parser.add_argument("--samples", type=int, default=256, help="Monte Carlo gaps for score_infill")
    parser.add_argument("--adapt", type=int, default=10, help="adaptation steps")
    parser.add_argument("--data", default=str(HERE.parent / "training_data"))
    parser.add_argument("--essen", default=str(HERE / ".data"))
    parser.add_argument("--out", default=None, help="default: results/bench_infill_adapt[_dev].json")
    parser.add_argument("--dev", action="store_true", help="the choice of K on the tuning melodies instead")
    args = parser.parse_args()

    sampler = Sampler()
    if args.dev:
        dev = _dev(sampler, dev_collections(Path(args.data), Path(args.essen)), (0, 10, 30), 64)
        result = {"what": "Choosing adapt steps on other melodies than bench_infill_adapt.py reports", "samples": 64,
                  "learning_rate": ADAPT_LEARNING_RATE, **dev}  # fmt: skip
        _write(result, args.out or HERE / "results" / "bench_infill_adapt_dev.json")
        return
    collections = held_out_collections(Path(args.data), Path(args.essen), args.melodies)
    result: dict = {"what": __doc__.splitlines()[0], "data": repo_relative(args.data), "samples": args.samples,
                    "adapt_steps": args.adapt, "learning_rate": ADAPT_LEARNING_RATE}  # fmt: skip
    for name, melodies in collections.items():
        result[name] = {"melodies": len(melodies), "gaps": {}}
        for gap_bars in (1, 2, 4):
            entry = _gap_scores(sampler, melodies, gap_bars, args.samples, args.adapt, seed=7)
            result[name]["gaps"][f"{gap_bars}_bars"] = entry
            print(name, gap_bars, {k: round(v, 4) for k, v in entry.items()}, flush=True)
    melody = collections["training_data_validation"][0]
    result["seconds_4_versions_4_bar_gap_by_adapt_steps"] = {
        str(k): timing(sampler, melody, adapt=k) for k in (0, 10, args.adapt)
    }
    print(result["seconds_4_versions_4_bar_gap_by_adapt_steps"])
    _write(result, args.out or HERE / "results" / "bench_infill_adapt.json")


def _write(result: dict, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
