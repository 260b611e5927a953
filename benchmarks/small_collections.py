"""Collections a shipped model never saw, for measuring training on small data (never for training a shipped model).

    python benchmarks/small_collections.py [--out benchmarks/.data]

Writes one MIDI file per melody, through `training_data/build.py`'s own converter, for two styles taken from
music21's corpus:

- `essen`: German folk songs of the Essen collection (`essenFolksong/altdeu*.abc`, `ballad*.abc`). Licensed for
  non-commercial use only: fine to measure with, never to train what ships.
- `essen_dev`: four other Essen books (boehme10, erk10, kinder0, ballad20), for choosing settings on melodies
  other than `essen`'s.
- `palestrina`: one voice line of each of Palestrina's Mass movements (`palestrina/*.krn`): vocal polyphony of the
  16th century, long phrases in half and whole notes — a style far from the bundled model's fiddle tunes.

Neither is in `training_data/` (which takes the ABC folk books and the chorales), so the bundled default model has
never seen them. Files are cached under `--out` (ignored by git); a second run only lists them.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STYLES = {
    "essen": ["essenFolksong/altdeu10.abc", "essenFolksong/altdeu20.abc", "essenFolksong/ballad10.abc"],
    "palestrina": None,  # every .krn file of the folder, in name order, up to `limit`
    # four other Essen books, to tune on without touching `essen` (bench_infill_adapt.py --dev)
    "essen_dev": [f"essenFolksong/{b}.abc" for b in ("boehme10", "erk10", "kinder0", "ballad20")],
}


def _palestrina_files(limit: int) -> list[str]:
    import music21

    folder = Path(music21.__file__).parent / "corpus" / "palestrina"
    return [f"palestrina/{p.name}" for p in sorted(folder.glob("*.krn"))[:limit]]


def build_style(style: str, out: Path, limit: int = 700) -> list[Path]:
    """The style's melodies as MIDI files under `out/style` (built once, then reused), at most `limit` files."""
    folder = out / style
    done = folder / ".complete"
    if done.is_file():
        return sorted(folder.glob("*.mid"))[:limit]
    sys.path.insert(0, str(ROOT / "training_data"))
    import build  # training_data/build.py: music21 tune -> one-track melody MIDI

    folder.mkdir(parents=True, exist_ok=True)
    sources = STYLES[style] or _palestrina_files(limit)
    seen: set[str] = set()
    for source in sources:
        result = build.process_file((style, source))
        for name, data, digest, _facts in result["items"]:
            if digest in seen:  # the same tune twice would leak across a held-out split
                continue
            seen.add(digest)
            short = hashlib.sha1(name.encode()).hexdigest()[:10]
            (folder / f"{short}.mid").write_bytes(data)
        if len(seen) >= limit:
            break
    done.write_text("")
    return sorted(folder.glob("*.mid"))[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / ".data"))
    parser.add_argument("--limit", type=int, default=700)
    args = parser.parse_args()
    for style in STYLES:
        files = build_style(style, Path(args.out), args.limit)
        print(f"{style}: {len(files)} files")


if __name__ == "__main__":
    main()
