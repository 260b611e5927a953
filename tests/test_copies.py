"""Originality: the longest run of a melody's notes found in a collection — planted copies (in another key) are
found where they are, shuffled melodies share little, and the CLI prints it beside each generated melody."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import midi_bytes, note_track, scale_notes
from test_cli import bundle_path  # noqa: F401  (a tiny trained bundle, shared with the CLI tests)

import melodyrnn
from melodyrnn.cli import main
from melodyrnn.copies import CopyIndex, format_copy, load_collection, originality
from melodyrnn.dataset import PreparedData
from melodyrnn.errors import DataError


def tune(seed: int, notes: int = 64, source: str = "") -> melodyrnn.Melody:
    """A random walk of eighth and quarter notes: a different tune for each seed."""
    rng = np.random.default_rng(seed)
    pitch, step, out = 60, 0, []
    for _ in range(notes):
        pitch = int(np.clip(pitch + rng.choice([-4, -2, -1, 1, 2, 3, 5]), 48, 84))
        length = int(rng.choice([2, 4]))
        out.append((pitch, step, step + length))
        step += length
    return melodyrnn.Melody.from_notes(out, num_steps=step, source=source or f"tune{seed}.mid")


@pytest.fixture(scope="module")
def collection():
    return [tune(seed) for seed in range(40)]


def test_a_planted_transposed_copy_is_found_where_it_is(collection):
    source = collection[17]
    phrase = source.notes()[10:34]  # 24 notes of tune 17, moved up a fourth and placed after 12 new notes
    head = tune(1000, notes=12).notes()
    offset = head[-1][2] - phrase[0][1]
    planted = head + [(p + 5, s + offset, e + offset) for p, s, e in phrase]
    melody = melodyrnn.Melody.from_notes(planted, num_steps=planted[-1][2], source="generated")
    copy = originality(melody, collection)[0]
    assert copy.source == "tune17.mid" and copy.source_index == 17 and copy.transposition == 5
    assert copy.notes >= 24 and copy.start_note <= 12 and copy.source_start_note <= 10
    assert copy.bars == pytest.approx((planted[-1][2] - planted[copy.start_note][1]) / 16)
    assert format_copy(copy).startswith(f"longest copied run: {copy.notes} notes (") and "transposed +5" in format_copy(
        copy
    )


def test_a_shuffled_melody_copies_nothing_long(collection):
    source = collection[3]
    notes = source.notes()
    rng = np.random.default_rng(1)
    pitches = [p for p, _, _ in notes]
    rng.shuffle(pitches)
    shuffled = melodyrnn.Melody.from_notes([(p, s, e) for p, (_, s, e) in zip(pitches, notes)], num_steps=len(source))
    assert originality(shuffled, collection)[0].notes <= 5
    # and the source itself is copied whole, from its first note
    whole = originality(source, collection)[0]
    assert (whole.notes, whole.start_note, whole.transposition) == (len(notes), 0, 0)


def test_many_melodies_at_once_in_order_and_edge_cases(collection):
    empty = melodyrnn.Melody(np.full(16, -2, np.int16))
    single = melodyrnn.Melody.from_notes([(60, 0, 4)], num_steps=16)
    copies = originality([collection[5], empty, single], collection)
    assert [c.notes for c in copies] == [len(collection[5].notes()), 0, 1]
    assert copies[2].source is None and "no two notes in a row" in format_copy(copies[2])


def test_an_index_built_once_answers_as_the_collection_does(collection):
    index = CopyIndex(collection)
    assert (index.num_melodies, index.steps_per_quarter) == (40, 4)
    melodies = [collection[3], tune(2000), collection[30]]
    for _ in range(2):  # the second pass reuses the windows hashed by the first
        assert originality(melodies, index) == originality(melodies, collection)


def test_the_collection_can_be_a_folder_a_cache_or_prepared_data(tmp_path):
    folder = tmp_path / "midis"
    folder.mkdir()
    for i in range(3):
        (folder / f"t{i}.mid").write_bytes(midi_bytes([note_track(scale_notes(12, 55 + 2 * i))]))
    data = melodyrnn.prepare(folder, tmp_path / "data.npz", validation_fraction=0.3, progress=False)
    melody = data.melody(0)
    for source in (folder, tmp_path / "data.npz", data, PreparedData.load(tmp_path / "data.npz")):
        assert originality(melody, source)[0].notes == len(melody.notes())  # every split is searched
    assert len(load_collection(folder)) == data.num_melodies
    with pytest.raises(DataError, match="neither a prepared cache nor a folder"):
        originality(melody, tmp_path / "missing")
    with pytest.raises(DataError, match="must be prepared data"):
        originality(melody, 42)
    coarse = melodyrnn.Melody.from_notes([(60, 0, 3), (62, 3, 6)], steps_per_quarter=3)
    with pytest.raises(DataError, match="share a grid"):
        originality(coarse, data)


def test_cli_generate_check_prints_each_melodys_longest_copy(bundle_path, tmp_path, capsys):  # noqa: F811
    folder = tmp_path / "midis"
    folder.mkdir()
    for i in range(3):
        (folder / f"t{i}.mid").write_bytes(midi_bytes([note_track(scale_notes(16, 55 + i))]))
    args = ["generate", "--model", str(bundle_path), "-n", "2", "--bars", "4", "--seed", "3", "-o", str(tmp_path / "o")]
    assert main([*args, "--check", str(folder)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "longest copied run" in line]
    assert len(lines) == 2 and all(line.startswith("melody_") for line in lines)
    assert main([*args, "--check", str(tmp_path / "missing")]) == 2
    assert "neither a prepared cache nor a folder" in capsys.readouterr().err


def test_the_package_function_survives_importing_its_module():
    import melodyrnn.copies  # noqa: F401  (a submodule named like the function would shadow it here)

    assert callable(melodyrnn.originality) and melodyrnn.originality is melodyrnn.copies.originality
