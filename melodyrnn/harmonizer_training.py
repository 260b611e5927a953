"""Training the harmonizer: `train_harmonizer` (a collection with chords in, a run folder with `best.melodyrnn` and
`log.csv` out), with transposition augmentation that moves each melody and its chords together.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import keras
import numpy as np

from melodyrnn.encoding import Melody
from melodyrnn.errors import MelodyRNNError
from melodyrnn.harmonize import (
    N_CLASS,
    NUM_FEATURES,
    Harmonizer,
    build_harmonizer,
    chords_to_classes,
    load_harmonizer,
    melody_to_frames,
    save_harmonizer,
    transpose_classes,
    transpose_features,
)

__all__ = ["train_harmonizer", "melodies_to_examples", "frame_accuracy"]


def melodies_to_examples(melodies: list[Melody]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(features, classes) of every melody that has chords and at least one chord other than N on its beats."""
    examples = []
    for melody in melodies:
        if not melody.chords or len(melody) == 0:
            continue
        features, starts = melody_to_frames(melody)
        classes = chords_to_classes(melody, starts)
        if (classes != N_CLASS).any():
            examples.append((features, classes))
    return examples


def _batch(examples, rng: np.random.Generator, transpose: bool, max_frames: int):
    """A padded batch `(x, y, weights)`: float32 `(batch, frames, NUM_FEATURES)`, int `(batch, frames)` twice; each
    melody moved by a random interval in [-5, 6] with its chords (when `transpose`), long ones cut to a window."""
    cut = []
    for features, classes in examples:
        lo = int(rng.integers(0, max(1, features.shape[0] - max_frames + 1)))
        features, classes = features[lo : lo + max_frames], classes[lo : lo + max_frames]
        if transpose:
            shift = int(rng.integers(-5, 7))
            features, classes = transpose_features(features, shift), transpose_classes(classes, shift)
        cut.append((features, classes))
    longest = max_frames  # one shape for every batch: one trace of the training step, whose loop needs it static
    x = np.zeros((len(cut), longest, NUM_FEATURES), np.float32)
    y = np.zeros((len(cut), longest), np.int64)
    w = np.zeros((len(cut), longest), np.float32)
    for i, (features, classes) in enumerate(cut):
        x[i, : features.shape[0]], y[i, : classes.size], w[i, : classes.size] = features, classes, 1.0
    return x, y, w


def frame_accuracy(harmonizer: Harmonizer, examples) -> tuple[float, float]:
    """(NLL per beat in nats, share of beats whose class is right) over `examples` ((features, classes) pairs)."""
    if not examples:
        return float("nan"), float("nan")
    logits = harmonizer.logits([f for f, _ in examples])
    classes = np.concatenate([c for _, c in examples])
    flat = np.concatenate(logits).astype(np.float64)
    flat -= flat.max(axis=-1, keepdims=True)
    log_probs = flat - np.log(np.exp(flat).sum(axis=-1, keepdims=True))
    nll = float(-log_probs[np.arange(classes.size), classes].mean())
    return nll, float((flat.argmax(axis=-1) == classes).mean())


def _collection(data, run_dir: Path, progress: bool) -> tuple[list[Melody], list[Melody], str]:
    """Training and validation melodies (split by file) and a description of `data`."""
    from melodyrnn.dataset import PreparedData, prepare

    if isinstance(data, (list, tuple)):
        if not all(isinstance(m, Melody) for m in data):
            raise MelodyRNNError("`data` given as a list must hold Melody objects")
        prepared = PreparedData.from_melodies(list(data))
        return prepared.melodies("train"), prepared.melodies("validation"), f"{len(data)} melodies in memory"
    if isinstance(data, PreparedData):
        prepared, source = data, "prepared data"
    elif isinstance(data, (str, os.PathLike)) and Path(data).is_dir():
        prepared, source = prepare(data, run_dir / "data.npz", progress=progress), os.fspath(data)
    elif isinstance(data, (str, os.PathLike)) and Path(data).is_file():
        prepared, source = PreparedData.load(data), os.fspath(data)
    else:
        raise MelodyRNNError(f"`data` must be a folder, a prepared cache, PreparedData or Melody list, got {data!r}")
    return prepared.melodies("train"), prepared.melodies("validation"), source


def train_harmonizer(
    data,
    run_dir: str | os.PathLike,
    *,
    units: int = 64,
    bidirectional: bool = True,
    updates: int = 600,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    transpose: bool = True,
    max_frames: int = 128,
    eval_every: int = 50,
    seed: int = 0,
    progress: bool = True,
) -> Harmonizer:
    """Trains a harmonizer on melodies with chords; the run folder gets `best.melodyrnn` and `log.csv`.

    Args:
        data: a folder of MIDI / MusicXML / ABC files (prepared into `run_dir/data.npz`), a prepared cache, a
            `PreparedData`, or a list of `Melody` (each `source` one file); the validation split is by file.
        run_dir: the run folder (created).
        units, bidirectional: as `build_harmonizer`.
        updates: optimizer updates; `batch_size` melodies each, cut to windows of `max_frames` beats.
        learning_rate: Adam's.
        transpose: move every melody and its chords by a random interval each time it is drawn.
        eval_every: updates between validations (NLL per beat, which picks `best.melodyrnn`).
        seed: initial weights, draws and transpositions.
        progress: print a line per validation.

    Returns:
        The best `Harmonizer` (also in `run_dir/best.melodyrnn`), with its scores in its metadata.

    Raises:
        MelodyRNNError: bad arguments, or no melody with chords in the training split.
    """
    for name, value in (("updates", updates), ("batch_size", batch_size), ("eval_every", eval_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MelodyRNNError(f"`{name}` must be an int >= 1, got {value!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    train_melodies, val_melodies, source = _collection(data, run_dir, progress)
    train_set, val_set = melodies_to_examples(train_melodies), melodies_to_examples(val_melodies)
    if not train_set:
        raise MelodyRNNError(f"no melody with chords in the training split of {source}: nothing to learn from")
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    harmonizer = build_harmonizer(units, bidirectional)
    harmonizer.model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    watched = val_set or train_set  # a collection of one file has no validation split: watch the training loss
    best, rows = (float("inf"), 0), []
    for update in range(1, updates + 1):
        picks = rng.integers(0, len(train_set), size=batch_size)
        x, y, w = _batch([train_set[i] for i in picks], rng, transpose, max_frames)
        loss = float(harmonizer.model.train_on_batch(x, y, sample_weight=w))
        if update % eval_every and update != updates:
            continue
        nll, accuracy = frame_accuracy(harmonizer, watched)
        rows.append({"update": update, "train_loss": loss, "val_nll": nll, "val_accuracy": accuracy})
        if progress:
            print(f"harmonizer update {update}: train {loss:.3f}, validation NLL {nll:.3f}, accuracy {accuracy:.3f}")
        if nll < best[0]:
            best = (nll, update)
            meta = {"data": source, "train_melodies": len(train_set), "validation_melodies": len(val_set)}
            meta.update(best_update=update, val_nll=nll, val_accuracy=accuracy, transpose=transpose)
            save_harmonizer(run_dir / "best.melodyrnn", harmonizer, meta)
    with open(run_dir / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return load_harmonizer(run_dir / "best.melodyrnn")
