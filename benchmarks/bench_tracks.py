"""Which track is the melody: "auto" against "all" (every track) on files whose melody track is known.

Two sources: arrangements built by `arrangements.py` around training_data/ melodies (every kind, the hard "pop"
and "descant" ones included, × honest, misleading and missing names × normal and low registers, plus 3-5 minute
songs), and multi-part pieces of
music21's corpus whose melody part is known (Bach chorales: the soprano; songs and a concertino: the voice or
solo part), written to MIDI through melodyrnn's own writer with their part names kept or stripped.

Per group: the share of files where exactly the melody track was taken; **precision** — of the melody steps
extraction gives, the share that came from the true melody track (target >= 95%); **recall** — of the steps the
true melody track gives on its own, the share extracted (target >= 90%). The scoring weights in melodyrnn/tracks.py
were set looking at arrangement seeds 1-6 ("tuning", seeds 1-2 shown here) and at 60 chorales that come after the
first 80 in corpus order; the report uses seeds 1001-1002, the first 80 chorales and the songs.

    python benchmarks/bench_tracks.py [--count 240] [--songs 30] [--chorales 80]
                                      [--out benchmarks/results/bench_tracks.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

from arrangements import HARD_KINDS, KINDS, build_arrangements, melody_files
from repo_paths import ROOT, repo_relative

from melodyrnn import ExtractionConfig, read_midi, score_to_melodies
from melodyrnn.midi_io import Note, Score, Track, score_to_midi
from melodyrnn.theory import is_usable_time_signature
from melodyrnn.tracks import choose_melody_tracks

TUNING_SEEDS = (1, 2)
REPORT_SEEDS = (1001, 1002)
# music21 corpus pieces whose melody part is known: (corpus path, index of the melody part, what it is).
SONGS = (
    ("schubert/Lindenbaum.xml", 0, "voice and piano"),
    ("schumann_robert/dichterliebe_no2.xml", 0, "voice and piano"),
    ("handel/rinaldo/Lascia_chio_pianga.mxl", 0, "voice and piano"),
    ("weber/concertino_clarinet.mxl", 0, "clarinet and piano"),
    ("johnson_j_r/lift_every_voice.mxl", 0, "four voices, the tune on top"),
)
ALL = ExtractionConfig(melody_tracks="all")


def track_steps(score: Score) -> dict[int, int]:
    """Steps of the melodies each pitched track gives on its own (extraction works track by track)."""
    steps = {}
    for i, track in enumerate(score.tracks):
        if track.notes and not track.is_drum:
            alone = Score([track], score.tempos, score.time_signatures, source=score.source)
            steps[i] = sum(len(m.events) for m in score_to_melodies(alone, extraction=ALL))
    return steps


def measure(score: Score, melody: int) -> dict[str, dict[str, float]]:
    """For "all" and "auto": the tracks taken, steps extracted, steps from the melody track, the melody's steps."""
    steps = track_steps(score)
    out = {}
    for mode in ("all", "auto"):
        taken = choose_melody_tracks(score, mode).taken
        out[mode] = {
            "exact": float(taken == (melody,)),
            "extracted": float(sum(steps[i] for i in taken)),
            "from_melody": float(steps.get(melody, 0) if melody in taken else 0),
            "melody_steps": float(steps.get(melody, 0)),
        }
    return out


def summarize(rows: list[dict]) -> dict:
    """Per mode: files, exact-choice share, precision and recall by steps (pooled over the files)."""
    out: dict = {"files": len(rows)}
    for mode in ("all", "auto"):
        picked = [r[mode] for r in rows]
        extracted = sum(r["extracted"] for r in picked)
        melody_steps = sum(r["melody_steps"] for r in picked)
        from_melody = sum(r["from_melody"] for r in picked)
        out[mode] = {
            "exact_track": round(sum(r["exact"] for r in picked) / max(1, len(picked)), 4),
            "precision": round(from_melody / extracted, 4) if extracted else None,
            "recall": round(from_melody / melody_steps, 4) if melody_steps else None,
            "steps_extracted": int(extracted),
        }
    return out


