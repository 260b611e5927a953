"""Infill with a backward reader of the suffix vs the suffix-first infill model and resampling, on bench_infill's gaps.

The same 24 held-out 16-bar tunes per collection (training_data/'s validation split, and music21's Essen folk songs,
used to measure only) and the same gaps of 1, 2 and 4 bars from bar 6 as `bench_infill.py`: the gap NLL per step
given both sides, exact, from the backward-reader model (`--backward-model`, `melodyrnn.infill_backward`) and from
the suffix-first model (`--infill-model`, `melodyrnn.infill_model`), against the default model's prefix-only score;
the default model's resampling estimate is copied from `results/bench_infill.json` (the same tunes and gaps; its
prefix-only scores are checked to match). With `--logs`, both training runs' log.csv (held-out gap NLL by update and
second, on the same 300 validation gaps: `train_infill` draws them alike for both layouts) are recorded too.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_infill import held_out_collections, model_gap_scores  # noqa: E402
from repo_paths import repo_relative  # noqa: E402

from melodyrnn.infill_backward import BackwardInfill  # noqa: E402
from melodyrnn.infill_model import InfillModel  # noqa: E402
from melodyrnn.sampling import Sampler  # noqa: E402


def _log(path: Path) -> list[dict]:
    """`[{"update", "seconds", "val_gap_nll"}]`, every 500th update of a run's log.csv, and its last row."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    kept = [r for r in rows if int(r["update"]) % 500 == 0] + ([rows[-1]] if int(rows[-1]["update"]) % 500 else [])
    return [{"update": int(r["update"]), "seconds": float(r["seconds"]),
             "val_gap_nll": round(float(r["val_gap_nll"]), 4)} for r in kept]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--melodies", type=int, default=24, help="per collection (as bench_infill)")
    parser.add_argument("--data", default=str(HERE.parent / "training_data"))
    parser.add_argument("--essen", default=str(HERE / ".data"))
    parser.add_argument("--backward-model", required=True, help="the backward-reader infill bundle")
    parser.add_argument("--infill-model", required=True, help="the suffix-first infill bundle")
    parser.add_argument("--resampling", default=str(HERE / "results" / "bench_infill.json"))
    parser.add_argument("--logs", nargs=2, metavar=("BACKWARD", "SUFFIX_FIRST"), help="the runs' log.csv files")
    parser.add_argument("--note", default="", help="where the bundles came from, for the record")
    parser.add_argument("--out", default=str(HERE / "results" / "bench_infill_backward.json"))
    args = parser.parse_args()

    sampler = Sampler()
    backward, suffix_first = BackwardInfill(args.backward_model), InfillModel(args.infill_model)
    resampling = json.loads(Path(args.resampling).read_text())
    collections = held_out_collections(Path(args.data), Path(args.essen), args.melodies)
    trained = {k: backward.metadata.get(k) for k in ("updates", "val_gap_nll_per_step")}
    result = {"what": __doc__.splitlines()[0], "data": repo_relative(args.data), "note": args.note,
              "backward_model_training": {**trained, "config": backward.metadata.get("config")},
              "suffix_first_model_training": {k: suffix_first.metadata.get(k) for k in trained}}  # fmt: skip
    if args.logs:
        result["validation_by_update"] = {
            k: _log(Path(p)) for k, p in zip(("backward_reader", "suffix_first"), args.logs)
        }
    for name, melodies in collections.items():
        entry: dict = {"melodies": len(melodies)}
        for gap_bars in (1, 2, 4):
            key = f"{gap_bars}_bars"
            old = resampling[name]["gaps"][key]
            row = {"backward_reader": model_gap_scores(backward, sampler, melodies, gap_bars),
                   "suffix_first": model_gap_scores(suffix_first, sampler, melodies, gap_bars),
                   "resampling_estimate": {k: old[k] for k in ("nll_per_step_both_sides", "reduction")}}  # fmt: skip
            prefix = row["backward_reader"]["nll_per_step_prefix_only"]
            assert abs(prefix - old["nll_per_step_prefix_only"]) < 1e-4, "not bench_infill's tunes and gaps"
            entry[key] = row
            print(name, key, json.dumps(row), flush=True)
        result[name] = entry
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
