"""How much the bundled model copies: its melodies at default settings checked against the data it learnt from.

    python benchmarks/bench_originality.py [--melodies 200] [--bars 16] [--data training_data] [--out FILE]

Generates `--melodies` melodies with the bundled default model at `SampleConfig`'s defaults (16 bars, as the app
writes them), then finds each one's longest run of notes that also occurs in a training melody, in any key
(`melodyrnn.copies.originality`). Reports the share with at least 4 bars copied (target < 1%), the distribution of the
longest copied run in bars and in notes, the worst cases, and the time the check took. The same check on held-out
melodies of the data (its validation split against its training split) shows what real tunes share by chance.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from repo_paths import repo_relative

from melodyrnn.copies import originality
from melodyrnn.dataset import PreparedData, prepare
from melodyrnn.sampling import Sampler

HERE = Path(__file__).resolve().parent


def _summary(copies) -> dict:
    bars = np.array([c.bars for c in copies])
    notes = np.array([c.notes for c in copies])
    return {
        "melodies": len(copies),
        "share_4_bars_or_more": float(np.mean(bars >= 4)),
        "share_2_bars_or_more": float(np.mean(bars >= 2)),
        "bars_percentiles": {str(q): float(np.percentile(bars, q)) for q in (10, 50, 90, 99, 100)},
        "notes_percentiles": {str(q): float(np.percentile(notes, q)) for q in (10, 50, 90, 99, 100)},
        "bars_histogram": {f"{lo}-{lo + 1}": int(np.sum((bars >= lo) & (bars < lo + 1))) for lo in range(0, 8)}
        | {"8+": int(np.sum(bars >= 8))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--melodies", type=int, default=200)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=str(HERE.parent / "training_data"))
    parser.add_argument("--out", default=str(HERE / "results" / "bench_originality.json"))
    args = parser.parse_args()

    data_path = Path(args.data)
    data = PreparedData.load(data_path) if data_path.is_file() else prepare(data_path, None, progress=False)
    start = time.perf_counter()
    melodies = Sampler().generate(args.melodies, bars=args.bars, seed=args.seed)
    generate_seconds = time.perf_counter() - start
    start = time.perf_counter()
    copies = originality(melodies, data)
    check_seconds = time.perf_counter() - start
    worst = sorted(range(len(copies)), key=lambda i: -copies[i].bars)[:5]
    held_out = originality(data.melodies("validation"), data.melodies("train"))
    result = {
        "what": __doc__.splitlines()[0],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "data": repo_relative(data_path),
        "settings": {"melodies": args.melodies, "bars": args.bars, "seed": args.seed, "sampling": "SampleConfig()"},
        "generated": _summary(copies),
        "worst": [copies[i].to_dict() for i in worst],
        "held_out_tunes_against_training_split": _summary(held_out),
        "seconds": {"generate": round(generate_seconds, 2), "check": round(check_seconds, 2)},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    g = result["generated"]
    print(
        f"{args.melodies} melodies of {args.bars} bars: {g['share_4_bars_or_more']:.1%} copy 4+ bars, median longest "
        f"run {g['bars_percentiles']['50']:.2f} bars; held-out tunes: "
        f"{result['held_out_tunes_against_training_split']['share_4_bars_or_more']:.1%}; check {check_seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