def arrangement_rows(seeds, count: int, songs: int) -> dict[str, list[dict]]:
    """Rows grouped by kind, naming, register and "song" (3-5 minutes), from arrangements of each seed."""
    files = melody_files(ROOT / "training_data" / "midi")
    groups: dict[str, list[dict]] = defaultdict(list)
    for seed in seeds:
        batches = [(build_arrangements(files, count, seed=seed, kinds=KINDS + HARD_KINDS), False)]
        if songs:
            song_kinds = ("band", "counter", "full", "pop")
            batches.append(
                (build_arrangements(files, songs, seed=seed + 500, target_seconds=180, kinds=song_kinds), True)
            )
        for arrangements, song in batches:
            for a in arrangements:
                row = measure(read_midi(a.midi), a.melody_track)
                labels = ["song (3-5 min)"] if song else [f"kind={a.kind}", f"names={a.naming}"]
                labels += [f"register={a.register}", "all arrangements"]
                for label in labels:
                    groups[label].append(row)
    return groups


def music21_score(piece, keep_names: bool, source: str) -> Score:
    """A parsed music21 piece as a `Score`, one track per part (ties merged, chords kept whole, 100 qpm)."""
    tracks = []
    for part in piece.parts:
        notes = []
        for element in part.stripTies().flatten().notes:
            start, length = float(Fraction(element.offset)), float(Fraction(element.quarterLength))
            if length <= 0:
                continue  # grace notes
            for pitch in element.pitches:
                notes.append(Note(int(pitch.midi), 80, start, start + length))
        notes.sort(key=lambda n: (n.start_quarters, -n.pitch))
        name = (part.partName or "") if keep_names else ""
        tracks.append(Track(notes, program=0, name=name))
    meters = []
    for ts in piece.parts[0].flatten().getTimeSignatures():
        if is_usable_time_signature(ts.numerator, ts.denominator):
            meters.append((float(Fraction(ts.offset)), ts.numerator, ts.denominator))
    meters = sorted(dict((q, (q, n, d)) for q, n, d in meters).values()) or [(0.0, 4, 4)]
    if meters[0][0] > 0:
        meters.insert(0, (0.0, meters[0][1], meters[0][2]))
    return Score(tracks, tempos=[(0.0, 100.0)], time_signatures=meters, source=source)


def music21_rows(chorales: int) -> dict[str, list[dict]]:
    """Rows for four-part Bach chorales (melody: the soprano) and the `SONGS`, names kept and stripped."""
    from music21 import corpus

    pieces = [(corpus.parse(path), path, melody, f"song: {what}") for path, melody, what in SONGS]
    found = 0
    for path in sorted(corpus.getComposer("bach"), key=str):
        if found >= chorales:
            break
        if path.suffix not in (".mxl", ".xml", ".musicxml"):
            continue
        piece = corpus.parse(path)
        if [p.partName for p in piece.parts] == ["Soprano", "Alto", "Tenor", "Bass"]:
            pieces.append((piece, f"bach/{path.name}", 0, "Bach chorale (soprano)"))
            found += 1
    groups: dict[str, list[dict]] = defaultdict(list)
    for piece, path, melody, group in pieces:
        for keep in (True, False):
            score = read_midi(score_to_midi(music21_score(piece, keep, path)))  # melodyrnn's writer and reader
            row = measure(score, melody)
            for label in (f"{group}, names {'kept' if keep else 'stripped'}", "all music21 pieces"):
                groups[label].append(row)
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=240, help="arrangements per seed (tunes played once)")
    parser.add_argument("--songs", type=int, default=30, help="song-length arrangements per seed")
    parser.add_argument("--chorales", type=int, default=80)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_tracks.json"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # music21's notes on odd measures; nothing here needs them
    t0 = time.perf_counter()
    tuning = arrangement_rows(TUNING_SEEDS, args.count, 0)
    report = arrangement_rows(REPORT_SEEDS, args.count, args.songs)
    pieces = music21_rows(args.chorales)
    result = {
        "benchmark": "tracks",
        "targets": {"precision": 0.95, "recall": 0.9},
        "definitions": {
            "exact_track": "share of files where exactly the true melody track was taken",
            "precision": "steps extracted from the true melody track / all steps extracted (pooled over files)",
            "recall": "steps extracted from the true melody track / steps that track gives alone",
        },
        "tuning_seeds": list(TUNING_SEEDS),
        "report_seeds": list(REPORT_SEEDS),
        "tuning": {"all arrangements": summarize(tuning["all arrangements"])},
        "arrangements": {k: summarize(v) for k, v in sorted(report.items())},
        "music21": {k: summarize(v) for k, v in sorted(pieces.items())},
        "melody_sources": repo_relative(ROOT / "training_data" / "midi"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
