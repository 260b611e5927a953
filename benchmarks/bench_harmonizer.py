"""Harmonizer accuracy on held-out Bach chorales: bidirectional vs forward-only vs the key's most frequent chord.

The chorales' soprano lines with the chords of their lower voices (training_data/build_chords.py) are split by
file; the same split trains a bidirectional harmonizer and a forward-only one with about as many weights, and a
baseline plays on every beat the chord most frequent in the training split relative to the key (the key
estimated from the melody, Krumhansl-Schmuckler). Scores are mir_eval's root and majmin agreement per beat,
weighted by duration, against the chords read from the lower voices (full labels). Writes
benchmarks/results/bench_harmonizer.json; with --ship, copies the bidirectional model to
melodyrnn/pretrained/harmonizer.melodyrnn when it beats the other two on majmin.

Usage: ``python benchmarks/bench_harmonizer.py [--updates 1000] [--ship]`` (about ten minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from repo_paths import ROOT, repo_relative

sys.path.insert(0, str(ROOT / "training_data"))

OUT = ROOT / "benchmarks" / "results" / "bench_harmonizer.json"
SHIPPED = ROOT / "melodyrnn" / "pretrained" / "harmonizer.melodyrnn"


def _intervals(melody, changes) -> tuple[np.ndarray, list[str]]:
    """mir_eval intervals (quarters) and labels of `(step, label)` changes over the melody's length."""
    spq = melody.steps_per_quarter
    steps = [s for s, _ in changes] + [len(melody)]
    intervals = np.array([[a / spq, b / spq] for a, b in zip(steps[:-1], steps[1:])], np.float64)
    return intervals, [label for _, label in changes]


def score_melodies(melodies, estimates) -> dict:
    """Duration-weighted root and majmin agreement of `estimates` (chord changes per melody) with the melodies'."""
    import mir_eval

    totals = Counter()
    for melody, changes in zip(melodies, estimates):
        ref_i, ref_l = _intervals(melody, melody.chords)
        est_i, est_l = _intervals(melody, changes)
        est_i, est_l = mir_eval.util.adjust_intervals(est_i, est_l, ref_i.min(), ref_i.max(), "N", "N")
        merged, ref, est = mir_eval.util.merge_labeled_intervals(ref_i, ref_l, est_i, est_l)
        durations = mir_eval.util.intervals_to_durations(merged)
        for name, compare in (("root", mir_eval.chord.root), ("majmin", mir_eval.chord.majmin)):
            scores = compare(ref, est)
            counted = scores >= 0  # mir_eval marks what a measure does not judge with -1
            totals[f"{name}_hit"] += float((scores[counted] * durations[counted]).sum())
            totals[f"{name}_weight"] += float(durations[counted].sum())
    return {name: round(totals[f"{name}_hit"] / totals[f"{name}_weight"], 4) for name in ("root", "majmin")}


def key_baseline(train, test) -> tuple[list, dict]:
    """Each test melody gets, on its first beat, the chord most frequent (by beats) in the training melodies of the
    same mode, moved to its estimated tonic; and what those chords were."""
    from melodyrnn.harmonize import N_CLASS, chords_to_classes, class_to_label, melody_to_frames, transpose_classes
    from melodyrnn.metrics import estimate_key
    from melodyrnn.theory import parse_key

    counts = {"major": Counter(), "minor": Counter()}
    for melody in train:
        key = estimate_key(melody)[0]
        if key == "unknown":
            continue
        tonic, mode = parse_key(key)
        classes = chords_to_classes(melody, melody_to_frames(melody)[1])
        counts[mode].update(transpose_classes(classes[classes != N_CLASS], -tonic).tolist())
    best = {mode: counts[mode].most_common(1)[0][0] for mode in counts}
    estimates = []
    for melody in test:
        key = estimate_key(melody)[0]
        tonic, mode = parse_key("C major" if key == "unknown" else key)
        estimates.append(((0, class_to_label(int(transpose_classes(np.array([best[mode]]), tonic)[0]))),))
    return estimates, {mode: class_to_label(c) + " (on C)" for mode, c in best.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--units", type=int, default=64, help="bidirectional units per direction")
    parser.add_argument("--forward-units", type=int, default=91, help="forward-only units (about as many weights)")
    parser.add_argument("--limit", type=int, default=None, help="only the first LIMIT chorales")
    parser.add_argument("--ship", action="store_true", help="copy the bidirectional model if it wins")
    args = parser.parse_args(argv)

    from build_chords import read_chorales

    from melodyrnn.dataset import PreparedData
    from melodyrnn.harmonize import harmonize
    from melodyrnn.harmonizer_training import train_harmonizer

    started = time.perf_counter()
    melodies, counts = read_chorales(args.limit)
    data = PreparedData.from_melodies(melodies, validation_fraction=0.15)
    train, test = data.melodies("train"), data.melodies("validation")
    results: dict = {
        "data": {**dict(counts), "train_melodies": len(train), "test_melodies": len(test)},
        "read_seconds": round(time.perf_counter() - started, 1),
        "split": "by chorale file, 15% held out (collection.validation_files)",
        "reference": "chords of alto, tenor and bass read per beat by melodyrnn.chords.score_to_chords",
        "models": {},
    }
    estimates, chosen = key_baseline(train, test)
    results["models"]["key_most_frequent_chord"] = {**score_melodies(test, estimates), "chords": chosen}
    with tempfile.TemporaryDirectory() as scratch:
        for name, units, bidirectional in (("bidirectional", args.units, True), ("forward", args.forward_units, False)):
            begun = time.perf_counter()
            harmonizer = train_harmonizer(
                train, Path(scratch) / name, units=units, bidirectional=bidirectional, updates=args.updates
            )
            predicted = harmonize_all(harmonize, test, harmonizer)
            results["models"][name] = {
                **score_melodies(test, predicted),
                "units": units,
                "weights": int(harmonizer.model.count_params()),
                "updates": args.updates,
                "train_seconds": round(time.perf_counter() - begun, 1),
                "best_update": harmonizer.metadata.get("best_update"),
            }
            print(name, json.dumps(results["models"][name]), file=sys.stderr, flush=True)
        models = results["models"]
        wins = all(
            models["bidirectional"]["majmin"] > models[o]["majmin"] for o in ("forward", "key_most_frequent_chord")
        )
        results["bidirectional_wins"] = wins
        if args.ship and wins:
            shutil.copyfile(Path(scratch) / "bidirectional" / "best.melodyrnn", SHIPPED)
            results["shipped"] = repo_relative(SHIPPED)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


def harmonize_all(harmonize, melodies, harmonizer) -> list:
    """Each melody's predicted chord changes (one chord per beat, argmax)."""
    return [harmonize(melody, harmonizer).chords for melody in melodies]


if __name__ == "__main__":
    sys.exit(main())
