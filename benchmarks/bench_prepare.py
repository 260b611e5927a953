"""Speed of `prepare` (read + extract + encode) on training_data/ and on song-sized multi-track files.

Songs are built by `arrangements.py` around training_data/ melodies: 3-12 tracks (melody, chords, bass, pads,
drums, counter-melodies...) lasting 3-5 minutes, written once to a temporary folder. For each collection:
files/s end to end with 1 and 2 worker processes (extraction's default `melody_tracks="auto"`, and "all"
on the songs), the same split into stages in one process (reading, track choice, melodies, chords), and the raw
parsers on the same bytes: symusic alone, mido alone, and `read_midi` (symusic checked by `midi_scan`, mido for
what needs repairs).

Variants alternate within one run (the machine is shared and noisy); the best of the repeats is kept beside
the median. CPU seconds (`time.process_time`) are reported for the one-process measurements, which a busy
machine disturbs less than wall time; the load averages at the start and the end say how busy it was.
`compiled_code_cost` says what the compiled loops cost a fresh process: compiling them (once per install) and
loading them (once per process). Prints JSON and writes it to --out. `--profile` prints cProfile's top functions
for `prepare` of the songs with one worker.

    python benchmarks/bench_prepare.py [--songs 200] [--repeats 3] [--profile]
                                       [--out benchmarks/results/bench_prepare.json]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from arrangements import build_arrangements, melody_files
from repo_paths import repo_relative

from melodyrnn.chords import scores_to_chords
from melodyrnn.collection import find_midi_files
from melodyrnn.dataset import prepare
from melodyrnn.extraction import ExtractionConfig, score_to_melodies
from melodyrnn.midi_io import read_midi
from melodyrnn.tracks import choose_melody_tracks


def write_songs(folder: Path, count: int, seed: int = 7) -> dict:
    """`count` song-sized arrangements (3-5 minutes) as MIDI files in `folder`; what they hold, in numbers."""
    melodies = melody_files(Path(__file__).parents[1] / "training_data" / "midi")
    arrangements = build_arrangements(melodies, count, seed, target_seconds=180)
    sizes, tracks, notes, minutes = [], [], [], []
    for i, arrangement in enumerate(arrangements):
        data = arrangement.midi
        (folder / f"song{i:04d}.mid").write_bytes(data)
        score = arrangement.score
        sizes.append(len(data))
        tracks.append(len(score.tracks))
        notes.append(sum(t.num_notes for t in score.tracks))
        minutes.append(float(score.quarters_to_seconds(score.end_quarters)) / 60)
    return {
        "songs": count,
        "tracks_min_mean_max": [min(tracks), round(statistics.mean(tracks), 1), max(tracks)],
        "minutes_min_mean_max": [round(min(minutes), 1), round(statistics.mean(minutes), 1), round(max(minutes), 1)],
        "notes_mean": round(statistics.mean(notes)),
        "kilobytes_mean": round(statistics.mean(sizes) / 1024, 1),
    }


def _rates(runs: dict[str, list[float]], files: int) -> dict:
    return {
        name: {
            "seconds": [round(s, 3) for s in secs],
            "files_per_s_median": round(files / statistics.median(secs), 1),
            "files_per_s_best": round(files / min(secs), 1),
            "ms_per_file_best": round(1000 * min(secs) / files, 3),
        }
        for name, secs in runs.items()
    }


def end_to_end(root: Path, repeats: int, variants: list[tuple[str, int, str]]) -> dict:
    """`prepare` wall time per (name, workers, melody_tracks) variant, alternating; files/s best and median."""
    runs: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    data = None
    for _ in range(repeats):
        for name, workers, melody_tracks in variants:
            extraction = ExtractionConfig(melody_tracks=melody_tracks)
            t0 = time.perf_counter()
            data = prepare(root, workers=workers, extraction=extraction, progress=False)
            runs[name].append(time.perf_counter() - t0)
    assert data is not None
    files = data.report.files_found
    return {
        "files": files,
        "melodies": data.num_melodies,
        "steps": data.report.total_steps,
        "variants": _rates(runs, files),
    }


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def stages(root: Path, repeats: int, melody_tracks: str) -> dict:
    """One process, CPU time: the raw parsers on the files' bytes, `read_midi`, the stages of extraction of read
    scores (track choice, melodies without chords, chords as `prepare` reads them: 32 files at a time), extraction
    whole, one file at a time, and `prepare` end to end."""
    import mido
    import symusic

    blobs = [p.read_bytes() for p in find_midi_files(root)]
    scores = [read_midi(b) for b in blobs]
    extraction = ExtractionConfig(melody_tracks=melody_tracks)
    no_chords = ExtractionConfig(melody_tracks=melody_tracks, chords="none")
    choices = [choose_melody_tracks(s, melody_tracks) for s in scores]
    requests = [(s, c.taken) for s, c in zip(scores, choices)]
    work: dict[str, Callable[[], object]] = {
        "symusic_parse": lambda: [symusic.Score.from_midi(b) for b in blobs],
        "mido_parse": lambda: [mido.MidiFile(file=io.BytesIO(b)) for b in blobs],
        "read_midi": lambda: [read_midi(b) for b in blobs],
        "choose_tracks": lambda: [choose_melody_tracks(s, melody_tracks) for s in scores],
        "melodies_without_chords": lambda: [
            score_to_melodies(s, extraction=no_chords, choice=c) for s, c in zip(scores, choices)
        ],
        "chords_32_files_at_a_time": lambda: [
            scores_to_chords(requests[i : i + 32]) for i in range(0, len(scores), 32)
        ],
        f"extract_{melody_tracks}": lambda: [score_to_melodies(s, extraction=extraction) for s in scores],
        "prepare_1_worker": lambda: prepare(root, workers=1, extraction=extraction, progress=False),
    }
    runs: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(repeats):
        for name, fn in work.items():
            runs[name].append(_timed(fn))
    return {"files": len(blobs), "cpu_seconds": True, "stages": _rates(runs, len(blobs))}


_FRESH_PROCESS = """
import json, sys, time
t0 = time.perf_counter()
from melodyrnn.dataset import prepare
t1 = time.perf_counter()
prepare(sys.argv[1], workers=1, progress=False)
t2 = time.perf_counter()
prepare(sys.argv[1], workers=1, progress=False)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first_prepare": t2 - t1, "second_prepare": t3 - t2}))
"""


def compiled_code_cost(root: Path, files: int = 8) -> dict:
    """What numba's compiled loops cost a fresh process, in wall seconds: `prepare` of a few files in a process
    whose compiled-code cache is empty (it compiles every loop), then in a second process with that cache (it
    loads them), each against a second `prepare` in the same process. A user pays the first once per install;
    every process (prepare's workers too) pays the second."""
    with tempfile.TemporaryDirectory() as tmp:
        folder, cache = Path(tmp) / "files", Path(tmp) / "cache"
        folder.mkdir()
        for path in find_midi_files(root)[:files]:
            (folder / path.name).write_bytes(path.read_bytes())
        env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
        runs = {}
        for name in ("empty_cache", "filled_cache"):
            out = subprocess.run(
                [sys.executable, "-c", _FRESH_PROCESS, str(folder)], env=env, capture_output=True, text=True, check=True
            )
            run = json.loads(out.stdout.strip().splitlines()[-1])
            runs[name] = {k: round(v, 3) for k, v in run.items()}
            runs[name]["first_minus_second"] = round(run["first_prepare"] - run["second_prepare"], 3)
    return {"files": files, "wall_seconds": True, **runs}


def profile_prepare(root: Path, lines: int = 25) -> str:
    profiler = cProfile.Profile()
    profiler.runcall(prepare, root, workers=1, progress=False)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(lines)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).parents[1] / "training_data"))
    parser.add_argument("--songs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_prepare.json"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # repairs are counted in the reports; one warning per file is noise here

    result: dict = {"benchmark": "prepare", "cpu_count": os.cpu_count(), "python": platform.python_version()}
    result["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]  # other work on a shared machine
    root = Path(args.root)
    both = [("workers=1", 1, "auto"), ("workers=2", 2, "auto")]
    result["training_data"] = {"root": repo_relative(root), **end_to_end(root, args.repeats, both)}
    result["training_data"]["one_process"] = stages(root, args.repeats, "auto")
    with tempfile.TemporaryDirectory() as tmp:
        songs = Path(tmp)
        result["songs"] = {"built": write_songs(songs, args.songs)}
        variants = [*both, ("workers=1 melody_tracks=all", 1, "all"), ("workers=2 melody_tracks=all", 2, "all")]
        result["songs"].update(end_to_end(songs, args.repeats, variants))
        result["songs"]["one_process"] = stages(songs, args.repeats, "auto")
        result["songs"]["one_process_all_tracks"] = stages(songs, 1, "all")["stages"]
        result["songs"]["compiled_code_cost"] = compiled_code_cost(songs)
        if args.profile:
            print(profile_prepare(songs))
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
