"""MusicXML and ABC in, measured on music21's bundled corpus: how many tunes read, which were skipped and why,
melodies and chords found, repairs (repeats kept as written), and the seconds it costs; on the Bach chorales (four
named parts), how often the melody-track choice takes the soprano.

Usage: ``python benchmarks/bench_scores.py [--oneills 5] [--ryans 100] [--chorales 40]`` (about two minutes on one
core); writes ``benchmarks/results/bench_scores.json``. The corpus is used to measure only, never to train.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repo_paths import ROOT

from melodyrnn.encoding import EncodingConfig
from melodyrnn.extraction import ExtractionConfig, score_to_melodies
from melodyrnn.scores import read_scores
from melodyrnn.tracks import choose_melody_tracks

OUT = ROOT / "benchmarks" / "results" / "bench_scores.json"


def measure(paths: list[Path]) -> dict:
    """Reads each file and extracts its melodies; counts tunes, skips, melodies, chords and repairs."""
    counts: Counter = Counter()
    skipped: Counter = Counter()
    repairs: Counter = Counter()
    soprano_taken = 0
    started = time.perf_counter()
    for path in paths:
        counts["files"] += 1
        try:
            book = read_scores(path)
        except Exception as err:  # a file that cannot be read at all is a finding, not a crash
            skipped[f"file: {type(err).__name__}: {getattr(err, 'reason', err)}"[:100]] += 1
            continue
        counts["tunes_read"] += len(book.scores)
        counts["tunes_skipped"] += len(book.skipped)
        skipped.update(reason.split(":")[0][:60] for _, reason in book.skipped)
        for score in book.scores:
            repairs.update(r.split(":")[0] for r in score.repairs)
            counts["tunes_with_chord_symbols"] += bool(score.chord_symbols)
            counts["chord_symbols"] += len(score.chord_symbols)
            choice = choose_melody_tracks(score, "auto")
            if len(score.tracks) > 1:
                counts["multi_part"] += 1
                taken = [score.tracks[i].name.lower() for i in choice.taken]
                soprano_taken += taken == ["soprano"]
            melodies = score_to_melodies(score, EncodingConfig(), ExtractionConfig(), Counter(), choice)
            counts["melodies"] += len(melodies)
            counts["melody_steps"] += sum(len(m) for m in melodies)
            counts["melodies_with_chords"] += sum(bool(m.chords) for m in melodies)
    seconds = time.perf_counter() - started
    return {
        **dict(counts),
        "seconds": round(seconds, 2),
        "tunes_per_second": round(counts["tunes_read"] / seconds, 1) if seconds else None,
        "skipped_by_reason": dict(skipped.most_common()),
        "repairs_by_kind": dict(repairs.most_common()),
        "multi_part_soprano_taken": soprano_taken,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oneills", type=int, default=5, help="O'Neill's 1850 files (about 50 tunes each)")
    parser.add_argument("--ryans", type=int, default=100, help="Ryan's Mammoth files (one tune each)")
    parser.add_argument("--chorales", type=int, default=40, help="Bach chorales (MusicXML, four parts)")
    args = parser.parse_args(argv)
    from music21 import corpus

    root = Path(corpus.__file__).parent
    sets = {
        "abc_oneills1850": sorted((root / "oneills1850").glob("*.abc"))[: args.oneills],
        "abc_ryans_mammoth": sorted((root / "ryansMammoth").glob("*.abc"))[: args.ryans],
        "abc_misc_folk": sorted((root / "miscFolk").glob("*.abc")),
        "mxl_lead_sheets": sorted((root / "leadSheet").glob("*.mxl")),
        "mxl_bach_chorales": sorted((root / "bach").glob("bwv*.mxl"))[: args.chorales],
    }
    import music21

    results = {"music21_version": music21.__version__, "sets": {}}
    for name, paths in sets.items():
        results["sets"][name] = measure(paths)
        print(name, json.dumps(results["sets"][name]), file=sys.stderr, flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
