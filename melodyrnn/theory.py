"""The few facts of music the rest of melodyrnn shares: meters, pitch names, keys and scales.

Each fact has its one home here: what a usable time signature is (`check_time_signature`), how long a bar is
(`steps_per_bar`), the twelve pitch-class names, note names ("C4" ↔ 60) and keys/scales (`parse_key`,
`key_pitch_classes`). This module depends on nothing but numpy and `errors`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from melodyrnn.configs import is_int
from melodyrnn.errors import MelodyRNNError

__all__ = [
    "DENOMINATORS",
    "MAX_NUMERATOR",
    "PITCH_CLASS_NAMES",
    "KEY_TONIC_NAMES",
    "SCALES",
    "is_usable_time_signature",
    "check_time_signature",
    "steps_per_bar",
    "check_steps_per_bar",
    "note_name_to_pitch",
    "pitch_to_note_name",
    "parse_key",
    "key_pitch_classes",
]

# ------------------------------------------------------------------------------------------------------------
# Meter

#: Time-signature denominators melodyrnn reads, writes and generates: powers of two up to a 64th note.
DENOMINATORS = (1, 2, 4, 8, 16, 32, 64)
#: The largest time-signature numerator: beyond it a "bar" is a data error, not a meter.
MAX_NUMERATOR = 64


def is_usable_time_signature(numerator: Any, denominator: Any) -> bool:
    """Whether ``numerator/denominator`` is a meter melodyrnn can lay bar lines on.

    A numerator of 0 would make bars of zero steps (bar-line loops would never advance); absurd denominators
    (MIDI can store up to 2**255) would make bars of almost nothing. Files with such meters are repaired on
    reading, and such meters are refused everywhere else.
    """
    return is_int(numerator) and 1 <= numerator <= MAX_NUMERATOR and is_int(denominator) and denominator in DENOMINATORS


def check_time_signature(value: Any, name: str = "time_signature") -> tuple[int, int]:
    """A time signature from ``(numerator, denominator)`` or a string like ``"6/8"``.

    Returns:
        ``(numerator, denominator)`` as ints.

    Raises:
        MelodyRNNError: malformed, or not usable (see `is_usable_time_signature`).
    """
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
        if m is None:
            raise MelodyRNNError(f"`{name}` must look like '3/4', got {value!r}")
        value = (int(m.group(1)), int(m.group(2)))
    try:
        numerator, denominator = value
    except (TypeError, ValueError):
        raise MelodyRNNError(f"`{name}` must be (numerator, denominator) or '3/4', got {value!r}") from None
    if not is_usable_time_signature(numerator, denominator):
        raise MelodyRNNError(
            f"`{name}` must have a numerator in [1, {MAX_NUMERATOR}] and a power-of-two "
            f"denominator up to {DENOMINATORS[-1]}, got {numerator}/{denominator}"
        )
    return int(numerator), int(denominator)


def steps_per_bar(steps_per_quarter: int | float, numerator: Any, denominator: Any) -> Any:
    """Steps in one bar of ``numerator/denominator`` on a grid of `steps_per_quarter`.

    Works elementwise on numpy arrays of numerators and denominators too; the result is float (6/8 at 3 steps
    per quarter is 4.5 steps).
    """
    return steps_per_quarter * 4.0 * numerator / denominator


def check_steps_per_bar(values: Any, max_steps_per_bar: int) -> np.ndarray:
    """Bar lengths as a model with bar inputs takes them.

    Args:
        values: int, or int array of any shape, steps per bar.
        max_steps_per_bar: the model's `ModelConfig.max_steps_per_bar`.

    Returns:
        int32 array of `values`' shape.

    Raises:
        MelodyRNNError: a value that is not a whole number in `[1, max_steps_per_bar]`.
    """
    array = np.asarray(values)
    bad = array[(array < 1) | (array > max_steps_per_bar) | (array != np.round(array))]
    if bad.size:
        raise MelodyRNNError(
            f"steps per bar must be whole numbers in [1, max_steps_per_bar={max_steps_per_bar}] "
            f"(a longer bar needs a model with a larger `max_steps_per_bar`), got "
            f"{', '.join(f'{v:g}' for v in sorted(set(bad.tolist())))}"
        )
    return array.astype(np.int32)


# ------------------------------------------------------------------------------------------------------------
# Pitch names

#: Pitch class → name with sharps, as in note names ("C#4").
PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
#: Pitch class → the name a key on that tonic usually goes by (Eb major rather than D# major).
KEY_TONIC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_LETTER_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTAL = {"#": 1, "♯": 1, "b": -1, "♭": -1}
_NOTE_NAME = re.compile(r"^([A-Ga-g])([#b♯♭]*)(-?\d+)$")


def note_name_to_pitch(name: str) -> int:
    """ "C4" → 60 (scientific pitch notation: C4 is middle C); accepts sharps (#) and flats (b).

    Raises:
        MelodyRNNError: the name is malformed or outside MIDI's 0-127.
    """
    m = _NOTE_NAME.match(name.strip()) if isinstance(name, str) else None
    if m is None:
        raise MelodyRNNError(
            f"unknown note name {name!r}: expected a letter A-G, optional #/b, and an octave, like 'C4' or 'D#5'"
        )
    letter, accidentals, octave = m.groups()
    pitch = 12 * (int(octave) + 1) + _LETTER_PITCH_CLASS[letter.upper()] + sum(_ACCIDENTAL[a] for a in accidentals)
    if not 0 <= pitch <= 127:
        raise MelodyRNNError(f"note {name!r} is outside MIDI's range 0-127")
    return pitch


def pitch_to_note_name(pitch: int) -> str:
    """60 → "C4"."""
    return f"{PITCH_CLASS_NAMES[pitch % 12]}{pitch // 12 - 1}"


# ------------------------------------------------------------------------------------------------------------
# Keys and scales

#: Scale name → semitones above the tonic.
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "melodic minor": (0, 2, 3, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "pentatonic major": (0, 2, 4, 7, 9),
    "pentatonic minor": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "chromatic": tuple(range(12)),
}
_SCALE_ALIASES = {
    "ionian": "major",
    "aeolian": "minor",
    "natural minor": "minor",
    "maj": "major",
    "min": "minor",
    "major pentatonic": "pentatonic major",
    "minor pentatonic": "pentatonic minor",
    "pentatonic": "pentatonic major",
}
_TONIC = re.compile(r"^([A-Ga-g])([#b♯♭]?)$")


def parse_key(key: str) -> tuple[int, str]:
    """Parses a key such as "D minor", "F# dorian", "Bb major", "A blues" or "C" (major).

    Args:
        key: a tonic (a letter A-G with an optional # or b) and an optional scale name from `SCALES`
            ("harmonic minor", "pentatonic minor", ...; case, "-" and "_" do not matter).

    Returns:
        `(tonic_pitch_class, scale_name)`, e.g. `(2, "minor")`.

    Raises:
        MelodyRNNError: not a string, an unknown tonic, or an unknown scale.
    """
    if not isinstance(key, str) or not key.strip():
        raise MelodyRNNError(f"`key` must be a string like 'D minor', got {key!r}")
    tonic, _, scale = key.strip().partition(" ")
    m = _TONIC.match(tonic)
    if m is None:
        raise MelodyRNNError(
            f"unknown tonic {tonic!r} in `key` {key!r}: expected a letter A-G with an optional "
            "# or b, like 'D minor' or 'Bb major'"
        )
    letter, accidental = m.groups()
    pitch_class = (_LETTER_PITCH_CLASS[letter.upper()] + _ACCIDENTAL.get(accidental, 0)) % 12
    scale = " ".join(scale.lower().replace("-", " ").replace("_", " ").split()) or "major"
    scale = _SCALE_ALIASES.get(scale, scale)
    if scale not in SCALES:
        raise MelodyRNNError(f"unknown scale {scale!r} in `key` {key!r}; known scales: {', '.join(SCALES)}")
    return pitch_class, scale


def key_pitch_classes(key: str) -> frozenset[int]:
    """The pitch classes (0 = C) of a key's scale, e.g. "D minor" → {2, 4, 5, 7, 9, 10, 0}.

    Raises:
        MelodyRNNError: as `parse_key`.
    """
    tonic, scale = parse_key(key)
    return frozenset((tonic + step) % 12 for step in SCALES[scale])
