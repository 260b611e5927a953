"""Builds melodyrnn's training data: public-domain monophonic melodies from music21's bundled corpus, as MIDI.

Sources: O'Neill's Music of Ireland (1903), Ryan's Mammoth Collection (1883), Aird's Airs (1778-1803),
miscFolk (American fife tunes; Northumbrian Minstrelsy, 1882) and the soprano lines of J.S. Bach's chorales.
Essen is left out on purpose: its licence is non-commercial. Start at `build`; `tune_to_score` holds the
musical decisions (which part, ties, pickups, meters, tempo); a melody already written from an earlier file
is skipped as a duplicate. Output is deterministic: same files, same bytes, on every run.

Usage: ``python training_data/build.py [--out training_data/midi] [--workers 2]`` (about 3-4 minutes on
2 cores); it also writes ``training_data/build_report.json``.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import multiprocessing
import os
import re
import sys
import time
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing the package

from melodyrnn.midi_io import Note, Score, Track, score_to_midi  # noqa: E402
from melodyrnn.score_walk import (  # noqa: E402
    pickup_origin,
    realign_bars,
    tempo_map,
    tied_notes,
    time_signature_map,
    walk,
)

#: Output folder per source → music21 corpus folder (ABC files) or "chorales" (MusicXML, soprano part).
SOURCES = {
    "oneills1850": "oneills1850",
    "ryansMammoth": "ryansMammoth",
    "airdsAirs": "airdsAirs",
    "miscFolk": "miscFolk",
    "bachChorales": "chorales",
}
#: Sources whose corpus files hold one tune each: their output files keep the corpus file's name.
ONE_TUNE_PER_FILE = {"ryansMammoth", "bachChorales"}
MIN_NOTES = 8
VELOCITY = 90
DEFAULT_QPM = 120.0
TICKS_PER_QUARTER = 480
EPS = 1e-6


# ---------------------------------------------------------------------------------------------- naming


def slug(text: str, max_chars: int = 40) -> str:
    """ASCII, lower case, words joined by '_': a file-name-safe form of a title."""
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    out = "_".join(words)[:max_chars].rstrip("_")
    return out or "untitled"


def safe_stem(text: str) -> str:
    """A corpus file name as a file-name-safe ASCII stem, case kept ("bwv10.7" -> "bwv10_7")."""
    return re.sub(r"[^A-Za-z0-9-]+", "_", text).strip("_") or "untitled"


def ascii_text(text: str) -> str:
    """The track name: MIDI meta text is Latin-1 in mido, so keep it plain ASCII."""
    return unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii").strip()


# ---------------------------------------------------------------------------------------------- extraction


def _choose_part(tune, prefer_soprano: bool):
    """The melody part: the soprano of a chorale, otherwise the first part that has notes.

    (A few multi-voice ABC tunes come out of music21 with empty leading parts.) A tune without parts is
    its own melody.
    """
    parts = list(tune.parts) if hasattr(tune, "parts") else []
    if not parts:
        return tune
    if prefer_soprano:
        for part in parts:
            label = f"{part.partName or ''} {part.id or ''}".lower()
            if "soprano" in label:
                return part
    return next((p for p in parts if p.recurse().notes.first() is not None), parts[0])


def tune_to_score(tune, *, prefer_soprano: bool, source: str, title: str):
    """One music21 tune → (melodyrnn `Score`, facts) or (None, skip reason).

    The melody is the chosen part's notes in written order (repeats are not expanded); chord symbols,
    rests and grace notes are dropped, a chord keeps its highest pitch, notes tied at the same pitch are
    merged, and overlaps are cut so that one note sounds at a time. Offsets are shifted so that a pickup
    ends on a bar line, and the meter is re-stated where the written bar lines leave its grid.
    """
    part = _choose_part(tune, prefer_soprano)
    origin, pickup = pickup_origin(part)
    walked = sorted(walk(part, -origin), key=lambda item: item[0])  # stable: voices keep their order
    facts = collections.Counter()
    raw = tied_notes(walked, facts, top_of_chords=True)

    # One note at a time: at equal starts keep the highest, and cut a note where the next one starts.
    raw.sort(key=lambda n: (n[1], -n[0]))
    notes: list[list] = []
    for midi, start, end in raw:
        if notes and abs(notes[-1][1] - start) < EPS:
            facts["simultaneous_notes_dropped"] += 1
            continue
        if notes and notes[-1][2] > start + EPS:
            notes[-1][2] = start
            facts["overlaps_cut"] += 1
        notes.append([midi, start, end])

    if not notes:
        return None, "no_notes"
    if len(notes) < MIN_NOTES:
        return None, "too_few_notes"
    if any(not 0 <= n[0] <= 127 for n in notes):
        return None, "pitch_out_of_range"
    if notes[0][1] < -EPS:
        return None, "notes_before_start"

    # Meters and tempo, shifted like the notes; tempo only from marks with an explicit number.
    meter_list = time_signature_map(walked, facts)
    tempo_list = tempo_map(walked)
    if tempo_list:
        facts["tunes_with_tempo"] += 1
        tempo_list[0] = (0.0, tempo_list[0][1])
    else:
        tempo_list = [(0.0, DEFAULT_QPM)]

    if pickup > EPS:
        facts["tunes_with_pickup"] += 1
    measures = [
        (float(part.elementOffset(m)) - origin, float(m.duration.quarterLength))
        for m in part.getElementsByClass("Measure")
    ]
    restated = realign_bars(measures[1:], meter_list)
    if restated:
        facts["tunes_with_realigned_bars"] += 1
        facts["meter_restatements"] += restated

    score = Score(
        tracks=[
            Track(
                notes=[Note(m, VELOCITY, s, e) for m, s, e in notes],
                program=0,
                is_drum=False,
                name=ascii_text(title)[:120] or "melody",
            )
        ],
        tempos=tempo_list,
        time_signatures=meter_list,
        ticks_per_quarter=TICKS_PER_QUARTER,
        source=source,
    )
    facts["notes"] += len(notes)
    return score, facts


# ---------------------------------------------------------------------------------------------- per file


def _split_abc(text: str) -> list[str]:
    """An ABC file → one text per tune, each with the file header (lines before the first X:)."""
    chunks = re.split(r"(?m)^(?=X:)", text)
    header, tunes = chunks[0], chunks[1:]
    return [header + tune for tune in tunes]


def _parse_abc_file(path: str):
    """All tunes of an ABC file, in file order, as (tune or None, parse-error text)."""
    from music21 import converter, corpus, stream

    try:
        parsed = corpus.parse(path, forceSource=True)
        tunes = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        return [(t, "") for t in tunes]
    except Exception:  # noqa: BLE001 - one bad tune breaks the opus; retry tune by tune below
        pass
    full = corpus.getWork(path)
    with open(full, encoding="latin-1") as f:
        texts = _split_abc(f.read())
    out = []
    for text in texts:
        try:
            parsed = converter.parse(text, format="abc", forceSource=True)
            parsed = parsed.scores[0] if isinstance(parsed, stream.Opus) else parsed
            out.append((parsed, ""))
        except Exception as err:  # noqa: BLE001
            out.append((None, f"{type(err).__name__}: {err}"[:200]))
    return out


def process_file(job: tuple[str, str]) -> dict:
    """Parses one corpus file and converts each tune. Runs in a worker; returns plain data only."""
    source, path = job
    from music21 import corpus

    items, skips, facts = [], collections.Counter(), collections.Counter()
    stem = Path(path).name.rsplit(".", 1)[0]
    if source == "bachChorales":
        try:
            tunes = [(corpus.parse(path, forceSource=True), "")]
        except Exception as err:  # noqa: BLE001
            tunes = [(None, f"{type(err).__name__}: {err}"[:200])]
    else:
        tunes = _parse_abc_file(path)
    single = len(tunes) == 1 and source in ONE_TUNE_PER_FILE
    for index, (tune, error) in enumerate(tunes, start=1):
        if tune is None:
            skips["parse_error"] += 1
            facts[f"parse_error: {error}"[:120]] += 1
            continue
        title = (tune.metadata.title if tune.metadata else "") or ""
        number = (tune.metadata.number if tune.metadata else None) or index
        if single:
            name = safe_stem(stem)
        else:
            number_text = str(number)
            number_text = number_text.zfill(4) if number_text.isdigit() else slug(number_text, 10)
            name = f"{safe_stem(stem)}_x{number_text}_{slug(title)}"
        label = f"music21 corpus {path}" + ("" if single else f" X:{number}")
        try:
            score, result = tune_to_score(
                tune, prefer_soprano=source == "bachChorales", source=label, title=title or stem
            )
        except Exception as err:  # noqa: BLE001 - a bad tune is skipped and counted, never fatal
            skips["extract_error"] += 1
            facts[f"extract_error: {type(err).__name__}"] += 1
            continue
        if score is None:
            skips[result] += 1
            continue
        try:
            data = score_to_midi(score)
        except Exception as err:  # noqa: BLE001
            skips["write_error"] += 1
            facts[f"write_error: {type(err).__name__}: {err}"[:120]] += 1
            continue
        # Melodies printed twice (in one book, or in two) would leak across a train/validation split.
        ticks = [(n.pitch, round(n.start_quarters * TICKS_PER_QUARTER), round(n.end_quarters * TICKS_PER_QUARTER))
                 for n in score.tracks[0].notes]
        items.append((name, data, hashlib.sha1(repr(ticks).encode()).hexdigest(), dict(result)))
    return {"source": source, "path": path, "items": items, "skips": dict(skips), "facts": dict(facts)}


# ---------------------------------------------------------------------------------------------- build


def _chorale_file(name: str) -> str:
    """The one corpus file behind a chorale-list name such as "bach/bwv112.5", with its extension.

    Bare names are ambiguous in music21 ("bach/bwv112.5" also matches "bwv112.5-sc.mxl"), so an exact
    stem wins (MusicXML first), then whatever music21 itself would pick.
    """
    from music21 import corpus

    folder, stem = name.split("/", 1)
    root = Path(corpus.__file__).parent / folder
    preference = [".mxl", ".xml", ".musicxml", ".krn"]
    exact = sorted(
        (p for p in root.iterdir() if p.suffix in preference and p.name[: -len(p.suffix)] == stem),
        key=lambda p: preference.index(p.suffix),
    )
    found = exact[0] if exact else corpus.getWork(name)
    if isinstance(found, list):
        found = sorted(found)[0]
    return f"{folder}/{Path(found).name}"


def list_jobs(sources: list[str]) -> list[tuple[str, str]]:
    """(source, corpus path) for every file, sorted, so every run sees the same order."""
    from music21 import corpus
    from music21.corpus import chorales

    jobs = []
    for source in sources:
        folder = SOURCES[source]
        if folder == "chorales":
            paths = sorted({_chorale_file(name) for name in chorales.Iterator(returnType="filename")})
        else:
            root = Path(corpus.__file__).parent / folder
            paths = sorted(f"{folder}/{p.name}" for p in root.glob("*.abc"))
        jobs.extend((source, p) for p in paths)
    return jobs


def build(out_dir: Path, workers: int = 2, sources: list[str] | None = None) -> dict:
    """Writes `out_dir/<source>/<name>.mid` for every usable tune and returns the build report."""
    sources = sources or list(SOURCES)
    started = time.perf_counter()
    jobs = list_jobs(sources)
    # Big files first so the pool does not end waiting on one slow opus; results are re-sorted below.
    from music21 import corpus

    sizes = {p: os.path.getsize(corpus.getWork(p)) for _, p in jobs}
    order = sorted(jobs, key=lambda j: -sizes[j[1]])
    results = []
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for done, result in enumerate(pool.imap_unordered(process_file, order, chunksize=1), start=1):
            results.append(result)
            if done % 100 == 0 or done == len(order):
                print(f"  {done}/{len(order)} files parsed", file=sys.stderr, flush=True)
    results.sort(key=lambda r: (sources.index(r["source"]), r["path"]))

    report = {"sources": {}, "total_files": 0, "total_bytes": 0}
    kept_digests: dict[str, str] = {}  # note digest -> the file that kept it (sources in SOURCES order)
    duplicates: dict[str, str] = {}
    for source in sources:
        folder = out_dir / source
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.mid"):  # a rebuild leaves exactly what this run writes
            stale.unlink()
        used: set[str] = set()
        written, n_bytes, skips, facts, n_tunes = 0, 0, collections.Counter(), collections.Counter(), 0
        for result in (r for r in results if r["source"] == source):
            skips.update(result["skips"])
            facts.update(result["facts"])
            n_tunes += len(result["items"]) + sum(result["skips"].values())
            for name, data, digest, tune_facts in result["items"]:
                if digest in kept_digests:
                    skips["duplicate_melody"] += 1
                    duplicates[f"{source}/{name}.mid"] = kept_digests[digest]
                    continue
                unique, k = name, 2
                while unique.lower() in used:  # case-insensitive file systems too
                    unique, k = f"{name}_{k}", k + 1
                used.add(unique.lower())
                kept_digests[digest] = f"{source}/{unique}.mid"
                facts.update(tune_facts)
                (folder / f"{unique}.mid").write_bytes(data)
                written += 1
                n_bytes += len(data)
        report["sources"][source] = {
            "corpus_files": sum(1 for _, p in jobs if _ == source),
            "tunes_seen": n_tunes,
            "files_written": written,
            "bytes": n_bytes,
            "skipped": dict(sorted(skips.items())),
            "facts": dict(sorted(facts.items())),
        }
        report["total_files"] += written
        report["total_bytes"] += n_bytes
    skipped_total: collections.Counter = collections.Counter()
    for entry in report["sources"].values():
        skipped_total.update(entry["skipped"])
    report["skipped_total"] = dict(sorted(skipped_total.items()))
    report["duplicates_skipped"] = dict(sorted(duplicates.items()))
    report["settings"] = {
        "min_notes": MIN_NOTES,
        "velocity": VELOCITY,
        "default_qpm": DEFAULT_QPM,
        "ticks_per_quarter": TICKS_PER_QUARTER,
        "music21_version": _music21_version(),
    }
    elapsed = time.perf_counter() - started
    print(f"wrote {report['total_files']} files, {report['total_bytes']} bytes in {elapsed:.0f} s", file=sys.stderr)
    return report


def _music21_version() -> str:
    import music21

    return music21.__version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "midi", help="output folder (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="parallel parser processes (default: 2)")
    parser.add_argument("--sources", nargs="+", choices=list(SOURCES), default=list(SOURCES))
    parser.add_argument(
        "--report", type=Path, default=HERE / "build_report.json", help="where to write the JSON report"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    report = build(args.out, args.workers, args.sources)
    args.report.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
