"""Held-out quality of trained bundles next to a Witten-Bell 6-gram: NLL per step on whole validation melodies.

    python benchmarks/compare_models.py --data runs/data.npz name=runs/attention/best.melodyrnn ... \
        [--order 6] [--baseline NAME] [--out benchmarks/results/model_comparison.json]

The n-gram is fitted on the cache's training split; every model is scored by `melodyrnn.evaluation` on the
validation split (each melody whole, from its first step), so all numbers are comparable. With `--baseline NAME`
each entry also gets `below_baseline`, its NLL's relative distance below that model's (0.2 = 20% lower).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from repo_paths import repo_relative

from melodyrnn.dataset import PreparedData
from melodyrnn.evaluation import evaluate, summarize
from melodyrnn.ngram import NGramModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="*", help="NAME=PATH of bundles to score")
    parser.add_argument("--data", required=True, help="a prepared cache (.npz)")
    parser.add_argument("--order", type=int, default=6)
    parser.add_argument("--baseline", default=None, help="NAME of the model the others are compared with")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "model_comparison.json"))
    args = parser.parse_args()

    names = [f"{args.order}-gram (Witten-Bell)"] + [spec.partition("=")[0] for spec in args.bundles]
    if args.baseline is not None and args.baseline not in names:
        parser.error(f"--baseline {args.baseline!r} is none of the models: {', '.join(names)}")
    data = PreparedData.load(args.data)
    train = [data.melody_tokens(i) for i in data.indices("train")]
    val = [data.melody_tokens(i) for i in data.indices("validation")]
    result = {
        "data": repo_relative(args.data),
        "train_melodies": len(train),
        "validation_melodies": len(val),
        "models": {},
    }

    t0 = time.perf_counter()
    ngram = NGramModel(order=args.order, vocab_size=data.config.vocab_size).fit(train)
    metrics = summarize(val, ngram.score_token_lists(val))
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    result["models"][names[0]] = metrics
    print(f"{args.order}-gram: NLL {metrics['nll_per_step']:.4f}", flush=True)

    for spec in args.bundles:
        name, _, path = spec.partition("=")
        from melodyrnn.bundle import load_bundle

        bundle = load_bundle(path, compile=False)
        metrics = evaluate(bundle, data, split="validation")
        training = bundle.metadata.get("training", {})
        history = training.get("history", [])
        metrics.update(
            path=repo_relative(path),
            model_config=bundle.model_config.to_dict(),
            parameters=int(bundle.model.count_params()),
            epochs=training.get("epoch"),
            train_seconds=round(sum(h.get("seconds", 0.0) for h in history), 1) if history else None,
        )
        result["models"][name] = metrics
        print(f"{name}: NLL {metrics['nll_per_step']:.4f}", flush=True)

    if args.baseline:
        base = result["models"][args.baseline]["nll_per_step"]
        for name, metrics in result["models"].items():
            metrics["below_baseline"] = round(1.0 - metrics["nll_per_step"] / base, 4)
            print(f"{name}: {100 * metrics['below_baseline']:+.1f}% below {args.baseline}")
        result["baseline"] = args.baseline

    text = json.dumps(result, indent=2, default=str)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
