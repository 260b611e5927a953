"""Training on small collections: held-out NLL per step of each way to train, at 10, 30, 100 and 300 files.

    python benchmarks/bench_small_data.py [--styles essen palestrina] [--sizes 10 30 100 300] [--max-minutes 4]
    python benchmarks/bench_small_data.py --sweep [--sizes 30]      # fine-tuning settings, one at a time

Collections come from `small_collections.py` (music21's corpus; neither style is in `training_data/` nor in what
the bundled model learnt). Per style, a fixed set of held-out files is never trained on; the training collections
are nested (the 30 files hold the 10). Every way is scored the same way: NLL per step (nats) on every held-out
melody, whole, from its first step. The ways:

- `today_defaults`: the defaults before this benchmark existed — from scratch, an epoch = one pass, 50 epochs,
  patience 4, learning rate 3e-3, no transposition, the 10% validation split by hash alone.
- `from_bundled_today`: `--from` the bundled model with those same settings.
- `new_defaults`: `melodyrnn train DATA -o RUN` with no flag (what `melodyrnn.planning` chooses).
- `bundled_untouched`: the bundled default model, not trained at all.
- `ngram_6`: a Witten-Bell 6-gram fit on every melody of the training collection.

`--sweep` instead fine-tunes the bundled model with one setting changed at a time from a base (learning rate,
warm-up, freezing, transposition), all with the same fixed budget of updates, to choose the fine-tuning defaults.
Every run is capped at `--max-minutes` (the same cap for every way). Results: JSON in `benchmarks/results/`.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
from repo_paths import repo_relative
from small_collections import build_style

from melodyrnn.bundle import DEFAULT_BUNDLE_PATH
from melodyrnn.collection import is_validation
from melodyrnn.dataset import PreparedData, prepare
from melodyrnn.evaluation import evaluate, summarize
from melodyrnn.ngram import NGramModel
from melodyrnn.training import train

HERE = Path(__file__).resolve().parent
HELD_OUT = {"essen": 150, "palestrina": 80}  # files; Palestrina's movements are long (~1,000 steps each)
TODAY = {"epochs": 50, "learning_rate": 3e-3, "patience": 4, "transpose": 0, "warmup_updates": 0}
SWEEP_BASE = {"updates": 150, "learning_rate": 1e-3, "warmup_updates": 20, "transpose": 5, "freeze": 0}
SWEEP = {
    "base": {},
    "lr_3e-3": {"learning_rate": 3e-3},
    "lr_3e-4": {"learning_rate": 3e-4},
    "no_warmup": {"warmup_updates": 0},
    "freeze_2": {"freeze": 2},
    "no_transpose": {"transpose": 0},
    "cosine": {"schedule": "cosine"},
    "updates_50": {"updates": 50},
    "updates_300": {"updates": 300},
    "lr_3e-3_updates_50": {"learning_rate": 3e-3, "updates": 50},
}


def _collection(files: list[Path], folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for f in files:
        shutil.copy(f, folder / f.name)
    return folder


def _today_split(data: PreparedData) -> PreparedData:
    # Before the minimum of validation steps: 10% of files by hash, whatever they hold.
    data.is_validation = np.array([is_validation(str(data.files[i]), 0.1) for i in data.file_ids], dtype=bool)
    return data


def _run(name: str, data, run_dir: Path, held_out: PreparedData, **kwargs) -> dict:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    start = time.perf_counter()
    result = train(data, run_dir, progress=False, **kwargs)
    seconds = time.perf_counter() - start
    best = result.best_path or result.latest_path
    nll = evaluate(best, held_out, split="all")["nll_per_step"]
    row = {
        "held_out_nll": nll,
        "seconds": round(seconds, 1),
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "stopped": result.stopped,
        "start": result.start.get("reason"),
        "plan": result.plan.get("notes"),
        "updates_per_epoch": result.plan.get("updates_per_round"),
        "updates_about": result.epochs * int(result.plan.get("updates_per_round") or 0),
        "val_loss_best": result.best_val_loss,
    }
    print(f"  {name:<20} held-out {nll:.4f}  {seconds:6.1f} s  epochs {result.epochs}  best {result.best_epoch}"
          f"  {result.stopped}", flush=True)  # fmt: skip
    return row


def _baselines(train_data: PreparedData, held_out: PreparedData) -> dict:
    tokens = [held_out.melody_tokens(i) for i in held_out.indices("all")]
    ngram = NGramModel(order=6, vocab_size=train_data.config.vocab_size).fit(
        [train_data.melody_tokens(i) for i in train_data.indices("all")]
    )
    return {
        "bundled_untouched": {"held_out_nll": evaluate(DEFAULT_BUNDLE_PATH, held_out, split="all")["nll_per_step"]},
        "ngram_6": {"held_out_nll": summarize(tokens, ngram.score_token_lists(tokens))["nll_per_step"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", nargs="+", default=["essen", "palestrina"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 30, 100, 300])
    parser.add_argument("--ways", nargs="+", default=["today_defaults", "from_bundled_today", "new_defaults"])
    parser.add_argument("--max-minutes", type=float, default=4.0)
    parser.add_argument("--sweep", action="store_true", help="compare fine-tuning settings instead")
    parser.add_argument("--settings", nargs="+", default=list(SWEEP), help="which settings --sweep compares")
    parser.add_argument("--work", default=str(HERE / ".data" / "runs"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    work = Path(args.work)
    name = "bench_small_data_sweep.json" if args.sweep else "bench_small_data.json"
    out = Path(args.out or HERE / "results" / name)
    # a later run adds to (or replaces) the entries it measures, keeping the others
    previous = json.loads(out.read_text()).get("styles", {}) if out.is_file() else {}
    results: dict = {
        "what": __doc__.split("\n\n")[0],
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "max_minutes_per_run": args.max_minutes,
        "styles": previous,
    }
    for style in args.styles:
        files = build_style(style, HERE / ".data")
        held_files, pool = files[: HELD_OUT[style]], files[HELD_OUT[style] :]
        held_out = prepare(_collection(held_files, work / style / "held_out"), None, workers=1, progress=False)
        style_result = results["styles"].setdefault(
            style, {"held_out_files": len(held_files), "held_out_steps": int(held_out.lengths.sum()), "sizes": {}}
        )
        for size in args.sizes:
            folder = _collection(pool[:size], work / style / f"files_{size}")
            data = prepare(folder, None, workers=1, progress=False)
            print(f"{style} {size} files: {data.num_melodies} melodies, {int(data.lengths.sum())} steps", flush=True)
            entry = style_result["sizes"].get(str(size), {})
            entry.update(files=size, melodies=data.num_melodies, steps=int(data.lengths.sum()))
            entry.update(_baselines(data, held_out))
            cap = {"max_minutes": args.max_minutes}
            if args.sweep:
                for name, change in ((n, SWEEP[n]) for n in args.settings):
                    config = {**SWEEP_BASE, **change, **cap}
                    entry[name] = _run(name, data, work / "run", held_out, train_config=config,
                                       from_bundle=DEFAULT_BUNDLE_PATH)  # fmt: skip
                    entry[name]["settings"] = config
            for way in [] if args.sweep else args.ways:
                if way == "new_defaults":
                    entry[way] = _run(way, folder, work / "run", held_out, train_config=cap)
                    continue
                today = _today_split(prepare(folder, None, workers=1, progress=False))
                per_pass = max(1, -(-today.num_windows("train", 256) // 64))
                config = {**TODAY, **cap, "steps_per_epoch": per_pass}
                start = {"from_bundle": DEFAULT_BUNDLE_PATH} if way == "from_bundled_today" else {"from_scratch": True}
                entry[way] = _run(way, today, work / "run", held_out, train_config=config, **start)
            style_result["sizes"][str(size)] = entry
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=2) + "\n")  # after every size: a long run keeps what it did
    results["data"] = repo_relative(work)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {repo_relative(out)}")


if __name__ == "__main__":
    main()
