"""collection: finding MIDI files, reading them in workers, the report of every outcome, and the by-file split."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import midi_bytes, note_track, scale_notes

from melodyrnn import DataError, EncodingConfig, ExtractionConfig, NoMelodyError, PrepareReport, prepare
from melodyrnn.collection import (
    MAX_VALIDATION_SHARE,
    MIN_VALIDATION_STEPS,
    PARALLEL_FROM_SECONDS,
    estimated_seconds,
    find_midi_files,
    is_validation,
    read_collection,
    validation_files,
)


def test_find_midi_files_is_recursive_case_insensitive_and_sorted(messy_folder):
    names = [p.relative_to(messy_folder).as_posix() for p in find_midi_files(messy_folder)]
    assert len(names) == 12 + 5 + 3
    assert "sub/deeper/tune3.Kar" in names and "tune1.MID" in names and "notes.txt" not in names
    assert names == sorted(names)
    with pytest.raises(DataError, match="not a directory"):
        find_midi_files(messy_folder / "tune0.mid")


def test_prepare_messy_folder_reports_every_outcome(messy_folder, tmp_path):
    out = tmp_path / "data.npz"
    data = prepare(messy_folder, out, workers=1, progress=False)
    r = data.report
    assert r.files_found == 20
    # Unreadable: empty, corrupt, not MIDI, truncated. Read but melody-less: drums only, too short.
    assert r.files_skipped == {
        "unreadable: the file is empty": 1,
        "unreadable: not a MIDI file": 1,
        "unreadable: the file is truncated or corrupt": 2,
        "no melody: the file has only drum tracks": 1,
        "no melody: no melody passed the filters": 1,
    }, r.files_skipped
    assert r.files_read == 16 and r.files_with_melodies == 14
    assert r.melodies_kept == 14 == data.num_melodies
    assert r.melodies_dropped == {"drop_too_short": 1}
    assert r.repairs == {"header announces N tracks but the file holds N": 1}
    assert r.total_steps == 14 * 128 == int(data.lengths.sum())
    assert r.pitch_range == (60, 76)
    assert {w["path"] for w in r.worst_files[:6]} == {
        "sub/empty.mid",
        "sub/corrupt.mid",
        "sub/not_midi.mid",
        "truncated.mid",
        "sub/drums_only.mid",
        "short.mid",
    }
    assert json.loads(out.with_name("data.report.json").read_text())["melodies_kept"] == 14
    text = r.format()
    assert "melodies kept: 14" in text and "sub/empty.mid" in text


def test_two_workers_give_the_same_cache_as_one(messy_folder, tmp_path):
    a = prepare(messy_folder, workers=1, progress=False)
    b = prepare(messy_folder, workers=2, progress=False)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.files, b.files)
    assert a.report == b.report


def test_workers_in_a_script_without_a_main_guard_give_a_clear_error_not_a_hang(messy_folder, tmp_path):
    # Each spawned worker re-runs the calling script; one that calls prepare at import time cannot start its workers.
    script = tmp_path / "unguarded.py"
    script.write_text(
        f"import melodyrnn.dataset\nmelodyrnn.dataset.prepare({str(messy_folder)!r}, workers=2, progress=False)\n"
    )
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "DataError" in run.stderr and "if __name__ == '__main__':" in run.stderr
    guarded = tmp_path / "guarded.py"
    guarded.write_text(
        "import melodyrnn.dataset\nif __name__ == '__main__':\n"
        f"    print(melodyrnn.dataset.prepare({str(messy_folder)!r}, workers=2, progress=False).report.melodies_kept)\n"
    )
    run = subprocess.run([sys.executable, str(guarded)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "14", run.stderr[-2000:]


def test_strict_stops_at_the_first_bad_file(messy_folder):
    # Files are read in path order: short.mid (two notes, too short a melody) is the first bad one.
    with pytest.raises(NoMelodyError, match="no melody in short.mid"):
        prepare(messy_folder, workers=1, strict=True, progress=False)


def test_prepare_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="no MIDI files"):
        prepare(tmp_path, progress=False)
    (tmp_path / "bad.mid").write_bytes(b"junk")
    with pytest.raises(DataError, match="no melody survived"):
        prepare(tmp_path, workers=1, progress=False)
    with pytest.raises(DataError, match="validation_fraction"):
        prepare(tmp_path, validation_fraction=1.5)


def test_split_is_by_file_hash_and_stable():
    paths = [f"folk/tune{i}.mid" for i in range(2000)]
    held = [p for p in paths if is_validation(p, 0.1)]
    # Pinned: a change to the hash or its threshold would silently move files between a saved run's splits.
    assert len(held) == 215
    assert held[:6] == [
        "folk/tune15.mid",
        "folk/tune48.mid",
        "folk/tune57.mid",
        "folk/tune60.mid",
        "folk/tune66.mid",
        "folk/tune67.mid",
    ]
    assert not any(is_validation(p, 0.0) for p in paths)


def test_no_melody_leaks_across_the_split(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    for i in range(40):
        # Two tracks per file: two melodies from one file must land on the same side.
        data = midi_bytes([note_track(scale_notes(8, 50 + i % 7)), note_track(scale_notes(8, 40), channel=1)])
        (root / f"t{i:02d}.mid").write_bytes(data)
    every_track = ExtractionConfig(melody_tracks="all")
    data = prepare(root, workers=1, validation_fraction=0.3, progress=False, extraction=every_track)
    assert data.num_melodies == 80
    held_out = validation_files({str(p): int(data.lengths[data.file_ids == f].sum()) for f, p in
                                 enumerate(data.files)}, 0.3)  # fmt: skip
    for f in range(len(data.files)):
        sides = set(data.is_validation[data.file_ids == f].tolist())
        assert len(sides) == 1
        # a collection this small holds more than its 30% out, to reach the minimum of validation steps
        assert sides == {str(data.files[f]) in held_out} and (str(data.files[f]) in held_out) >= is_validation(
            str(data.files[f]), 0.3
        )
    assert 0 < data.is_validation.sum() < 80
    train, val = set(data.indices("train")), set(data.indices("validation"))
    assert not train & val and len(train | val) == 80


def test_read_collection_gives_one_sorted_result_per_file_and_the_report_counts_them(messy_folder):
    results = read_collection(messy_folder, EncodingConfig(), ExtractionConfig(), workers=1, progress=False)
    paths = [r.path for r in results]
    assert paths == sorted(paths) and len(paths) == 20
    report = PrepareReport.for_files(results, "c", len(results))
    assert (report.files_found, report.files_read, report.files_with_melodies) == (20, 16, 14)
    assert report.melodies_kept == 0  # the melody half is the cache's to fill in
    with pytest.raises(DataError, match="`workers` must be >= 1"):
        read_collection(messy_folder, EncodingConfig(), ExtractionConfig(), workers=0)


def test_prepare_bundled_training_data_matches_its_readme():
    root = Path(__file__).parents[1] / "training_data"
    readme = (root / "README.md").read_text()
    stated = int(re.search(r"with default settings: \*?\*?([\d,]+)", readme).group(1).replace(",", ""))
    data = prepare(root, workers=2, progress=False)
    assert data.num_melodies == stated
    assert data.num_melodies >= 2000


def test_a_large_collection_is_split_by_hash_alone():
    steps = {f"folk/tune{i}.mid": 400 for i in range(500)}  # 200,000 steps: 10% is far above the minimum
    assert validation_files(steps, 0.1) == {p for p in steps if is_validation(p, 0.1)}
    assert validation_files(steps, 0.0) == set()


def test_a_small_collection_holds_out_the_minimum_of_steps_but_never_more_than_its_share():
    steps = {f"tune{i}.mid": 300 for i in range(40)}  # 12,000 steps: 10% would be ~1,200
    held = validation_files(steps, 0.1)
    assert {p for p in steps if is_validation(p, 0.1)} <= held
    assert sum(steps[p] for p in held) >= MIN_VALIDATION_STEPS
    assert sum(steps[p] for p in held) - 300 < MIN_VALIDATION_STEPS  # no file more than it needs
    tiny = {f"tune{i}.mid": 300 for i in range(8)}  # 2,400 steps: the minimum cannot be reached
    held = validation_files(tiny, 0.1)
    assert sum(tiny[p] for p in held) <= MAX_VALIDATION_SHARE * 2400
    assert len(tiny) - len(held) >= 6


def _song_bytes(shift: int) -> bytes:
    """A melody over a block-chord track (C, F, G, C a bar each, twice), moved up `shift` semitones."""
    chords = []
    for bar, root in enumerate([0, 5, 7, 0] * 2):
        chords += [
            (p + root + shift, bar * 4.0 + beat, bar * 4.0 + beat + 1) for beat in range(4) for p in (48, 52, 55)
        ]
    return midi_bytes([note_track(scale_notes(8, 72 + shift)), note_track(chords, channel=1, program=24)])


def test_files_read_together_keep_their_own_chords_even_when_reading_them_together_fails(tmp_path, monkeypatch):
    for shift in range(3):
        (tmp_path / f"song{shift}.mid").write_bytes(_song_bytes(shift))
    (tmp_path / "tune.mid").write_bytes(midi_bytes([note_track(scale_notes(8))]))  # no accompaniment: no chords
    together = read_collection(tmp_path, EncodingConfig(), ExtractionConfig(), workers=1, progress=False)
    assert [r.melodies[0].chords[:2] for r in together] == [
        ((0, "C:maj"), (16, "F:maj")), ((0, "C#:maj"), (16, "F#:maj")), ((0, "D:maj"), (16, "G:maj")), ()
    ]  # fmt: skip

    def broken(requests):
        raise RuntimeError("a bug")

    # Each file then reads its own chords, and gets the same.
    monkeypatch.setattr("melodyrnn.collection.scores_to_chords", broken)
    alone = read_collection(tmp_path, EncodingConfig(), ExtractionConfig(), workers=1, progress=False)
    assert [r.melodies for r in alone] == [r.melodies for r in together] and not any(r.error_type for r in alone)


def test_workers_start_only_for_work_worth_their_start(tmp_path):
    # Starting workers costs about as much as reading a few thousand songs: a song folder or the bundled tunes
    # are read in this process, a dozen ABC files (music21, a quarter second each) in workers.
    tune = midi_bytes([note_track(scale_notes(8))])
    song = midi_bytes([note_track(scale_notes(8 * 24)), note_track(scale_notes(8 * 24, start_pitch=48), channel=1)])
    (tmp_path / "tune.mid").write_bytes(tune)
    (tmp_path / "song.mid").write_bytes(song)
    tune_cost, song_cost = estimated_seconds([tmp_path / "tune.mid"]), estimated_seconds([tmp_path / "song.mid"])
    assert 0 < tune_cost < song_cost < PARALLEL_FROM_SECONDS / 1000
    training = sorted((Path(__file__).parents[1] / "training_data" / "midi").rglob("*.mid"))
    assert estimated_seconds(training) < PARALLEL_FROM_SECONDS
    assert estimated_seconds([tmp_path / f"book{i}.abc" for i in range(12)]) >= PARALLEL_FROM_SECONDS
    assert estimated_seconds([tmp_path / "gone.mid"]) > 0  # a file gone since it was listed still counts
