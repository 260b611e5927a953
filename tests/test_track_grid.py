"""track_grid: the compiled loops give numpy's floats to the last bit — its pairwise sums, its stable sort, its
reading of a track whose notes are out of order — and the grid for two tracks."""

from __future__ import annotations

import numpy as np
import pytest

from melodyrnn.track_grid import (
    FEATURES,
    _line_features,
    _pairwise_sum,
    _stable_order,
    grid_features,
    overlap_share,
)


@pytest.mark.parametrize("size", [1, 2, 7, 8, 9, 15, 16, 17, 127, 128, 129, 130, 255, 256, 257, 600, 1031])
def test_pairwise_sum_adds_as_numpy_does(size):
    rng = np.random.default_rng(size)
    shares = rng.random(size) * 10.0 ** rng.integers(-8, 3, size)
    logs = np.log2(rng.random(size))
    assert _pairwise_sum(shares, logs) == (shares * logs).sum()


def test_stable_order_keeps_equal_keys_in_index_order():
    rng = np.random.default_rng(0)
    for size in (0, 1, 2, 3, 10, 33, 500):
        keys = rng.integers(0, 5, size).astype(np.int64)
        assert _stable_order(keys).tolist() == np.argsort(keys, kind="stable").tolist()


def _numpy_line(pitches: np.ndarray, onsets: np.ndarray) -> tuple[float, list[int]]:
    """The share of chord onsets and the top line as numpy reads them: distinct onsets with their first note
    (np.unique), each line note the max from that note to the next onset's first (np.maximum.reduceat)."""
    steps, first = np.unique(onsets, return_index=True)
    per_onset = np.concatenate([first[1:], [onsets.size]]) - first
    return np.count_nonzero(per_onset >= 2) / steps.size, np.maximum.reduceat(pitches, first).tolist()


@pytest.mark.parametrize("seed", range(20))
def test_a_track_out_of_order_is_read_as_numpy_reads_it(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(2, 40))
    onsets = rng.integers(0, 12, size).astype(np.int64)  # unsorted, with repeats
    pitches = rng.integers(40, 80, size).astype(np.int64)
    row, shares = np.zeros(len(FEATURES)), np.empty(size)
    _line_features(pitches, onsets, row, shares)
    chord_share, line = _numpy_line(pitches, onsets)
    assert row[FEATURES.index("chord_onsets")] == chord_share
    moves = np.abs(np.diff(line))
    stepwise = np.count_nonzero((moves >= 1) & (moves <= 2)) / max(1, np.count_nonzero(moves)) if moves.size else 0.0
    assert row[FEATURES.index("stepwise")] == stepwise


def test_grid_features_of_a_tune_over_a_held_chord():
    # Track 0: a stepwise tune of quarter notes; track 1: one C major triad held under it (three notes at once).
    tune = np.array([72, 74, 76, 77, 79, 77, 76, 74], np.int64)
    pitches = np.concatenate([tune, [60, 64, 67]])
    starts = np.concatenate([np.arange(8.0), [0.0, 0.0, 0.0]])
    ends = np.concatenate([np.arange(1.0, 9.0), [8.0, 8.0, 8.0]])
    values = grid_features(pitches, starts, ends, np.array([0, 8, 11], np.int64))
    tune_row, chord_row = (dict(zip(FEATURES, row)) for row in values.tolist())
    assert tune_row["chord_onsets"] == 0.0 and chord_row["chord_onsets"] == 1.0
    assert tune_row["stepwise"] == 1.0 and tune_row["on_top"] == 1.0 and chord_row["at_bottom"] == 1.0
    assert chord_row["sounding_polyphony"] == 1.0 and tune_row["sounding_polyphony"] == 0.0
    assert tune_row["busiest_line"] == 1.0 and tune_row["rhythm_variety"] == 0.0  # one gap length: no entropy


def test_overlap_share_counts_the_first_tracks_steps_the_second_sounds_in():
    # The first track sounds for 4 quarters (16 steps); the second joins for its last quarter (4 steps).
    pitches = np.array([60, 64], np.int64)
    assert overlap_share(pitches, np.array([0.0, 3.0]), np.array([4.0, 6.0]), 1) == 4 / 16
