"""Musical metrics: histograms and their distance, key estimation, repeats, density, motifs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from melodyrnn.encoding import Melody
from melodyrnn.errors import MelodyRNNError
from melodyrnn.metrics import (
    estimate_key,
    format_metrics,
    histogram_distance,
    in_key_ratio,
    interval_histogram,
    longest_repeated_motif,
    musical_metrics,
    note_density,
    pitch_class_histogram,
    repeated_note_ratio,
)


def melody(pitches, step=4, **metadata) -> Melody:
    """One note per `step` steps (a quarter note at 4 steps per quarter)."""
    return Melody.from_notes([(p, i * step, (i + 1) * step) for i, p in enumerate(pitches)], **metadata)


C_MAJOR_TUNE = [60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72, 67, 64, 60, 60]
A_MINOR_TUNE = [69, 72, 76, 69, 71, 72, 74, 76, 77, 76, 74, 72, 71, 69, 68, 69, 64, 69]


# -- histograms ------------------------------------------------------------------------------------------------------


def test_pitch_class_histogram():
    hist = pitch_class_histogram([melody([60, 72, 64]), melody([67])])
    assert hist.shape == (12,) and hist.sum() == pytest.approx(1.0)
    assert hist[0] == pytest.approx(0.5) and hist[4] == pytest.approx(0.25) and hist[7] == pytest.approx(0.25)
    assert pitch_class_histogram([]).sum() == 0


def test_interval_histogram():
    hist = interval_histogram(melody([60, 62, 60, 60, 80]))  # +2, -2, 0, +20 clipped to +12
    assert hist.shape == (25,)
    assert hist[12 + 2] == hist[12 - 2] == hist[12] == hist[24] == pytest.approx(0.25)


def test_histogram_distance():
    p = [1, 0, 0, 1]
    assert histogram_distance(p, p) == pytest.approx(0.0)
    assert histogram_distance([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: 1 bit
    assert histogram_distance([1, 0], [0, 1], kind="total_variation") == pytest.approx(1.0)
    assert histogram_distance([3, 1], [1, 1], kind="total_variation") == pytest.approx(0.25)
    assert 0 < histogram_distance([3, 1], [1, 3]) < 1
    with pytest.raises(MelodyRNNError, match="same length"):
        histogram_distance([1, 2], [1, 2, 3])
    with pytest.raises(MelodyRNNError, match="not all zero"):
        histogram_distance([0, 0], [1, 2])
    with pytest.raises(MelodyRNNError, match="`kind` must be"):
        histogram_distance([1, 2], [1, 2], kind="cosine")


# -- key, repeats, density, motifs -------------------------------------------------------------------------------------


def test_estimate_key():
    assert estimate_key(melody(C_MAJOR_TUNE))[0] == "C major"
    assert estimate_key(melody(A_MINOR_TUNE))[0] == "A minor"
    transposed = melody(C_MAJOR_TUNE).transpose(2)
    assert estimate_key(transposed)[0] == "D major"
    key, r = estimate_key(melody([p - 7 for p in A_MINOR_TUNE]))
    assert key == "D minor" and 0.5 < r <= 1.0
    assert estimate_key([]) == ("unknown", 0.0)


def test_in_key_ratio():
    assert in_key_ratio(melody(C_MAJOR_TUNE)) == 1.0
    assert in_key_ratio(melody([60, 62, 64, 66]), key="C major") == 0.75
    assert in_key_ratio(melody([60, 62, 64, 66]), key="Bb major") == 0.5  # C, D in; E, F# out
    assert in_key_ratio([]) == 0.0


def test_repeated_note_ratio():
    assert repeated_note_ratio(melody([60, 60, 60, 60, 62]), max_repeats=2) == pytest.approx(1 / 5)
    assert repeated_note_ratio(melody([60, 60, 60, 60, 62]), max_repeats=0) == pytest.approx(3 / 5)
    assert repeated_note_ratio(melody([60, 62, 60, 62])) == 0.0
    # rests do not break a run
    with_rests = Melody.from_notes([(60, 0, 2), (60, 4, 6), (60, 8, 10), (60, 12, 14)])
    assert repeated_note_ratio(with_rests, max_repeats=1) == pytest.approx(2 / 4)


def test_note_density():
    assert note_density(melody(range(60, 68))) == pytest.approx(4.0)  # 8 quarters in 2 bars of 4/4
    three_four = melody(range(60, 66), time_signatures=((0, 3, 4),))
    assert note_density(three_four) == pytest.approx(3.0)
    assert note_density([melody([60] * 4, step=16), melody(range(60, 68))]) == pytest.approx(12 / 6)


def test_longest_repeated_motif():
    # intervals +2 +2 -4 | +5 | +2 +2 -4: the motif repeats a fourth higher
    assert longest_repeated_motif(melody([60, 62, 64, 60, 65, 67, 69, 65])) == 3
    # overlapping occurrences do not count: four equal intervals hold only two non-overlapping pairs
    assert longest_repeated_motif(melody([60] * 5)) == 2
    assert longest_repeated_motif(melody([60, 61, 63, 66, 70])) == 0
    assert longest_repeated_motif(melody([])) == 0


# -- all together ----------------------------------------------------------------------------------------------------


def test_musical_metrics_and_reference():
    generated = [melody(C_MAJOR_TUNE), melody([60, 60, 60, 60, 67, 64])]
    metrics = musical_metrics(generated, reference=[melody(A_MINOR_TUNE)])
    json.dumps(metrics)  # JSON-ready
    assert metrics["num_melodies"] == 2 and metrics["num_notes"] == 22
    assert metrics["pitch_range"] == ["C4", "C5"]
    assert metrics["key_estimate"] == "C major" and metrics["reference_key_estimate"] == "A minor"
    assert metrics["in_key_ratio"] == 1.0
    assert metrics["repeated_note_ratio"] == pytest.approx(1 / 22)
    assert len(metrics["pitch_class_histogram"]) == 12 and len(metrics["interval_histogram"]) == 25
    assert 0 < metrics["pitch_class_js_divergence"] < 1 and 0 < metrics["interval_js_divergence"] < 1
    same = musical_metrics(generated, reference=generated)
    assert same["pitch_class_js_divergence"] == pytest.approx(0.0, abs=1e-12)
    text = format_metrics(metrics)
    assert "key estimate: C major" in text and "JS divergence" in text


def test_musical_metrics_of_nothing():
    metrics = musical_metrics([melody([])])
    assert metrics["num_notes"] == 0 and metrics["pitch_range"] is None and metrics["key_estimate"] == "unknown"
    assert "range: none" in format_metrics(metrics)
    with pytest.raises(MelodyRNNError, match="expected Melody objects"):
        musical_metrics([[60, 62]])


def test_metrics_module_does_not_import_tensorflow():
    code = "import sys, melodyrnn.metrics; sys.exit(1 if 'tensorflow' in sys.modules or 'keras' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
