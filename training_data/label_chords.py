"""Chords for the melodies of training_data/, so a chord-aware model can learn from them: a prepared cache in,
the same cache with `chords` filled out.

    python training_data/label_chords.py runs/data.npz -o runs/data_chords.npz [--withhold 0.2] [--workers 1]

Where the chords come from, per melody (the counts go to ``<out>.chords.json``):

- **Bach chorales** (`bachChorales/`): what the chorale's alto, tenor and bass sound, read per beat from the four
  voices of the same music21 score (`build_chords.read_chorales`, as the harmonizer learnt them). The soprano
  read there has its repeats played out, so the training melody's notes are found inside it and the chords of that
  stretch are taken. A chorale whose notes are not found is labelled like a folk tune.
- **Folk tunes** (no chords in the sources): labels from the bundled harmonizer (`melodyrnn.harmonize`), a model
  that learnt from the chorales only: at most two chords a bar (``per="half_bar"``), major, minor and dominant
  seventh only. These are a model's guesses, not chords a person wrote.

`--withhold` leaves that share of the *training* files without chords (chosen by a hash of the path, so always
the same files), so the model also learns to write melodies when no chords are asked for. Validation melodies all
keep theirs. The split itself is the input cache's, untouched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, Path(__file__).resolve().parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # the checkout's melodyrnn and build_chords, as build.py does

from melodyrnn.chords import chords_to_arrays  # noqa: E402
from melodyrnn.dataset import PreparedData  # noqa: E402
from melodyrnn.encoding import Melody, melody_to_tokens  # noqa: E402
from melodyrnn.harmonize import (  # noqa: E402
    _groups,
    allowed_classes,
    class_to_label,
    load_harmonizer,
    melody_to_frames,
)

FOLK_VOCABULARY = ("maj", "min", "7")
FOLK_PER = "half_bar"
CHORALES = "bachChorales/"


def _chorale_key(source: str) -> str:
    """``midi/bachChorales/bwv101_7.mid`` and ``bachChorales/bwv101.7.mxl`` → ``bwv101_7``."""
    return Path(source).stem.replace(".", "_")


def chorale_chords(workers: int) -> dict[str, list[Melody]]:
    """The chorales' sopranos with the chords of their lower voices, by `_chorale_key`."""
    from build_chords import read_chorales

    melodies, counts = read_chorales(workers=workers)
    print("chorales read:", dict(counts), flush=True)
    found: dict[str, list[Melody]] = {}
    for m in melodies:
        found.setdefault(_chorale_key(m.source), []).append(m)
    return found


def aligned_chords(melody: Melody, scored: list[Melody]) -> tuple | None:
    """The chords of `melody` taken from a chorale reading of the same notes, shifted to its steps (``(step,
    label)`` from 0), or None where its notes are not found there.

    The reading plays repeats out and the training melody does not, so the melody is matched piece by piece: from
    each step, the longest run of its events found anywhere in the reading (at least a bar of 4/4, or the rest of
    the melody), taking the chords under that run."""
    ours = melody_to_tokens(melody).astype(np.int32)
    for other in scored:
        theirs = melody_to_tokens(other).astype(np.int32)
        pieces = _pieces(ours, theirs)
        if pieces is None:
            continue
        chords: list[tuple[int, str]] = []
        for pos, at, length in pieces:
            before = [label for s, label in other.chords if s <= at]
            inside = [(s - at + pos, label) for s, label in other.chords if at < s < at + length]
            for step, chord in ([(pos, before[-1])] if before else []) + inside:
                if not chords or chords[-1][1] != chord:
                    chords.append((step, chord))
        return tuple(chords) if any(label != "N" for _, label in chords) else None
    return None


def _pieces(ours: np.ndarray, theirs: np.ndarray, shortest: int = 16) -> list[tuple[int, int, int]] | None:
    """``(position in ours, position in theirs, length)`` runs that cover `ours` with stretches of `theirs`, each
    the longest found from its position; None when a run shorter than `shortest` (and than the rest) is needed."""
    pieces = []
    pos = 0
    while pos < ours.size:
        best_at, best_len = -1, 0
        for at in np.flatnonzero(theirs == ours[pos]).tolist():
            n = min(ours.size - pos, theirs.size - at)
            same = ours[pos : pos + n] == theirs[at : at + n]
            length = n if same.all() else int(np.argmin(same))
            if length > best_len:
                best_at, best_len = at, length
        if best_len < min(shortest, ours.size - pos):
            return None
        pieces.append((pos, best_at, best_len))
        pos += best_len
    return pieces


