"""Checks that `prepare` gives exactly what it gave before: run with --save before a change, --check after.

What is compared, per collection (training_data/, the song-sized arrangements of `bench_prepare.py`, and
tests/data/'s odd files): every melody `score_to_melodies` extracts from every file (events, chords, tempos,
time signatures, velocity, program, start step), the track choice (verdicts and reasons), the chords read from the
accompaniment, what was dropped, the repairs, and `prepare`'s report and cache arrays. Everything goes into
one JSON file (gzipped); --check names the first file that differs.

    python benchmarks/check_prepare_identical.py --save /tmp/prepare_reference.json.gz [--songs 150]
    python benchmarks/check_prepare_identical.py --check /tmp/prepare_reference.json.gz [--songs 150]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from bench_prepare import write_songs

from melodyrnn.collection import find_midi_files
from melodyrnn.dataset import prepare
from melodyrnn.errors import MelodyRNNError
from melodyrnn.extraction import ExtractionConfig, score_to_melodies
from melodyrnn.midi_io import read_midi
from melodyrnn.tracks import choose_melody_tracks

REPO = Path(__file__).parents[1]


def _melody(m) -> dict:
    return {
        "events": hashlib.sha1(m.events.astype(np.int16).tobytes()).hexdigest(),
        "steps": int(len(m.events)),
        "chords": [list(c) for c in m.chords],
        "tempos": [list(t) for t in m.tempos],
        "time_signatures": [list(t) for t in m.time_signatures],
        "velocity": m.velocity,
        "program": m.program,
        "start_step": m.start_step,
        "source": m.source,
    }


def file_record(path: Path, selection: str) -> dict:
    """What reading and extracting one file gives, as plain JSON values."""
    try:
        score = read_midi(path, name=path.name)
    except MelodyRNNError as err:
        return {"error": f"{type(err).__name__}: {err}"}
    record: dict = {"repairs": list(score.repairs), "tempos": score.tempos, "meters": score.time_signatures}
    try:
        choice = choose_melody_tracks(score, selection)
    except MelodyRNNError as err:
        return {**record, "error": f"{type(err).__name__}: {err}"}
    record["verdicts"] = [[v.index, v.name, v.taken, v.reason, v.key, v.score] for v in choice.verdicts]
    stats: Counter = Counter()
    melodies = score_to_melodies(
        score, extraction=ExtractionConfig(melody_tracks=selection), stats=stats, choice=choice
    )
    record["melodies"] = [_melody(m) for m in melodies]
    record["stats"] = dict(sorted(stats.items()))
    return record


def prepare_record(root: Path, selection: str) -> dict:
    data = prepare(root, workers=1, extraction=ExtractionConfig(melody_tracks=selection), progress=False)
    arrays = {}
    for name in (*data._ARRAYS, *data._CHORD_ARRAYS):
        value = np.asarray(getattr(data, name))
        arrays[name] = hashlib.sha1(value.astype(str).tobytes() if value.dtype.kind == "U" else value.tobytes())
        arrays[name] = arrays[name].hexdigest() + f" {value.dtype} {value.shape}"
    report = json.loads(json.dumps(data.report.to_dict()))
    report["root"] = root.name if root.name != "training_data" else report["root"]  # songs sit in a temporary folder
    return {"report": report, "arrays": arrays, "chord_labels": list(data.chord_labels)}


def collection_record(root: Path, selections: tuple[str, ...]) -> dict:
    out: dict = {}
    for selection in selections:
        files = {p.relative_to(root).as_posix(): file_record(p, selection) for p in find_midi_files(root)}
        out[selection] = {"files": files, "prepare": prepare_record(root, selection)}
    return json.loads(json.dumps(out))  # tuples to lists, as the saved file has them


def everything(songs: int) -> dict:
    warnings.simplefilter("ignore")
    result = {"training_data": collection_record(REPO / "training_data", ("auto",))}
    result["test_data"] = {"auto": {"files": {}}}
    for p in sorted((REPO / "tests" / "data").glob("*.mid")):
        result["test_data"]["auto"]["files"][p.name] = json.loads(json.dumps(file_record(p, "auto")))
    with tempfile.TemporaryDirectory() as tmp:
        write_songs(Path(tmp), songs)
        result["songs"] = collection_record(Path(tmp), ("auto", "all"))
    return result


def first_difference(a, b, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}/{key}: only in {'new' if key in b else 'reference'}"
            found = first_difference(a[key], b[key], f"{where}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{where}: reference {str(a)[:300]} != new {str(b)[:300]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save")
    group.add_argument("--check")
    parser.add_argument("--songs", type=int, default=150)
    args = parser.parse_args()
    result = everything(args.songs)
    if args.save:
        with gzip.open(args.save, "wt") as f:
            json.dump(result, f)
        print(f"saved {args.save}")
        return
    with gzip.open(args.check, "rt") as f:
        reference = json.load(f)
    for selection in ("auto", "all"):  # the songs' temporary folder, named in the reference
        report = reference["songs"][selection]["prepare"]["report"]
        report["root"] = result["songs"][selection]["prepare"]["report"]["root"]
    difference = first_difference(reference, result)
    print("identical" if difference is None else f"DIFFERENT at {difference}")
    raise SystemExit(0 if difference is None else 1)


if __name__ == "__main__":
    main()
