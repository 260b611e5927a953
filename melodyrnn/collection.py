"""Reading a collection: every MIDI file under a folder, read and extracted in worker processes, and the report.

Start at `read_collection` (a folder → one `FileResult` per file, never stopped by a bad file unless strict),
then `PrepareReport.for_files` (what was read, skipped and repaired, by reason). `is_validation` decides each
file's split. `dataset.prepare` turns the results into the cache: the cache depends on this module, never the
reverse, which is why `prepare` lives beside `PreparedData` and not here.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from melodyrnn.chords import scores_to_chords
from melodyrnn.encoding import EncodingConfig, Melody
from melodyrnn.errors import DataError, MidiReadError, MissingExtraError, NoMelodyError, ScoreReadError
from melodyrnn.extraction import ExtractionConfig, MelodyDraft, chord_changes, drafts_to_melodies, score_to_drafts
from melodyrnn.midi_io import Score, read_midi
from melodyrnn.scores import SCORE_SUFFIXES, read_scores
from melodyrnn.tracks import choose_melody_tracks

MIDI_SUFFIXES = (".mid", ".midi", ".kar")
#: Every suffix a collection is read from: MIDI, and MusicXML and ABC (read with the `scores` extra).
COLLECTION_SUFFIXES = MIDI_SUFFIXES + SCORE_SUFFIXES
_UNREADABLE = {"MidiReadError": MidiReadError, "ScoreReadError": ScoreReadError}
_LEFT_OUT = "left_out_track: "  # the prefix of `score_to_melodies`' counts of tracks not taken
#: Share of files (by a hash of their relative path) held out for validation unless a caller says otherwise.
VALIDATION_FRACTION = 0.1
#: The fewest steps a validation split should hold for its loss to decide when a run stops (about a dozen folk
#: tunes): on fewer, the noise in the loss is as large as what an epoch of training changes. A small collection's
#: split takes more files to reach it, up to MAX_VALIDATION_SHARE of the steps; `melodyrnn.planning` falls back
#: to a fixed budget when even that is too little.
MIN_VALIDATION_STEPS = 3_000
#: The largest share of a collection's steps the validation split takes to reach MIN_VALIDATION_STEPS.
MAX_VALIDATION_SHARE = 0.25


def find_midi_files(root: str | os.PathLike, suffixes: tuple[str, ...] = COLLECTION_SUFFIXES) -> list[Path]:
    """Every MIDI or score file under `root`, recursively (`suffixes` in any letter case), sorted.

    Raises:
        DataError: `root` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"`{root}` is not a directory of MIDI files")
    found = [p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def is_validation(relative_path: str, validation_fraction: float) -> bool:
    """Whether a file belongs to the validation split: a stable hash of its relative path.

    The hash (SHA-1 of the POSIX path) does not depend on the machine, the file order or the seed, so
    adding files to a collection never moves the old ones across the split.
    """
    return _split_key(relative_path) < validation_fraction


def _split_key(relative_path: str) -> float:
    # A stable number in [0, 1) per file: SHA-1 of its POSIX path.
    digest = hashlib.sha1(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def validation_files(steps_per_file: dict[str, int], validation_fraction: float) -> set[str]:
    """The files of the validation split: those `is_validation` picks, topped up when they hold too few steps.

    When the files under `validation_fraction` hold fewer than `MIN_VALIDATION_STEPS` steps, the next files in
    hash order join until the split reaches it, never past `MAX_VALIDATION_SHARE` of all steps (so the training
    split keeps most of a small collection). A large collection's split is exactly `is_validation`'s; a fraction
    of 0 holds nothing out.

    Args:
        steps_per_file: relative path → steps of its melodies.
        validation_fraction: as `is_validation`.

    Returns:
        The relative paths held out.
    """
    if validation_fraction <= 0:
        return set()
    ranked = sorted((_split_key(path), path) for path in steps_per_file)
    chosen = {path for key, path in ranked if key < validation_fraction}
    held = sum(steps_per_file[path] for path in chosen)
    cap = MAX_VALIDATION_SHARE * sum(steps_per_file.values())
    for _, path in ranked:
        if held >= MIN_VALIDATION_STEPS:
            break
        if path in chosen:
            continue
        if held + steps_per_file[path] > cap:
            break
        chosen.add(path)
        held += steps_per_file[path]
    return chosen


@dataclass
class FileResult:
    """One file's outcome: its melodies, or why it was skipped, and what was dropped or repaired on the way."""

    path: str
    melodies: list[Melody] = field(default_factory=list)
    error_type: str | None = None
    reason: str = ""  # why the file was skipped; set together with `error_type`
    stats: Counter = field(default_factory=Counter)
    repairs: list[str] = field(default_factory=list)
    melody_tracks: str = ""  # which track(s) the melodies came from and why, when the file had more than one


@dataclass
class _Pending:
    """A file read and extracted, waiting for the chords of its scores: per score, its drafts, either its chord
    changes or the index of its request for recognized chords, and the tracks taken as melody."""

    result: FileResult
    parts: list[tuple[Score, list[MelodyDraft], tuple | int, tuple[int, ...]]] = field(default_factory=list)


def _process_files(jobs: list[tuple[str, str, dict, dict]]) -> list[FileResult]:
    """Reads files and extracts their melodies, the chords of them all read at once (`scores_to_chords`); never
    raises (a worker must not die on a bad file). The jobs come from one `read_collection`: one pair of configs."""
    if not jobs:
        return []
    config, extraction = EncodingConfig.from_dict(jobs[0][2]), ExtractionConfig.from_dict(jobs[0][3])
    requests: list[tuple[Score, tuple[int, ...]]] = []
    pending = [_draft_file(job[:2], requests, config, extraction) for job in jobs]
    recognized: list[tuple | None]
    try:
        recognized = list(scores_to_chords(requests))
    except Exception:  # a bug triggered by one strange file must not cost the others their chords: one by one
        recognized = [None] * len(requests)
    return [_finish_file(p, recognized, config) for p in pending]


def _draft_file(
    file: tuple[str, str], requests: list, config: EncodingConfig, extraction: ExtractionConfig
) -> _Pending:
    """Reads one file (path, name in the report) and extracts its melodies' drafts, adding to `requests` the scores
    whose chords must be recognized; never raises (a file that fails is a result with its error)."""
    path, relative = file
    pending = _Pending(FileResult(relative))
    result = pending.result
    try:
        scores, skipped = _read_file(path, relative)
        result.repairs = [re.sub(r"\d+", "N", r) for r in skipped + [r for s in scores for r in s.repairs]]
        for score in scores:  # one, but an ABC tune book holds many tunes
            choice = choose_melody_tracks(score, extraction.melody_tracks)
            if choice.had_choice and not result.melody_tracks:
                result.melody_tracks = choice.summary()
            drafts = score_to_drafts(score, config, extraction, result.stats, choice)
            changes: tuple | int = ()
            if drafts and extraction.chords == "auto":
                if score.chord_symbols:
                    changes = chord_changes(score, choice.taken, config, result.stats)
                else:
                    changes = len(requests)
                    requests.append((score, choice.taken))
            pending.parts.append((score, drafts, changes, choice.taken))
        if not any(drafts for _, drafts, _, _ in pending.parts):
            has_notes = [t for score in scores for t in score.tracks if t.notes]
            if not has_notes:
                raise NoMelodyError(relative, "the file has no notes")
            if all(t.is_drum for t in has_notes):
                raise NoMelodyError(relative, "the file has only drum tracks")
            raise NoMelodyError(relative, "no melody passed the filters")
    except Exception as err:
        _record_error(result, err)
        pending.parts = []
    return pending


def _finish_file(pending: _Pending, recognized: list, config: EncodingConfig) -> FileResult:
    """The file's melodies from its drafts and chords; never raises."""
    result = pending.result
    try:
        for score, drafts, changes, taken in pending.parts:
            if isinstance(changes, int):  # the request's chords; None if the batch failed: this file's own then
                changes = chord_changes(score, taken, config, result.stats, recognized[changes])
            # Keep only what the cache stores, so a loaded melody equals the one extracted here.
            result.melodies += drafts_to_melodies(drafts, changes, config, result.path, first_maps_only=True)
    except Exception as err:
        _record_error(result, err)
        result.melodies = []
    return result


def _record_error(result: FileResult, err: Exception) -> None:
    if isinstance(err, (MidiReadError, ScoreReadError, NoMelodyError)):
        result.error_type, result.reason = type(err).__name__, err.reason
    elif isinstance(err, MissingExtraError):  # a score file, and music21 is not installed: the MIDI files count
        result.error_type, result.reason = "ScoreReadError", str(err)
    else:  # a bug triggered by a strange file must not stop a whole import
        result.error_type, result.reason = "MidiReadError", f"unexpected {type(err).__name__}: {err}"


def _read_file(path: str, relative: str) -> tuple[list[Score], list[str]]:
    """The scores of one file (one, or one per tune of an ABC tune book) and a note per tune that was skipped;
    the reader is chosen by suffix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if Path(path).suffix.lower() not in SCORE_SUFFIXES:
            return [read_midi(path, name=relative)], []
        book = read_scores(path, name=relative)
    return book.scores, [f"skipped tune {tune[len(relative) :].strip()}: {reason}" for tune, reason in book.skipped]


#: `workers=None` starts worker processes only for more work than this, in seconds on one core
#: (`estimated_seconds`): each worker is a fresh interpreter importing numpy, symusic and melodyrnn and loading the
#: compiled loops, about 1.5 s, so two workers gain only on more than twice that.
PARALLEL_FROM_SECONDS = 3.0
# What reading costs on one core (benchmarks/bench_prepare.py): a MIDI file about 0.2 ms plus 30 ns a byte (a
# 30 KB song about 1 ms; 3 s is some 3,000 songs); a MusicXML or ABC file, through music21, about 0.25 s.
_MIDI_FILE_SECONDS, _MIDI_BYTE_SECONDS, _SCORE_FILE_SECONDS = 2e-4, 3e-8, 0.25
# Files read and extracted together (see `_run_jobs`).
_BATCH_FILES = 32


def estimated_seconds(paths: Sequence[Path]) -> float:
    """About how long reading `paths` takes on one core, from their kinds and sizes."""
    total = 0.0
    for path in paths:
        if path.suffix.lower() in SCORE_SUFFIXES:
            total += _SCORE_FILE_SECONDS
            continue
        try:
            size = path.stat().st_size
        except OSError:  # gone since it was listed: reading it will say so
            size = 0
        total += _MIDI_FILE_SECONDS + _MIDI_BYTE_SECONDS * size
    return total


def read_collection(
    root: str | os.PathLike,
    config: EncodingConfig,
    extraction: ExtractionConfig,
    *,
    workers: int | None = None,
    strict: bool = False,
    progress: bool | None = None,
) -> list[FileResult]:
    """Reads every MIDI file under `root` and extracts its melodies, in worker processes.

    Args:
        root: folder searched recursively for MIDI (.mid, .midi, .kar) and score (.musicxml, .xml, .mxl, .abc) files;
            each tune of an ABC tune book gives melodies of that file (the split stays by file).
        config: the vocabulary and grid.
        extraction: melody extraction policies and filters.
        workers: worker processes; None uses every core when reading would take more than
            `PARALLEL_FROM_SECONDS` on one, and works in this process below that; 1 works in this process.
        strict: raise on the first file that cannot be read or holds no melody.
        progress: show a progress bar; None shows it when stderr is a terminal.

    Returns:
        One result per file, sorted by relative path.

    Raises:
        DataError: bad `workers`, or `root` is not a folder or holds no MIDI file.
        MidiReadError, NoMelodyError: with `strict`, for the first bad file.
    """
    if workers is not None and workers < 1:
        raise DataError(f"`workers` must be >= 1, got {workers}")
    root = Path(root)
    paths = find_midi_files(root)
    if not paths:
        raise DataError(f"no MIDI files (.mid, .midi, .kar) or scores (.musicxml, .xml, .mxl, .abc) under `{root}`")
    dicts = config.to_dict(), extraction.to_dict()  # one pair shared by every job: a batch parses them once
    jobs = [(str(p), p.relative_to(root).as_posix(), *dicts) for p in paths]
    if workers is None and estimated_seconds(paths) < PARALLEL_FROM_SECONDS:
        workers = 1
    workers = min(workers or os.cpu_count() or 1, len(jobs))

    from tqdm import tqdm

    bar = tqdm(
        total=len(jobs),
        unit="file",
        desc="prepare",
        disable=None if progress is None else not progress,
        file=sys.stderr,
    )
    results: list[FileResult] = []
    try:
        for result in _run_jobs(jobs, workers):
            bar.update(1)
            if strict and result.error_type:
                error = _UNREADABLE.get(result.error_type, NoMelodyError)
                raise error(result.path, result.reason)
            results.append(result)
    finally:
        bar.close()
    results.sort(key=lambda r: r.path)
    return results


def _run_jobs(jobs: list, workers: int) -> Iterator[FileResult]:
    # Files go in batches, whose chords are recognized together (`scores_to_chords`): a few dozen amortize its
    # per-beat steps; with workers, small enough batches to keep them all busy to the end.
    size = _BATCH_FILES if workers == 1 else max(1, min(_BATCH_FILES, len(jobs) // (8 * workers)))
    batches = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    if workers == 1:
        for batch in batches:
            yield from _process_files(batch)
        return
    # spawn, not fork: the parent may hold TensorFlow's threads, which do not survive a fork. An executor, not a
    # Pool: a worker that dies while starting (a script calling `prepare` at import time, without a main guard,
    # is re-run by every spawned worker, which may not start processes) breaks it, where a Pool restarts the
    # workers for ever and never returns.
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        for results in executor.map(_process_files, batches):
            yield from results
    except BrokenProcessPool as error:
        raise DataError(
            f"prepare's {workers} worker processes stopped before finishing. If you called prepare(workers={workers}) "
            "from a script, put the call under `if __name__ == '__main__':` (each worker re-runs the script), or "
            "use workers=1"
        ) from error
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


@dataclass
class PrepareReport:
    """What `prepare` read, kept and dropped, and why."""

    root: str
    files_found: int = 0
    files_read: int = 0
    files_with_melodies: int = 0
    files_skipped: dict[str, int] = field(default_factory=dict)
    melodies_kept: int = 0
    melodies_train: int = 0
    melodies_validation: int = 0
    melodies_dropped: dict[str, int] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)
    total_steps: int = 0
    pitch_range: tuple[int, int] | None = None
    worst_files: list[dict[str, str]] = field(default_factory=list)
    #: Tracks with notes that melodies were not taken from, by reason ("plays chords", "drum track", ...).
    tracks_left_out: dict[str, int] = field(default_factory=dict)
    #: Per file with more than one pitched track: the track(s) taken and why.
    melody_tracks: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> PrepareReport:
        d = dict(d)
        if d.get("pitch_range") is not None:
            d["pitch_range"] = tuple(d["pitch_range"])
        return cls(**d)

    @classmethod
    def for_files(cls, results: list[FileResult], root: str, files_found: int) -> PrepareReport:
        """The report's file half: files read, skipped and repaired, melodies dropped. The melody counts stay 0
        for the caller that encodes the melodies to fill in."""
        report = cls(root=root, files_found=files_found)
        skipped: Counter[str] = Counter()
        dropped: Counter[str] = Counter()
        repairs: Counter[str] = Counter()
        left_out: Counter[str] = Counter()
        worst: list[dict[str, str]] = []
        for r in results:
            dropped.update({k: v for k, v in r.stats.items() if k.startswith("drop")})
            left_out.update({k[len(_LEFT_OUT) :]: v for k, v in r.stats.items() if k.startswith(_LEFT_OUT)})
            left_out["drum track"] += r.stats.get("skip_drum_track", 0)
            if r.melody_tracks:
                report.melody_tracks[r.path] = r.melody_tracks
            repairs.update(r.repairs)
            if r.error_type in _UNREADABLE:
                skipped[f"unreadable: {_reason_key(r.reason)}"] += 1
                worst.append({"path": r.path, "reason": r.reason})
                continue
            report.files_read += 1
            if r.error_type:
                skipped[f"no melody: {_reason_key(r.reason)}"] += 1
                worst.append({"path": r.path, "reason": r.reason})
                continue
            report.files_with_melodies += 1
        # Files that were repaired come after the skipped ones in the list of worst files.
        worst += [{"path": r.path, "reason": "; ".join(r.repairs)} for r in results if r.repairs and not r.error_type]
        report.files_skipped = dict(skipped)
        report.melodies_dropped = dict(dropped)
        report.repairs = dict(repairs)
        report.tracks_left_out = {k: v for k, v in left_out.items() if v}
        report.worst_files = worst[:20]
        return report

    def format(self) -> str:
        """A human-readable summary, several lines."""
        lines = [
            f"files found: {self.files_found}   read: {self.files_read}   with melodies: {self.files_with_melodies}",
            f"melodies kept: {self.melodies_kept} (train {self.melodies_train}, validation {self.melodies_validation})"
            f"   steps: {self.total_steps}   pitch range: {self.pitch_range}",
        ]
        for title, counts in (
            ("files skipped", self.files_skipped),
            ("melodies dropped", self.melodies_dropped),
            ("repairs", self.repairs),
            ("tracks left out", self.tracks_left_out),
        ):
            if counts:
                lines.append(f"{title}: {sum(counts.values())}")
                lines += [f"  {n:6d}  {reason}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1])]
        if self.melody_tracks:
            lines.append(f"melody tracks chosen in {len(self.melody_tracks)} files with several tracks, e.g.:")
            lines += [f"  {path}: {why}" for path, why in list(self.melody_tracks.items())[:10]]
        if self.worst_files:
            lines.append("worst files:")
            lines += [f"  {w['path']}: {w['reason']}" for w in self.worst_files]
        return "\n".join(lines)


def _reason_key(reason: str) -> str:
    """Groups reasons that differ only in numbers or in parenthesised detail."""
    return re.sub(r"\d+", "N", reason.split(" (")[0])
