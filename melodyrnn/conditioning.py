"""What a meter- or chord-aware model sees beside the events: per-step ids of the bar position, metrical level,
meter, chord and distance to the next chord change, computed with numpy from a melody's time signatures and chords.

Start at `step_conditions` (one melody → int32 `(steps, NUM_FIELDS)`); `FIELDS` names the columns. Training windows
(melodyrnn.dataset) and the sampler's compiled loop (melodyrnn.decoding) both read these arrays, so the model sees
the same features in both; the model's `ConditionEmbedding` (melodyrnn.model) turns them into vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from melodyrnn.chords import QUALITY_TONES, arrays_to_chords, parse_label

if TYPE_CHECKING:
    from melodyrnn.dataset import PreparedData

__all__ = [
    "CHANGE",
    "CHORD",
    "FIELDS",
    "LEVEL",
    "MAX_CHANGE",
    "MAX_POSITION",
    "METER",
    "METERS",
    "melody_conditions",
    "NUM_CHORD_IDS",
    "NUM_FIELDS",
    "NUM_LEVELS",
    "NUM_METERS",
    "POSITION",
    "QUALITIES",
    "beat_quarters",
    "chord_id",
    "chord_tone_table",
    "four_four_levels",
    "step_conditions",
    "prepared_conditions",
    "transpose_chord_ids",
    "transpose_conditions",
]

#: The columns of a conditions array, in order.
FIELDS = ("position", "level", "meter", "chord", "change")
POSITION, LEVEL, METER, CHORD, CHANGE = range(len(FIELDS))
NUM_FIELDS = len(FIELDS)
#: Positions in the bar (in steps from the bar line) get their own id up to this; later ones share the last.
MAX_POSITION = 64
#: Metrical levels: 0 the downbeat, 1 the middle of a bar of an even number of beats (beat 3 of 4/4), 2 a beat,
#: 3 half a beat (a third of a compound beat: the eighths of 6/8), 4 a quarter of a beat (a sixth), 5 finer.
NUM_LEVELS = 6
#: Meters with an id of their own (id = index + 1); any other meter is id 0. Appending keeps old ids valid.
METERS = (
    (4, 4), (3, 4), (2, 4), (6, 8), (2, 2), (3, 8), (9, 8), (12, 8), (6, 4), (3, 2), (5, 4), (7, 8), (5, 8),
    (9, 4), (12, 4), (4, 2), (7, 4), (4, 8), (6, 16), (12, 16),
)  # fmt: skip
NUM_METERS = len(METERS) + 1
#: Chord qualities in id order (`chord_id`): `melodyrnn.chords.QUALITY_TONES`'s, so every parsed label has an id.
QUALITIES = tuple(QUALITY_TONES)
#: Chord ids: 0 is "no chord" (N, or no chords known), then one per root and quality.
NUM_CHORD_IDS = 1 + 12 * len(QUALITIES)
#: Distances to the next chord change are clipped here (steps); "no change ahead" is this too.
MAX_CHANGE = 64

_METER_IDS = {meter: i + 1 for i, meter in enumerate(METERS)}
_QUALITY_IDS = {quality: i for i, quality in enumerate(QUALITIES)}


def beat_quarters(numerator: int, denominator: int) -> float:
    """The beat of a meter in quarter notes: a dotted note in compound meters (6/8, 9/8, 12/8, 6/16), else the
    denominator's note (3/4 beats in quarters, 2/2 in halves)."""
    unit = 4.0 / denominator
    return 3 * unit if denominator >= 8 and numerator % 3 == 0 and numerator > 3 else unit


def chord_id(label: str) -> int:
    """The id of a Harte label: 0 for ``N``, else ``1 + 12 * quality index + root`` (the bass is not kept).

    Raises:
        ChordLabelError: a bad label.
    """
    chord = parse_label(label)
    return 0 if chord is None else 1 + 12 * _QUALITY_IDS[chord.quality] + chord.root


