"""Prepared data: the cache of encoded melodies, and the tf.data windows cut from it for training.

Start at `prepare` (folder → `.npz` cache + report; what `melodyrnn prepare` runs), `PreparedData.load` and
`PreparedData.dataset` (shuffled ``(inputs, targets, weights)`` batches; TensorFlow is imported only then).
Reading the folder is `melodyrnn.collection`; the windowing stays here since it works on the cache's arrays.
The training/validation split is by file, so no melody leaks across it.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from melodyrnn.archives import check_members
from melodyrnn.chords import arrays_to_chords, chord_arrays_problem, chords_to_arrays
from melodyrnn.collection import (
    VALIDATION_FRACTION,
    FileResult,
    PrepareReport,
    read_collection,
    validation_files,
)
from melodyrnn.conditioning import prepared_conditions, transpose_conditions
from melodyrnn.encoding import NUM_SPECIAL, EncodingConfig, Melody, events_list_to_tokens, tokens_to_melody
from melodyrnn.errors import DataError
from melodyrnn.extraction import ExtractionConfig
from melodyrnn.files import atomic_write, atomic_write_text, check_writable_file
from melodyrnn.theory import check_steps_per_bar, is_usable_time_signature, steps_per_bar

CACHE_VERSION = 1
# The most bytes one array of a cache may claim: 1e9 steps of int16 tokens, far beyond any collection; it bounds
# what a hand-made cache can make `load` inflate.
_MAX_ARRAY_BYTES = 2 << 30
Split = Literal["train", "validation", "all"]


def prepare(
    root: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    config: EncodingConfig = EncodingConfig(),
    extraction: ExtractionConfig = ExtractionConfig(),
    validation_fraction: float = VALIDATION_FRACTION,
    workers: int | None = None,
    strict: bool = False,
    progress: bool | None = None,
) -> PreparedData:
    """Reads every MIDI file under `root`, extracts and encodes its melodies, and writes the cache.

    A bad file is skipped and counted by reason; it never stops the import unless `strict`.

    Args:
        root: folder searched recursively for .mid/.midi/.kar files.
        output: where to write the `.npz` cache (a `.report.json` is written beside it); None writes nothing.
        config: the vocabulary and grid.
        extraction: melody extraction policies and filters.
        validation_fraction: share of files (by hash of their relative path) held out for validation; a small
            collection holds out more, to reach `collection.MIN_VALIDATION_STEPS` (see `validation_files`).
        workers: worker processes; None: every core for seconds of reading, else this process (`read_collection`).
        strict: raise on the first file that cannot be read or holds no melody.
        progress: show a progress bar; None shows it when stderr is a terminal.

    Returns:
        The prepared data.

    Raises:
        DataError: bad `validation_fraction` or `workers`, `root` is not a folder or holds no MIDI file, or
            no melody survived.
        MidiReadError, NoMelodyError: with `strict`, for the first bad file.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise DataError(f"`validation_fraction` must be in [0, 1), got {validation_fraction}")
    root = Path(root)
    results = read_collection(root, config, extraction, workers=workers, strict=strict, progress=progress)
    data = PreparedData.from_results(results, str(root), config, extraction, validation_fraction, len(results))
    if data.num_melodies == 0:
        raise DataError(f"no melody survived in `{root}`:\n{data.report.format()}")
    if output is not None:
        data.save(output)
    return data


