"""chord_search: the compiled numeric half of chord recognition, against plain readings of the same notes."""

from __future__ import annotations

import itertools

import numpy as np
from conftest import midi_bytes, note_track, scale_notes

from melodyrnn.chord_search import (
    _distinct,
    _frame_counts,
    _marked_counts,
    _swept_counts,
    batch_frames,
    best_paths,
    frame_bounds,
)
from melodyrnn.chords import score_to_chords
from melodyrnn.midi_io import read_midi


def _plain_counts(pitches, first, last, cuts, num_samples):
    """Frame counts sample by sample: which pitch classes sound, and the lowest pitch's class."""
    sounding = np.zeros((num_samples, 12), bool)
    lowest = np.full(num_samples, 128)
    for pitch, a, b in zip(pitches, first, last):
        sounding[a:b, pitch % 12] = True
        lowest[a:b] = np.minimum(lowest[a:b], pitch)
    per_sample = np.zeros((num_samples + 1, 24), np.int64)
    per_sample[:-1, :12] = sounding
    heard = np.flatnonzero(lowest < 128)
    per_sample[heard, 12 + lowest[heard] % 12] = 1
    before = np.concatenate([np.zeros((1, 24), np.int64), np.cumsum(per_sample, axis=0)])
    return before[cuts[1:]] - before[cuts[:-1]]


def test_frame_counts_by_marking_and_by_sweeping_match_a_plain_reading():
    rng = np.random.default_rng(5)
    for trial in range(40):
        num_samples = int(rng.integers(1, 300))
        count = int(rng.integers(0, 60))
        pitches = rng.integers(-3 if trial % 5 == 0 else 0, 131 if trial % 7 == 0 else 128, count)
        first = rng.integers(0, num_samples + 1, count)
        longest = num_samples if trial % 2 else 6  # long notes by the dozen, or short ones
        last = np.clip(first + rng.integers(-1, longest + 1, count), 0, num_samples)  # some end as they start
        cuts = np.unique(np.concatenate([[0, num_samples], rng.integers(0, num_samples + 1, 12)]))
        expected = _plain_counts(pitches, first, last, cuts, num_samples)
        np.testing.assert_array_equal(_marked_counts(pitches, first, last, cuts, num_samples), expected)
        np.testing.assert_array_equal(_swept_counts(pitches, first, last, cuts, num_samples), expected)
        shuffled = rng.permutation(cuts)  # time signatures out of order: differences of running counts all the same
        expected = _plain_counts(pitches, first, last, shuffled, num_samples)
        np.testing.assert_array_equal(_swept_counts(pitches, first, last, shuffled, num_samples), expected)


def test_frame_counts_read_each_frame_by_sample_centres():
    # Sixteenth samples centred at 0.125, 0.375, ...: a note from 0.2 to 1.2 sounds in samples 1-3 (quarter 0)
    # and 4 (quarter 1); C below it from 1.0 on takes the bass from sample 4.
    counts = _frame_counts(np.array([64, 60]), np.array([0.2, 1.0]), np.array([1.2, 2.0]), np.array([0.0, 1.0, 2.0]))
    assert counts[0, 4] == 3 and counts[0, 16] == 3 and counts[1, 4] == 1 and counts[1, 0] == 4
    assert counts[1, 12] == 4 and counts[1, 16] == 0


def test_frame_bounds_beat_by_the_meter():
    four = frame_bounds(np.array([0.0]), np.array([4]), np.array([4]), 3.5)
    np.testing.assert_array_equal(four, [0.0, 1.0, 2.0, 3.0, 3.5])
    # 6/8 beats in dotted quarters, then 3/16 grouped into a frame of three sixteenths (0.75 quarters).
    mixed = frame_bounds(np.array([0.0, 3.0]), np.array([6, 3]), np.array([8, 16]), 4.5)
    np.testing.assert_array_equal(mixed, [0.0, 1.5, 3.0, 3.75, 4.5])
    # No time signature: one frame from 0 to the end.
    np.testing.assert_array_equal(frame_bounds(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), 2.0), [0, 2])


def test_distinct_rows_and_their_inverse_rebuild_the_rows():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 3, (200, 24)) * (rng.random((200, 1)) < 0.5)
    firsts = np.sort(rng.choice(200, 120, replace=False))
    rows, inverse = _distinct(frames, firsts)
    np.testing.assert_array_equal(frames[rows][inverse], frames[firsts])
    assert len({tuple(r) for r in frames[rows]}) == len(rows) == len({tuple(r) for r in frames[firsts]})


def _best_by_enumeration(weighted, penalty):
    """The best path's total by trying every path."""
    steps, states = weighted.shape
    best = -np.inf
    for path in itertools.product(range(states), repeat=steps):
        total = sum(weighted[t, s] for t, s in enumerate(path)) - penalty * sum(a != b for a, b in zip(path, path[1:]))
        best = max(best, total)
    return best


def test_best_paths_are_best_and_break_ties_towards_the_first_state():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, (6, 3)).astype(np.float64) / 4  # quarters: many exact ties
    runs = np.array([[0, rng.integers(1, 3), rng.integers(0, 6)] for _ in range(13)], np.int64)
    offsets = np.array([0, 5, 5, 9, 13])
    paths = best_paths(scores, runs, offsets, np.array([True, True, True, False]), 0.25)
    for lo, hi in [(0, 5), (5, 9)]:  # the second sequence has no runs
        weighted = scores[runs[lo:hi, 2]] * runs[lo:hi, 1:2]
        path = paths[lo:hi]
        total = weighted[np.arange(hi - lo), path].sum() - 0.25 * np.count_nonzero(np.diff(path))
        assert np.isclose(total, _best_by_enumeration(weighted, 0.25))
    assert not paths[9:].any()  # not asked for
    # Equal totals everywhere: the first state, all through.
    assert (
        best_paths(np.zeros((1, 4)), np.array([[0, 1, 0]] * 3), np.array([0, 3]), np.array([True]), 0.25).tolist()
        == [0] * 3
    )


def test_batch_frames_keeps_each_score_to_its_own_slices():
    pitches = np.array([60, 64, 67, 62])
    starts, ends = np.array([0.0, 0.0, 0.0, 0.0]), np.array([2.0, 2.0, 2.0, 1.0])
    bounds, runs, rows, ends_out, offsets = batch_frames(
        pitches, starts, ends, np.array([0, 3, 3, 4]), np.array([[0.0, 4, 4], [0.0, 4, 4], [0.0, 3, 4]]),
        np.array([0, 1, 2, 3]),
    )  # fmt: skip
    assert offsets[:, 1].tolist() == [3, 1, 1] and offsets[:, 2].tolist() == offsets[:, 1].tolist()  # none for score 1
    assert ends_out.tolist() == [2.0, 0.0, 1.0]
    assert runs[0].tolist() == [0, 2, 0] and rows[0, [0, 4, 7, 12]].tolist() == [4, 4, 4, 4]
    assert runs[1, 2] == 1 and rows[1, [2, 14]].tolist() == [4, 4]


def test_a_chord_held_in_many_octaves_all_through_reads_as_that_chord():
    # Fifteen notes sounding the whole piece: marking each of their samples would cost more than sweeping once.
    held = [(octave * 12 + pc, 0.0, 64.0) for octave in range(3, 8) for pc in (0, 4, 7)]
    score = read_midi(midi_bytes([note_track(scale_notes(16)), note_track(held, channel=1)]))
    assert score_to_chords(score, exclude=[0]) == ((0.0, "C:maj"), (64.0, "N"))