def transpose_chord_ids(ids, semitones):
    """Chord ids moved by `semitones` (roots only; 0 stays 0). Integer arithmetic only, so it works alike on numpy
    arrays and on TensorFlow tensors: int `(...)` → the same shape."""
    index = ids - 1
    moved = 1 + (index // 12) * 12 + (index % 12 + semitones) % 12
    return moved * ((ids + NUM_CHORD_IDS - 1) // NUM_CHORD_IDS)  # times 0 for id 0 (no chord), 1 for the others


def chord_tone_table() -> np.ndarray:
    """float32 `(NUM_CHORD_IDS, 12)`: 1 at each pitch class of the chord of that id (row 0, no chord, is zeros)."""
    table = np.zeros((NUM_CHORD_IDS, 12), np.float32)
    for q, quality in enumerate(QUALITIES):
        for root in range(12):
            table[1 + 12 * q + root, [(root + i) % 12 for i in QUALITY_TONES[quality]]] = 1.0
    return table


def _levels(positions: np.ndarray, steps_per_quarter: float, numerator: int, denominator: int) -> np.ndarray:
    """int `(n,)` metrical level (see `NUM_LEVELS`) of positions in the bar, in steps."""
    quarters = beat_quarters(numerator, denominator)
    beat = quarters * steps_per_quarter  # steps, maybe fractional
    compound = quarters != 4.0 / denominator
    beats_per_bar = numerator // 3 if compound else numerator
    divisions = (3, 6) if compound else (2, 4)

    def on(unit: float) -> np.ndarray:
        ratio = positions / unit
        return np.abs(ratio - np.round(ratio)) < 1e-6

    level = np.full(positions.shape, NUM_LEVELS - 1, np.int32)
    for value, unit in ((4, beat / divisions[1]), (3, beat / divisions[0]), (2, beat)):
        level[on(unit)] = value
    if beats_per_bar >= 4 and beats_per_bar % 2 == 0:
        level[on(beat * beats_per_bar / 2)] = 1
    level[positions == 0] = 0
    return level


def melody_conditions(melody) -> np.ndarray:
    """`step_conditions` of a `Melody`: every step's conditions under its own meters and chords."""
    return step_conditions(len(melody), melody.steps_per_quarter, melody.time_signatures, melody.chords)


def step_conditions(
    num_steps: int,
    steps_per_quarter: int,
    time_signatures: Sequence[tuple[int, int, int]] = ((0, 4, 4),),
    chords: Sequence[tuple[int, str]] = (),
) -> np.ndarray:
    """The conditions of every step of a melody (or of a melody to be generated).

    Bar lines fall at step 0, at every time-signature change and every (rounded) bar after it.

    Args:
        num_steps: steps.
        steps_per_quarter: the grid.
        time_signatures: ``(step, numerator, denominator)``, the first at step 0 (a `Melody`'s).
        chords: ``(step, Harte label)`` changes, rising (a `Melody`'s); before the first, and without any, no chord.

    Returns:
        int32 `(num_steps, NUM_FIELDS)`, columns `FIELDS`: the step's position in its bar (steps, clipped to
        `MAX_POSITION - 1`), its metrical level, its meter's id (`METERS`), the chord sounding at it (`chord_id`),
        and the steps from it to the next chord change after it (clipped to `MAX_CHANGE`, which also means none).

    Raises:
        ChordLabelError: a bad chord label.
    """
    out = np.zeros((num_steps, NUM_FIELDS), np.int32)
    steps = np.arange(num_steps)
    starts = [int(s) for s, _, _ in time_signatures] + [num_steps]
    for (start, numerator, denominator), end in zip(time_signatures, starts[1:]):
        if end <= start:
            continue
        bar = max(1, round(steps_per_quarter * 4 * numerator / denominator))
        position = (steps[start:end] - start) % bar
        out[start:end, POSITION] = np.minimum(position, MAX_POSITION - 1)
        out[start:end, LEVEL] = _levels(position, steps_per_quarter, numerator, denominator)
        out[start:end, METER] = _METER_IDS.get((int(numerator), int(denominator)), 0)
    change_steps = np.array([int(s) for s, _ in chords], np.int64)
    if change_steps.size:
        ids = np.array([chord_id(label) for _, label in chords], np.int32)
        which = np.searchsorted(change_steps, steps, side="right") - 1  # the change in force, -1 before the first
        out[:, CHORD] = np.where(which >= 0, ids[np.maximum(which, 0)], 0)
        following = np.append(change_steps, np.iinfo(np.int64).max)[which + 1]
        out[:, CHANGE] = np.minimum(following - steps, MAX_CHANGE)
    else:
        out[:, CHANGE] = MAX_CHANGE
    return out


def four_four_levels(steps_per_bar: int) -> np.ndarray:
    """int32 `(steps_per_bar,)`: the metrical levels of a 4/4 bar of `steps_per_bar` steps, for a model called
    on plain ids (no conditions given), which counts bars of its `ModelConfig.steps_per_bar`."""
    return _levels(np.arange(steps_per_bar), steps_per_bar / 4, 4, 4)


def prepared_conditions(data: PreparedData, padding: int = 0) -> np.ndarray:
    """`step_conditions` of every melody of a prepared-data cache (its first meter, its chords), concatenated
    like its tokens, then `padding` rows of zeros: int32 `(total_steps + padding, NUM_FIELDS)`."""
    parts = [
        step_conditions(
            int(data.lengths[i]),
            data.config.steps_per_quarter,
            ((0, int(data.numerator[i]), int(data.denominator[i])),),
            arrays_to_chords(data.chord_offsets, data.chord_steps, data.chord_ids, data.chord_labels, i),
        )
        for i in range(data.num_melodies)
    ]
    return np.concatenate(parts + [np.zeros((padding, NUM_FIELDS), np.int32)])


def transpose_conditions(conditions, semitones):
    """`conditions` int `(..., NUM_FIELDS)` with their chords moved by `semitones`; numpy or TensorFlow alike."""
    chord = conditions[..., CHORD]
    column = np.eye(NUM_FIELDS, dtype=np.int32)[CHORD]  # adds the change to the chord column only
    return conditions + (transpose_chord_ids(chord, semitones) - chord)[..., None] * column