@dataclass
class PreparedData:
    """Encoded melodies and their metadata: what a cache file holds.

    Attributes:
        tokens: int16 array, shape (total_steps,): every melody's ids, concatenated.
        offsets: int64 array, shape (melodies + 1,): melody i is ``tokens[offsets[i]:offsets[i + 1]]``.
        files: relative path of every source file, shape (files,).
        file_ids: int32 array, shape (melodies,): index into `files`.
        is_validation: bool array, shape (melodies,).
        qpm, numerator, denominator, velocity, program, start_step: per-melody metadata arrays.
        config, extraction: how the melodies were made.
        report: what `prepare` read and dropped.
        chord_offsets, chord_steps, chord_ids, chord_labels: every melody's chords (`chords.chords_to_arrays`):
            melody i's are ``chord_steps[chord_offsets[i]:chord_offsets[i + 1]]`` with labels
            ``chord_labels[chord_ids[...]]``. A cache written before chords were stored loads with none.
    """

    tokens: np.ndarray
    offsets: np.ndarray
    files: np.ndarray
    file_ids: np.ndarray
    is_validation: np.ndarray
    qpm: np.ndarray
    numerator: np.ndarray
    denominator: np.ndarray
    velocity: np.ndarray
    program: np.ndarray
    start_step: np.ndarray
    config: EncodingConfig
    extraction: ExtractionConfig
    report: PrepareReport
    validation_fraction: float = VALIDATION_FRACTION
    chord_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    chord_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    chord_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    chord_labels: tuple[str, ...] = ()

    def __post_init__(self):
        if self.chord_offsets.size == 0:  # no chord arrays given (an older cache): no melody has chords
            self.chord_offsets = np.zeros(self.offsets.size, np.int64)

    @property
    def num_melodies(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def lengths(self) -> np.ndarray:
        """int64 array, shape (melodies,): steps per melody."""
        return np.diff(self.offsets)

    @property
    def steps_per_bar(self) -> np.ndarray:
        """int32 array, shape (melodies,): steps per bar of each melody's (first) time signature, rounded to
        whole steps and at least 1 (every melody starts on a bar line)."""
        steps = steps_per_bar(self.config.steps_per_quarter, self.numerator.astype(np.float64), self.denominator)
        return np.maximum(1, np.rint(steps)).astype(np.int32)

    def indices(self, split: Split = "all") -> np.ndarray:
        """Melody indices of a split."""
        if split == "all":
            return np.arange(self.num_melodies)
        if split not in ("train", "validation"):
            raise DataError(f"`split` must be 'train', 'validation' or 'all', got {split!r}")
        return np.flatnonzero(self.is_validation == (split == "validation"))

    def melody_tokens(self, i: int) -> np.ndarray:
        """int32 ids of melody `i`, shape (steps,)."""
        return self.tokens[self.offsets[i] : self.offsets[i + 1]].astype(np.int32)

    def melody(self, i: int) -> Melody:
        """Melody `i`, decoded, with its metadata."""
        return tokens_to_melody(
            self.melody_tokens(i),
            self.config,
            tempos=((0, float(self.qpm[i])),),
            time_signatures=((0, int(self.numerator[i]), int(self.denominator[i])),),
            velocity=int(self.velocity[i]),
            program=int(self.program[i]),
            source=str(self.files[self.file_ids[i]]),
            start_step=int(self.start_step[i]),
            chords=arrays_to_chords(self.chord_offsets, self.chord_steps, self.chord_ids, self.chord_labels, i),
        )

    def melodies(self, split: Split = "all") -> list[Melody]:
        return [self.melody(i) for i in self.indices(split)]

    @classmethod
    def from_melodies(
        cls,
        melodies: list[Melody],
        config: EncodingConfig = EncodingConfig(),
        validation_fraction: float = VALIDATION_FRACTION,
        root: str = "",
    ) -> PreparedData:
        """Builds prepared data from melodies in memory (each melody's `source` decides its split)."""
        results: dict[str, FileResult] = {}
        for m in melodies:
            results.setdefault(m.source, FileResult(m.source)).melodies.append(m)
        return cls.from_results(
            sorted(results.values(), key=lambda r: r.path),
            root,
            config,
            ExtractionConfig(),
            validation_fraction,
            len(results),
        )

    @classmethod
    def from_results(
        cls,
        results: list[FileResult],
        root: str,
        config: EncodingConfig,
        extraction: ExtractionConfig,
        validation_fraction: float,
        files_found: int,
    ) -> PreparedData:
        """Encodes the melodies of every file read without error and completes the report."""
        report = PrepareReport.for_files(results, root, files_found)
        files: list[str] = []
        event_chunks: list[np.ndarray] = []
        meta: list[tuple] = []
        chords: list[tuple] = []
        usable = [r for r in results if not r.error_type]
        held_out_files = validation_files(
            {r.path: sum(len(m) for m in r.melodies) for r in usable}, validation_fraction
        )
        for r in usable:
            file_id = len(files)
            files.append(r.path)
            held_out = r.path in held_out_files
            for m in r.melodies:
                event_chunks.append(m.events)
                meta.append((file_id, held_out, m.qpm, *m.time_signature, m.velocity, m.program, m.start_step))
                chords.append(m.chords)
        lengths = np.array([len(e) for e in event_chunks], dtype=np.int64)
        tokens = events_list_to_tokens(event_chunks, config)
        columns = list(zip(*meta)) if meta else [()] * 8
        chord_offsets, chord_steps, chord_ids, chord_labels = chords_to_arrays(chords)
        data = cls(
            tokens=tokens,
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            files=np.array(files, dtype=str),
            file_ids=np.array(columns[0], dtype=np.int32),
            is_validation=np.array(columns[1], dtype=bool),
            qpm=np.array(columns[2], dtype=np.float32),
            numerator=np.array(columns[3], dtype=np.int16),
            denominator=np.array(columns[4], dtype=np.int16),
            velocity=np.array(columns[5], dtype=np.uint8),
            program=np.array(columns[6], dtype=np.uint8),
            start_step=np.array(columns[7], dtype=np.int64),
            config=config,
            extraction=extraction,
            report=report,
            validation_fraction=validation_fraction,
            chord_offsets=chord_offsets,
            chord_steps=chord_steps,
            chord_ids=chord_ids,
            chord_labels=tuple(chord_labels),
        )
        report.melodies_kept = data.num_melodies
        report.melodies_validation = int(data.is_validation.sum())
        report.melodies_train = data.num_melodies - report.melodies_validation
        report.total_steps = int(tokens.size)
        notes = tokens[tokens >= NUM_SPECIAL].astype(np.int32) - NUM_SPECIAL + config.min_pitch
        report.pitch_range = (int(notes.min()), int(notes.max())) if notes.size else None
        return data

    _ARRAYS = (
        "tokens", "offsets", "files", "file_ids", "is_validation", "qpm", "numerator", "denominator", "velocity",
        "program", "start_step",
    )  # fmt: skip
    _CHORD_ARRAYS = ("chord_offsets", "chord_steps", "chord_ids")  # absent from caches written before chords

    def save(self, path: str | os.PathLike) -> None:
        """Writes the cache (`.npz`, no pickled objects) and a `.report.json` beside it."""
        path = Path(path)
        meta = {
            "format": "melodyrnn-prepared",
            "version": CACHE_VERSION,
            "config": self.config.to_dict(),
            "extraction": self.extraction.to_dict(),
            "validation_fraction": self.validation_fraction,
            "report": self.report.to_dict(),
            "chord_labels": list(self.chord_labels),
        }
        report = path.with_name(path.stem + ".report.json")
        for target in (path, report):  # both checked before either is written
            check_writable_file(target, "output")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: getattr(self, k) for k in self._ARRAYS + self._CHORD_ARRAYS}
        # atomic: a crash or a full disk never leaves half a cache, an empty report or a temporary file behind
        atomic_write(path, lambda f: np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays))
        atomic_write_text(report, json.dumps(self.report.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> PreparedData:
        """Reads a cache written by `save`.

        Raises:
            DataError: the file is missing, not a melodyrnn cache, or corrupt.
        """
        try:
            with open(path, "rb") as f:
                if f.read(4) != b"PK\x03\x04":  # np.load would suggest unpickling it: never for user data
                    raise DataError(f"`{path}` is not a melodyrnn prepared-data cache (not an .npz archive)")
            with zipfile.ZipFile(path) as archive:
                problem = check_members(archive, _MAX_ARRAY_BYTES, 2 * _MAX_ARRAY_BYTES)
            if problem:
                raise DataError(f"`{path}` is refused: {problem}")
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                if meta.get("format") != "melodyrnn-prepared":
                    raise DataError(f"`{path}` is not a melodyrnn prepared-data cache")
                if meta.get("version") != CACHE_VERSION:
                    raise DataError(f"`{path}` has cache version {meta.get('version')}, expected {CACHE_VERSION}")
                arrays = {k: npz[k] for k in cls._ARRAYS + cls._CHORD_ARRAYS if k in npz.files or k in cls._ARRAYS}
        except DataError:
            raise
        except Exception as err:  # zipfile, KeyError, ValueError, OSError...
            raise DataError(f"cannot read prepared data `{path}`: {type(err).__name__}: {err}") from err
        try:
            data = cls(
                **arrays,
                config=EncodingConfig.from_dict(meta["config"]),
                extraction=ExtractionConfig.from_dict(meta["extraction"]),
                report=PrepareReport.from_dict(meta["report"]),
                validation_fraction=float(meta["validation_fraction"]),
                chord_labels=tuple(meta.get("chord_labels", [])),
            )
        except (KeyError, TypeError, ValueError) as err:  # MelodyRNNError included: a hand-edited config
            raise DataError(f"`{path}` has bad metadata: {type(err).__name__}: {err}") from err
        problem = data._inconsistency()
        if problem:
            raise DataError(f"`{path}` is corrupt: {problem}")
        return data

    def _inconsistency(self) -> str | None:
        """What makes the arrays unusable together, or None: checked on load, since a cache may be hand-edited."""
        melodies = self.offsets.size - 1
        per_melody = self._ARRAYS[3:]  # every array after tokens, offsets and files has one entry per melody
        if any(getattr(self, k).ndim != 1 for k in self._ARRAYS):
            return "every array must be one-dimensional"
        if not all(np.issubdtype(getattr(self, k).dtype, np.integer) for k in ("tokens", "offsets", "file_ids")):
            return "tokens, offsets and file ids must be integers"
        if melodies < 0 or any(getattr(self, k).size != melodies for k in per_melody):
            return "its per-melody arrays do not match its offsets"
        if self.offsets[0] != 0 or self.offsets[-1] != self.tokens.size or np.any(np.diff(self.offsets) < 0):
            return "its offsets do not match its tokens"
        if self.tokens.size and (self.tokens.min() < 0 or self.tokens.max() >= self.config.vocab_size):
            return f"token ids lie outside [0, {self.config.vocab_size})"
        if melodies and (self.file_ids.min() < 0 or self.file_ids.max() >= self.files.size):
            return "file ids point past its file list"
        if melodies and not all(
            is_usable_time_signature(int(n), int(d))
            for n, d in set(zip(self.numerator.tolist(), self.denominator.tolist()))
        ):
            return "it holds unusable time signatures"
        labels = self.chord_labels
        return chord_arrays_problem(self.chord_offsets, self.chord_steps, self.chord_ids, labels, self.lengths)

    def dataset(
        self,
        seq_len: int = 128,
        batch_size: int = 64,
        *,
        split: Split = "train",
        shuffle: bool = True,
        transpose: int = 0,
        stride: int | None = None,
        seed: int | None = None,
        drop_remainder: bool = False,
        with_bars: bool = False,
        max_steps_per_bar: int | None = None,
        with_conditions: bool = False,
    ):
        """A `tf.data.Dataset` of ``(inputs, targets, weights)`` windows for next-event training.

        Each melody is cut into windows of ``seq_len + 1`` ids every `stride` steps (a melody's last
        window ends at its end); inputs are the first `seq_len` ids and targets the next `seq_len`.
        Melodies shorter than a window are padded, and their padded steps get weight 0.

        With `with_bars` (for lookback models) every window starts on a bar line of its melody: the stride is
        rounded down to whole bars of that melody (at least one bar), and the last window may run past the
        melody's end, its tail padded with weight 0. Every target step is still covered.

        Args:
            seq_len: steps per window.
            batch_size: windows per batch.
            split: "train", "validation" or "all".
            shuffle: shuffle windows (every epoch anew).
            transpose: if > 0, move each window by a random number of semitones in
                [-transpose, transpose], limited so every note stays in the vocabulary.
            stride: steps between window starts; defaults to ``seq_len // 2``.
            seed: makes shuffling and transposition repeatable.
            drop_remainder: drop a last, smaller batch.
            with_bars: start windows on bar lines and yield ``inputs`` as a dict (see Returns).
            max_steps_per_bar: with `with_bars`, the longest bar allowed (the model's `max_steps_per_bar`);
                None checks nothing.
            with_conditions: ``inputs`` is a dict with "conditions", int32 (batch, seq_len, NUM_FIELDS), those of
                the step each input predicts (`conditioning.prepared_conditions`), chords transposed with the notes.

        Returns:
            A dataset of int32 ``inputs`` and ``targets`` of shape (batch, seq_len) and float32
            ``weights`` of the same shape. With `with_bars`, ``inputs`` is ``{"ids": int32 (batch, seq_len),
            "bar": int32 (batch,)}``, "bar" the steps per bar of each window's melody.

        Raises:
            DataError: bad sizes, an empty split, or with `with_bars` a bar longer than `seq_len`.
            MelodyRNNError: with `with_bars`, a bar longer than `max_steps_per_bar`.
        """
        import tensorflow as tf

        if seq_len < 1 or batch_size < 1:
            raise DataError(f"`seq_len` and `batch_size` must be >= 1, got {seq_len} and {batch_size}")
        stride = stride or max(1, seq_len // 2)
        bars = self._checked_bars(split, seq_len, max_steps_per_bar) if with_bars else None
        starts, valid, window_bars = self._window_starts(split, seq_len, stride, bars)
        if starts.size == 0:
            raise DataError(f"the {split!r} split has no melodies")
        padded = np.concatenate([self.tokens.astype(np.int32), np.zeros(seq_len + 1, np.int32)])
        lo_id, hi_id = self._window_pitch_bounds(padded, starts, valid, seq_len)
        ds = tf.data.Dataset.from_tensor_slices((starts, valid, lo_id, hi_id, window_bars))
        if shuffle:
            ds = ds.shuffle(len(starts), seed=seed, reshuffle_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)))
        conditions = tf.constant(prepared_conditions(self, seq_len + 1)) if with_conditions else None
        window = _window_maker(tf.constant(padded), seq_len, transpose, self.config.vocab_size, with_bars, conditions)
        ds = ds.map(window, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)

    def num_windows(self, split: Split = "train", seq_len: int = 128, stride: int | None = None) -> int:
        """How many windows one pass of `dataset` over `split` cuts (without `with_bars`)."""
        return int(self._window_starts(split, seq_len, stride or max(1, seq_len // 2))[0].size)

    def _checked_bars(self, split: Split, seq_len: int, max_steps_per_bar: int | None) -> np.ndarray:
        """Steps per bar of every melody, after checking the split's bars fit a window and the model."""
        bars = self.steps_per_bar
        used = bars[self.indices(split)]
        if max_steps_per_bar is not None:
            check_steps_per_bar(used, max_steps_per_bar)
        if used.size and used.max() > seq_len:
            raise DataError(
                f"`seq_len` must be at least the longest bar ({used.max()} steps) with `with_bars`, got {seq_len}"
            )
        return bars

    def _window_starts(
        self, split: Split, seq_len: int, stride: int, bars: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Global window start positions, how many of each window's seq_len + 1 ids are real, and each window's
        steps per bar (0 without `bars`, the int (melodies,) bar lengths that put window starts on bar lines)."""
        starts, valid, window_bars = [], [], []
        for i in self.indices(split):
            begin, length = int(self.offsets[i]), int(self.offsets[i + 1] - self.offsets[i])
            if length < 2:
                continue
            last = max(length - seq_len - 1, 0)  # the first start whose window reaches the melody's end
            if bars is None:
                local = list(range(0, last + 1, stride))
                if local[-1] + seq_len + 1 < length:
                    local.append(last)
            else:
                # whole bars, at most seq_len steps apart (the caller checked bar <= seq_len), so no target is skipped
                bar_stride = max(1, min(stride, seq_len) // int(bars[i])) * int(bars[i])
                local = list(range(0, last + bar_stride, bar_stride))
            starts += [begin + s for s in local]
            valid += [min(seq_len + 1, length - s) for s in local]
            window_bars += [0 if bars is None else int(bars[i])] * len(local)
        return np.array(starts, np.int64), np.array(valid, np.int32), np.array(window_bars, np.int32)

    def _window_pitch_bounds(self, padded, starts, valid, seq_len) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest NOTE_ON id per window (vocab-1 and NUM_SPECIAL when it has none)."""
        vocab = self.config.vocab_size
        idx = starts[:, None] + np.arange(seq_len + 1)[None, :]
        w = padded[idx]
        real = (np.arange(seq_len + 1)[None, :] < valid[:, None]) & (w >= NUM_SPECIAL)
        lo = np.where(real, w, vocab - 1).min(axis=1)
        hi = np.where(real, w, NUM_SPECIAL).max(axis=1)
        return lo.astype(np.int32), hi.astype(np.int32)


def _window_maker(tokens_t, seq_len: int, transpose: int, vocab: int, with_bars: bool, conditions_t=None) -> Callable:
    """The tf.data map function that cuts one ``(inputs, targets, weights)`` window out of `tokens_t`.

    It maps ``((start, n_valid, lo, hi, bar), rnd)``: the window's start in `tokens_t`, how many of its
    ``seq_len + 1`` ids are real, its lowest and highest note id, its melody's steps per bar and a random int64.
    `conditions_t`, if given, holds every step's conditions, aligned with `tokens_t`.
    """
    import tensorflow as tf

    def window(item, rnd):
        start, n_valid, lo, hi, bar = item
        w = tokens_t[start : start + seq_len + 1]
        # Past a short melody's end the slice runs into the next melody: blank it out.
        w = tf.where(tf.range(seq_len + 1) < n_valid, w, 0)
        shift = 0
        if transpose > 0:
            # Shift limits keep the lowest and highest note of the window inside the vocabulary.
            low = tf.maximum(-transpose, NUM_SPECIAL - lo)
            high = tf.minimum(transpose, vocab - 1 - hi)
            shift = low + tf.cast(rnd % tf.cast(high - low + 1, tf.int64), tf.int32)
            w = tf.where(w >= NUM_SPECIAL, w + shift, w)
        weights = tf.cast(tf.range(seq_len) < n_valid - 1, tf.float32)
        inputs = {"ids": w[:-1], "bar": bar} if with_bars else {"ids": w[:-1]}
        if conditions_t is not None:  # those of the step each input predicts
            inputs["conditions"] = transpose_conditions(conditions_t[start + 1 : start + seq_len + 1], shift)
        return (inputs if len(inputs) > 1 else w[:-1]), w[1:], weights

    return window
