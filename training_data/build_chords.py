"""Melodies with chords for the harmonizer, from J.S. Bach's four-part chorales in music21's corpus (public domain).

Each chorale's soprano is the melody; its chords are what the alto, tenor and bass sound together, read per beat
by `melodyrnn.chords.score_to_chords` (Harte labels). `read_chorales` gives them as `Melody` objects (the
benchmark uses it); run as a script, it writes each as a MIDI file with the melody on the first track and the
chords as block chords on a second, so `melodyrnn train DIR --task harmonize -o RUN` reads them back:

    python training_data/build_chords.py --out chorale_chords --workers 2
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the checkout's melodyrnn, as build.py does

from melodyrnn.encoding import Melody, melody_to_midi  # noqa: E402
from melodyrnn.errors import MelodyRNNError  # noqa: E402
from melodyrnn.extraction import ExtractionConfig, score_file_to_melodies  # noqa: E402


def chorale_paths(limit: int | None = None) -> list[Path]:
    """The chorales of music21's corpus (``bach/bwv*.mxl``), sorted by name, the first `limit` of them."""
    from music21 import corpus

    return sorted((Path(corpus.__file__).parent / "bach").glob("bwv*.mxl"))[:limit]


def _read(path: str) -> tuple[str, list[Melody], str]:
    """(name, melodies with chords, skip reason or "") of one chorale: its part named Soprano as the melody."""
    name = f"bachChorales/{Path(path).name}"
    try:
        melodies = score_file_to_melodies(path, extraction=ExtractionConfig(melody_tracks="Soprano"), name=name)
    except MelodyRNNError as err:
        return name, [], type(err).__name__
    kept = [m for m in melodies if any(label != "N" for _, label in m.chords)]
    return name, kept, "" if kept else "no_chords"


def read_chorales(limit: int | None = None, workers: int = 2) -> tuple[list[Melody], Counter]:
    """Soprano melodies of the chorales with the chords of their lower voices, one file's melodies once.

    Returns:
        `(melodies, counts)`: each melody's `source` is ``bachChorales/<file>``; counts of files read, melodies
        kept, and skips by reason (``NoMelodyError`` where no part is named Soprano, ``no_chords``,
        ``duplicate`` for a soprano and chords already kept from another file).
    """
    counts: Counter = Counter()
    seen: set[tuple] = set()
    melodies: list[Melody] = []
    paths = [str(p) for p in chorale_paths(limit)]
    with Pool(workers) as pool:
        for _name, found, reason in pool.imap(_read, paths, chunksize=4):
            counts["files"] += 1
            if reason:
                counts[f"skip_{reason}"] += 1
            for melody in found:
                key = (melody.events.tobytes(), melody.chords)
                if key in seen:
                    counts["skip_duplicate"] += 1
                    continue
                seen.add(key)
                melodies.append(melody)
    counts["melodies"] = len(melodies)
    return melodies, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the MIDI files (melody + chord track)")
    parser.add_argument("--limit", type=int, default=None, help="read only the first LIMIT chorales")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    melodies, counts = read_chorales(args.limit, args.workers)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, melody in enumerate(melodies):
        stem = Path(melody.source).stem.replace(".", "_")
        melody_to_midi(melody, out / f"{stem}_{i:03d}.mid", chords=True)
    print(dict(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
