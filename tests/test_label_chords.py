"""training_data/label_chords.py, which gives the default model's training melodies their chords: a chorale's
chords found under its melody although the reading plays the repeats out, files withheld by a stable hash, and
the batched harmonizer equal to `harmonize` one melody at a time."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from melodyrnn.encoding import Melody, melody_to_tokens
from melodyrnn.harmonize import harmonize, load_harmonizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training_data"))

from label_chords import FOLK_PER, FOLK_VOCABULARY, _pieces, aligned_chords, harmonize_all, withheld  # noqa: E402


def _phrase(pitches: list[int], start: int) -> list[tuple[int, int, int]]:
    """Quarter notes (4 steps each) from `start`."""
    return [(p, start + 4 * i, start + 4 * i + 4) for i, p in enumerate(pitches)]


A = [60, 62, 64, 65, 67, 65, 64, 62]  # two bars of 4/4 each
B = [67, 69, 71, 72, 71, 69, 67, 65]
C = [64, 62, 60, 59, 60, 62, 64, 60]


def test_a_chorales_chords_are_found_under_its_melody_when_the_reading_plays_the_repeat_out():
    # the training melody: A B C; the score's reading: A B A B C (the repeat played out), with a chord a bar
    ours = Melody.from_notes(_phrase(A + B + C, 0), num_steps=96)
    played = A + B + A + B + C
    labels = ["C:maj", "G:7", "F:maj", "C:maj", "C:maj", "D:min", "F:maj", "G:maj", "A:min", "E:min"]
    bars = tuple((16 * i, label) for i, label in enumerate(labels))
    reading = Melody.from_notes(_phrase(played, 0), num_steps=160, chords=bars)
    # the longest run from the melody's first step is the repeat's A B C (the reading's steps 64-159): its chords,
    # moved 64 steps earlier
    expected = ((0, "C:maj"), (16, "D:min"), (32, "F:maj"), (48, "G:maj"), (64, "A:min"), (80, "E:min"))
    assert aligned_chords(ours, [reading]) == expected
    # a reading without the repeat's chords under C: the first A B's chords, then C's
    first_pass = Melody.from_notes(_phrase(A + B + C, 0), num_steps=96, chords=bars[:4] + ((64, "A:min"),))
    assert aligned_chords(ours, [reading.transpose(2), first_pass]) == bars[:4] + ((64, "A:min"),)


def test_a_melody_not_in_the_chorale_gets_no_chords_from_it():
    ours = Melody.from_notes(_phrase([72, 74, 76, 77] * 4, 0), num_steps=64)
    reading = Melody.from_notes(_phrase(A + B, 0), num_steps=64, chords=((0, "C:maj"), (32, "G:maj")))
    assert aligned_chords(ours, [reading]) is None
    # pieces shorter than a bar (16 steps) do not count as found
    tokens = melody_to_tokens(Melody.from_notes(_phrase(A, 0), num_steps=32)).astype(np.int32)
    shuffled = np.concatenate([tokens[8:16], tokens[:8], tokens[24:], tokens[16:24]])
    assert _pieces(shuffled, tokens) is None
    assert _pieces(tokens, tokens) == [(0, 0, tokens.size)]


def test_withheld_files_are_chosen_by_a_stable_hash_in_the_share_asked_for():
    paths = [f"midi/oneill/tune_{i}.mid" for i in range(4000)]
    chosen = [withheld(p, 0.2) for p in paths]
    assert chosen == [withheld(p, 0.2) for p in paths]
    assert 0.17 < np.mean(chosen) < 0.23
    assert not any(withheld(p, 0.0) for p in paths) and all(withheld(p, 1.0) for p in paths)


@pytest.mark.parametrize("seed", [0, 1])
def test_batched_folk_labels_equal_harmonize_one_melody_at_a_time(seed):
    rng = np.random.default_rng(seed)
    melodies = []
    for bars in (4, 4, 6, 3):  # two of the same length share a batch
        pitches = (60 + rng.choice([0, 2, 4, 5, 7, 9, 11, 12], 4 * bars)).tolist()
        melodies.append(Melody.from_notes(_phrase(pitches, 0), num_steps=16 * bars))
    harmonizer = load_harmonizer()
    expected = [harmonize(m, harmonizer, per=FOLK_PER, vocabulary=list(FOLK_VOCABULARY)).chords for m in melodies]
    assert harmonize_all(melodies, harmonizer) == expected
