"""theory: the one home of meters, pitch names, keys and scales."""

from __future__ import annotations

import numpy as np
import pytest

from melodyrnn.errors import MelodyRNNError
from melodyrnn.theory import (
    SCALES,
    check_steps_per_bar,
    check_time_signature,
    is_usable_time_signature,
    key_pitch_classes,
    note_name_to_pitch,
    parse_key,
    pitch_to_note_name,
    steps_per_bar,
)

# -- meters ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected", [("6/8", (6, 8)), (" 3 / 4 ", (3, 4)), ((2, 2), (2, 2)), ((64, 64), (64, 64))]
)
def test_check_time_signature_accepts_usable_meters(value, expected):
    assert check_time_signature(value) == expected


@pytest.mark.parametrize(
    "value, match",
    [
        ("3-4", "must look like '3/4'"),
        (5, r"must be \(numerator, denominator\)"),
        ((0, 4), "numerator in \\[1, 64\\]"),
        ((3, 6), "power-of-two"),
        ((65, 4), "got 65/4"),
        ((4, 128), "got 4/128"),
        ((4, 2**255), "power-of-two"),
        ((True, 4), "numerator"),
        ((3.0, 4), "numerator"),
    ],
)
def test_check_time_signature_refuses_unusable_meters(value, match):
    with pytest.raises(MelodyRNNError, match=match):
        check_time_signature(value, "time_signature")
    if isinstance(value, tuple):
        assert not is_usable_time_signature(*value)


def test_steps_per_bar_scalar_and_elementwise():
    assert steps_per_bar(4, 4, 4) == 16.0
    assert steps_per_bar(4, 6, 8) == 12.0
    assert steps_per_bar(3, 6, 8) == 9.0
    assert steps_per_bar(4, 3, 8) == 6.0
    np.testing.assert_array_equal(steps_per_bar(4, np.array([3, 6, 2]), np.array([4, 8, 2])), [12.0, 12.0, 16.0])


def test_check_steps_per_bar():
    np.testing.assert_array_equal(check_steps_per_bar([16, 12.0], 64), np.array([16, 12], np.int32))
    assert check_steps_per_bar(16, 64).dtype == np.int32
    for bad, match in ((0, "got 0"), (65, "got 65"), (4.5, "got 4.5")):
        with pytest.raises(MelodyRNNError, match=match):
            check_steps_per_bar(bad, 64)


# -- note names ------------------------------------------------------------------------------------------------------


def test_note_names():
    assert note_name_to_pitch("C4") == 60
    assert note_name_to_pitch("D#5") == 75
    assert note_name_to_pitch("bb3") == 58
    assert note_name_to_pitch("C-1") == 0
    assert pitch_to_note_name(61) == "C#4"
    for bad in ("H4", "C", "C#x", "G#9"):
        with pytest.raises(MelodyRNNError, match="note"):
            note_name_to_pitch(bad)


# -- keys and scales -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, expected",
    [
        ("D minor", (2, "minor")),
        ("F# dorian", (6, "dorian")),
        ("Bb major", (10, "major")),
        ("A blues", (9, "blues")),
        ("C", (0, "major")),
        ("e harmonic-minor", (4, "harmonic minor")),
        ("G MIXOLYDIAN", (7, "mixolydian")),
        ("Eb pentatonic_minor", (3, "pentatonic minor")),
        ("F major pentatonic", (5, "pentatonic major")),
        ("Cb major", (11, "major")),
        ("B# chromatic", (0, "chromatic")),
    ],
)
def test_parse_key(key, expected):
    assert parse_key(key) == expected


def test_key_pitch_classes():
    assert key_pitch_classes("D minor") == {2, 4, 5, 7, 9, 10, 0}
    assert key_pitch_classes("A blues") == {9, 0, 2, 3, 4, 7}
    assert key_pitch_classes("C chromatic") == set(range(12))
    assert all(len(set(steps)) == len(steps) and steps[0] == 0 for steps in SCALES.values())


@pytest.mark.parametrize(
    "key, match",
    [
        ("H major", "unknown tonic 'H'"),
        ("D minr", "unknown scale 'minr'"),
        ("", "`key` must be a string"),
        (5, "`key` must be a string"),
        ("Dminor", "unknown tonic 'Dminor'"),
    ],
)
def test_parse_key_errors(key, match):
    with pytest.raises(MelodyRNNError, match=match):
        parse_key(key)
