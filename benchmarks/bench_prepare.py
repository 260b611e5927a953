"""Speed of `prepare` on training_data/: files/s and steps/s with 1 and 2 worker processes.

Variants alternate within one run (the machine is shared and noisy); the best of the repeats is kept
beside the median. Prints JSON and writes it to --out.

    python benchmarks/bench_prepare.py [--root training_data] [--repeats 3]
                                       [--out benchmarks/results/bench_prepare.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from repo_paths import repo_relative

from melodyrnn.dataset import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).parents[1] / "training_data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_prepare.json"))
    args = parser.parse_args()

    seconds: dict[int, list[float]] = {w: [] for w in args.workers}
    data = None
    for _ in range(args.repeats):
        for w in args.workers:
            t0 = time.perf_counter()
            data = prepare(args.root, workers=w, progress=False)
            seconds[w].append(time.perf_counter() - t0)
    files, steps = data.report.files_found, data.report.total_steps
    result = {
        "benchmark": "prepare",
        "root": repo_relative(args.root),
        "files": files,
        "melodies": data.num_melodies,
        "steps": steps,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "variants": {
            f"workers={w}": {
                "seconds": [round(s, 3) for s in secs],
                "files_per_s_median": round(files / statistics.median(secs), 1),
                "files_per_s_best": round(files / min(secs), 1),
                "steps_per_s_median": round(steps / statistics.median(secs)),
            }
            for w, secs in seconds.items()
        },
    }
    if len(args.workers) >= 2:
        a, b = args.workers[0], args.workers[1]
        result[f"speedup_workers_{b}_vs_{a}"] = round(statistics.median(seconds[a]) / statistics.median(seconds[b]), 2)
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
