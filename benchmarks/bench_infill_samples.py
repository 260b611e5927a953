"""How many Monte Carlo gaps `score_infill` needs: resampling's gap NLL at 32, 128 and 512 samples, same gaps.

`score_infill` estimates log p(suffix | prefix) by the mean over gaps drawn after the prefix. The log of a mean of
samples is, on average, below the log of the true mean, so with few samples the suffix's evidence is too low and
the gap's log-likelihood given both sides too high: the reduction against the prefix alone is overstated, and
shrinks toward the model's true figure as the samples grow. Same held-out melodies, gaps and seeds as
`bench_infill.py`; prints JSON and writes it to --out.

    python benchmarks/bench_infill_samples.py [--melodies 24] [--samples 32,128,512]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_infill import _gap_scores, held_out_collections  # noqa: E402

from melodyrnn.sampling import Sampler  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--melodies", type=int, default=24, help="per collection")
    parser.add_argument("--samples", default="32,128,512")
    parser.add_argument("--data", default=str(HERE.parent / "training_data"))
    parser.add_argument("--essen", default=str(HERE / ".data"))
    parser.add_argument("--out", default=str(HERE / "results" / "bench_infill_samples.json"))
    args = parser.parse_args()
    sampler = Sampler()
    collections = held_out_collections(Path(args.data), Path(args.essen), args.melodies)
    result: dict = {"what": __doc__.splitlines()[0], "melodies": args.melodies}
    for name, melodies in collections.items():
        result[name] = {}
        for samples in [int(s) for s in args.samples.split(",")]:
            gaps = {f"{g}_bars": _gap_scores(sampler, melodies, g, samples, seed=7) for g in (1, 2, 4)}
            result[name][f"{samples}_samples"] = gaps
            print(name, samples, {k: round(v["reduction"], 4) for k, v in gaps.items()}, flush=True)
    text = json.dumps(result, indent=2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
