"""Infill: the bundled melody model's resampling vs the trained infill model, gap NLL per step, the join and speed.

On held-out melodies (training_data/'s validation split, and music21's Essen folk songs, which the model never
saw; Essen is used to measure only) cropped to 16 bars of 16 steps, a gap of 1, 2 or 4 bars starting at bar 6 is
scored by `score_infill` (both sides; the suffix evidence a Monte Carlo estimate) and by its left-to-right part
alone. The join: log p(first step after the gap | new gap) and of the whole suffix, for versions resampled from
K candidates (K = 1 is plain continuation). Speed: 4 versions of a 4-bar gap after warm-up, per K.
The trained infill model (`--infill-model`, default the shipped one; it reads each step's meter and chords and the
steps left in the gap) is measured on the same gaps: its exact log p(gap | both sides) against the melody model's
prefix-only score, the join of its versions scored by the melody model as above, and its time for 4 versions of a
4-bar gap.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from repo_paths import repo_relative  # noqa: E402
from small_collections import build_style  # noqa: E402

from melodyrnn.dataset import prepare  # noqa: E402
from melodyrnn.encoding import melody_to_tokens  # noqa: E402
from melodyrnn.evaluation import score_token_lists  # noqa: E402
from melodyrnn.extraction import midi_to_melodies  # noqa: E402
from melodyrnn.gaps import bar_lines  # noqa: E402
from melodyrnn.infill_model import DEFAULT_INFILL_PATH, InfillModel  # noqa: E402
from melodyrnn.sampling import Sampler, infill, score_infill  # noqa: E402

BARS, BAR_STEPS, GAP_START = 16, 16, 6


def cropped(melodies, limit):
    """Melodies with 16-step bars (4/4, 2/2) and at least 16 bars, cut to their first 16 bars."""
    out = []
    for m in melodies:
        if m.steps_per_bar == BAR_STEPS and len(bar_lines(m)) > BARS and len(m.time_signatures) == 1:
            out.append(m.first_steps(BARS * BAR_STEPS))
        if len(out) == limit:
            break
    return out


def held_out_collections(data: Path, essen: Path, limit: int) -> dict:
    """The benchmark's tunes: up to `limit` 16-bar crops of `data`'s validation split and of the Essen songs
    (written as MIDI under `essen`), by collection."""
    collections = {
        "training_data_validation": cropped(prepare(data, None, progress=False).melodies("validation"), limit)
    }
    songs = []
    for path in build_style("essen", essen):
        try:
            songs += midi_to_melodies(path)
        except ValueError:
            continue
    collections["essen"] = cropped(songs, limit)
    return collections


def _gap_scores(sampler, melodies, gap_bars, samples, seed):
    both, left, errors, steps = 0.0, 0.0, [], 0
    for i, m in enumerate(melodies):
        score = score_infill(m, GAP_START, GAP_START + gap_bars, sampler, samples, seed=seed + i)
        both, left, steps = both - score.total, left - score.prefix_only, steps + len(score.per_step)
        errors.append(score.standard_error)
    return {
        "nll_per_step_both_sides": both / steps,
        "nll_per_step_prefix_only": left / steps,
        "reduction": 1 - both / left,
        "median_standard_error_nats_per_gap": statistics.median(errors),
    }


def model_gap_scores(filler, sampler, melodies, gap_bars):
    """The infill model's exact gap NLL per step against the melody model's prefix-only one, on the same steps."""
    both, left, steps = 0.0, 0.0, 0
    for m in melodies:
        score = filler.score_infill(m, GAP_START, GAP_START + gap_bars)
        prefix = sampler.score_infill(m, GAP_START, GAP_START + gap_bars, 1, seed=0)
        both, left, steps = both - score.total, left - prefix.prefix_only, steps + len(score.per_step)
    return {"nll_per_step_both_sides": both / steps, "nll_per_step_prefix_only": left / steps,
            "reduction": 1 - both / left}  # fmt: skip


def _join(sampler, melodies, gap_bars, candidates, seed, filler=None):
    """Mean log p(first step after the gap) and log p(suffix) per step, under the melody model, for versions
    infilled with K candidates (or by the infill model `filler`)."""
    first, suffix, suffix_steps = [], 0.0, 0
    end = (GAP_START + gap_bars) * BAR_STEPS
    versions = []
    for i, m in enumerate(melodies):
        if filler is not None:
            versions += filler.infill(m, GAP_START, GAP_START + gap_bars, 2, seed=seed + i)
            continue
        versions += infill(m, GAP_START, GAP_START + gap_bars, 2, sampler, candidates=candidates, seed=seed + i)
    tokens = [melody_to_tokens(v, sampler.encoding) for v in versions]
    for (ll, _), t in zip(score_token_lists(sampler.model, tokens), tokens):
        first.append(ll[end - 1])
        suffix += ll[end - 1 :].sum()
        suffix_steps += len(t) - end
    return {"first_step_log_likelihood": float(np.mean(first)), "suffix_nll_per_step": -suffix / suffix_steps}


def timing(sampler, melody, repeats=3, **options):
    """Best of `repeats` seconds for 4 versions of a 4-bar gap with `infill`'s `options`; `sampler` a melody
    model's or an `InfillModel`."""
    infill(melody, GAP_START, GAP_START + 4, 4, sampler, seed=0, **options)  # warm-up: compile
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        infill(melody, GAP_START, GAP_START + 4, 4, sampler, seed=r + 1, **options)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--melodies", type=int, default=24, help="per collection")
    parser.add_argument("--samples", type=int, default=32, help="Monte Carlo gaps for score_infill")
    parser.add_argument("--data", default=str(HERE.parent / "training_data"))
    parser.add_argument("--essen", default=str(HERE / ".data"))
    parser.add_argument("--out", default=str(HERE / "results" / "bench_infill.json"))
    parser.add_argument("--infill-model", default=str(DEFAULT_INFILL_PATH), help="the trained infill bundle")
    args = parser.parse_args()

    sampler = Sampler()
    filler = InfillModel(args.infill_model)
    collections = held_out_collections(Path(args.data), Path(args.essen), args.melodies)
    trained = {k: filler.metadata.get(k) for k in ("updates", "val_gap_nll_per_step")}
    result = {"what": __doc__.splitlines()[0], "data": repo_relative(args.data), "samples": args.samples,
              "infill_model": repo_relative(args.infill_model), "infill_model_training": trained}  # fmt: skip
    for name, melodies in collections.items():
        entry: dict = {"melodies": len(melodies), "gaps": {}, "infill_model_gaps": {}}
        for gap_bars in (1, 2, 4):
            entry["gaps"][f"{gap_bars}_bars"] = _gap_scores(sampler, melodies, gap_bars, args.samples, seed=7)
            entry["infill_model_gaps"][f"{gap_bars}_bars"] = model_gap_scores(filler, sampler, melodies, gap_bars)
            print(name, gap_bars, entry["gaps"][f"{gap_bars}_bars"], entry["infill_model_gaps"][f"{gap_bars}_bars"])
        entry["join_2_bar_gap_by_candidates"] = {
            str(k): _join(sampler, melodies[:12], 2, k, seed=11) for k in (1, 4, 8, 16, 64)
        }
        entry["join_2_bar_gap_infill_model"] = _join(sampler, melodies[:12], 2, 1, seed=11, filler=filler)
        print(name, entry["join_2_bar_gap_by_candidates"], entry["join_2_bar_gap_infill_model"], flush=True)
        result[name] = entry
    melody = collections["training_data_validation"][0]
    result["seconds_4_versions_4_bar_gap_by_candidates"] = {
        str(k): timing(sampler, melody, candidates=k) for k in (1, 4, 8, 16, 32)
    }
    result["seconds_4_versions_4_bar_gap_infill_model"] = timing(filler, melody, candidates=1)
    print(result["seconds_4_versions_4_bar_gap_by_candidates"], result["seconds_4_versions_4_bar_gap_infill_model"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