def harmonize_all(melodies: list[Melody], harmonizer) -> list[tuple]:
    """`harmonize(m, harmonizer, per=FOLK_PER, vocabulary=FOLK_VOCABULARY).chords` of every melody, with melodies
    of the same number of beats in one batch (no padding, so the results are `harmonize`'s exactly, far faster
    than one call each)."""
    allowed = allowed_classes(None, list(FOLK_VOCABULARY))
    frames = [melody_to_frames(m) for m in melodies]
    by_length: dict[int, list[int]] = {}
    for i, (features, _) in enumerate(frames):
        by_length.setdefault(features.shape[0], []).append(i)
    out: list[tuple] = [()] * len(melodies)
    for indices in by_length.values():
        for i, logits in zip(indices, harmonizer.logits([frames[i][0] for i in indices])):
            starts = frames[i][1]
            slots = _groups(melodies[i], starts, FOLK_PER)
            shifted = logits - logits.max(axis=-1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
            pooled = np.zeros((slots.max() + 1, logits.shape[-1]))
            np.add.at(pooled, slots, log_probs)
            classes = np.where(allowed, pooled, -np.inf).argmax(axis=-1)[slots]
            changes = [(int(starts[0]), class_to_label(int(classes[0])))]
            for start, c in zip(starts[1:].tolist(), classes[1:].tolist()):
                if class_to_label(c) != changes[-1][1]:
                    changes.append((start, class_to_label(c)))
            out[i] = tuple(changes)
    return out


def withheld(path: str, share: float) -> bool:
    """Whether a training file goes without chords: a hash of its path, independent of the split's own."""
    digest = hashlib.sha256(("chords:" + path).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def label(data: PreparedData, share: float, workers: int) -> tuple[PreparedData, dict]:
    """`data` with every melody's chords (see the module docstring) and the counts by source."""
    harmonizer = load_harmonizer()
    scored = chorale_chords(workers)
    counts: Counter = Counter()
    started = time.perf_counter()
    melodies = data.melodies("all")
    guessed = harmonize_all(melodies, harmonizer)
    print(f"harmonized {len(melodies)} melodies in {time.perf_counter() - started:.0f} s", flush=True)
    per_melody: list[tuple] = []
    for i, melody in enumerate(melodies):
        source = str(data.files[data.file_ids[i]])
        if not data.is_validation[i] and withheld(source, share):
            per_melody.append(())
            counts["withheld (training files without chords)"] += 1
            continue
        chords = aligned_chords(melody, scored.get(_chorale_key(source), [])) if CHORALES in source else None
        if chords is not None:
            counts["chorale: read from its four voices"] += 1
        else:
            chords = guessed[i]
            counts[
                "chorale: harmonizer (notes not found in the score)" if CHORALES in source else "folk: harmonizer"
            ] += 1
        per_melody.append(tuple(chords))
    offsets, steps, ids, labels = chords_to_arrays(per_melody)
    labelled = replace(data, chord_offsets=offsets, chord_steps=steps, chord_ids=ids, chord_labels=tuple(labels))
    return labelled, dict(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", help="a prepared cache of training_data (melodyrnn prepare training_data -o ...)")
    parser.add_argument("-o", "--out", required=True, help="the cache to write, with chords")
    parser.add_argument("--withhold", type=float, default=0.2, help="share of training files left without chords")
    parser.add_argument("--workers", type=int, default=1, help="processes reading the chorales")
    args = parser.parse_args(argv)
    data = PreparedData.load(args.cache)
    labelled, counts = label(data, args.withhold, args.workers)
    out = Path(args.out)
    labelled.save(out)
    summary = {
        "cache": str(args.cache),
        "withhold": args.withhold,
        "folk": {"harmonizer": "bundled", "per": FOLK_PER, "vocabulary": list(FOLK_VOCABULARY)},
        "melodies": data.num_melodies,
        "validation_melodies": int(data.is_validation.sum()),
        "counts": counts,
        "chord_changes": int(labelled.chord_steps.size),
    }
    out.with_suffix(".chords.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
