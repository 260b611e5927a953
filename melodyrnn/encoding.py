"""Melodies and their ids: the `Melody` type, the event vocabulary, encode/decode, and writing one back.

Start at `Melody`, then `melody_to_tokens` / `tokens_to_melody` for the model's ids and `melody_to_midi` to
write one as MIDI; `EncodingConfig` holds the grid and the pitch range. The event encoding follows MelodyRNN's
monophonic one: per step one of NO_EVENT (hold), NOTE_OFF or NOTE_ON(pitch). Reading melodies out of a score
is `melodyrnn.extraction`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from melodyrnn.chords import QUALITY_TONES, canonical_label, parse_label, transpose_label
from melodyrnn.configs import Config, check, is_int
from melodyrnn.errors import MelodyRNNError, OutOfRangeError
from melodyrnn.midi_io import MIN_QPM, Note, Score, Track, notes_to_score, score_to_midi
from melodyrnn.theory import check_time_signature, is_usable_time_signature, steps_per_bar

#: Event values in `Melody.events`; values >= 0 are NOTE_ON(pitch).
NO_EVENT = -2
NOTE_OFF = -1
#: Token ids of the two special events; NOTE_ON(p) is ``NUM_SPECIAL + p - min_pitch``.
NO_EVENT_ID = 0
NOTE_OFF_ID = 1
NUM_SPECIAL = 2


@dataclass(frozen=True)
class EncodingConfig(Config):
    """The event vocabulary and the time grid.

    Attributes:
        steps_per_quarter: grid resolution; 4 means sixteenth notes.
        min_pitch: lowest MIDI pitch in the vocabulary.
        max_pitch: highest MIDI pitch in the vocabulary.
    """

    steps_per_quarter: int = 4
    min_pitch: int = 0
    max_pitch: int = 127

    what = "encoding config"

    def __post_init__(self):
        check(
            is_int(self.steps_per_quarter) and 1 <= self.steps_per_quarter <= 96,
            f"`steps_per_quarter` must be an integer in [1, 96], got {self.steps_per_quarter!r}",
        )
        check(
            is_int(self.min_pitch) and 0 <= self.min_pitch <= 127,
            f"`min_pitch` must be an integer in [0, 127], got {self.min_pitch!r}",
        )
        check(
            is_int(self.max_pitch) and self.min_pitch <= self.max_pitch <= 127,
            f"`max_pitch` must be an integer in [min_pitch={self.min_pitch}, 127], got {self.max_pitch!r}",
        )

    @property
    def vocab_size(self) -> int:
        """Number of token ids: the two special events plus one NOTE_ON per pitch."""
        return NUM_SPECIAL + self.max_pitch - self.min_pitch + 1


@dataclass(frozen=True, eq=False)
class Melody:
    """A monophonic, quantized melody and the metadata needed to write it back.

    Step 0 is a bar line. A note sounds from its NOTE_ON until the next NOTE_ON or NOTE_OFF, or the end.

    Attributes:
        events: int16 array, shape (steps,): NO_EVENT (-2), NOTE_OFF (-1) or a MIDI pitch (>= 0).
        steps_per_quarter: grid resolution.
        tempos: ``(step, qpm)`` pairs, the first at step 0.
        time_signatures: ``(step, numerator, denominator)`` triples, the first at step 0.
        velocity: MIDI velocity of every note when written back (the source's median).
        program: General MIDI program (0-127) when written back.
        source: where the melody came from (a path, "generated", ...).
        start_step: the step in the source where this melody begins.
        chords: ``(step, label)`` chord changes, Harte labels (``C:maj``, ``G:7/3``, ``N``) stored as
            `melodyrnn.chords.canonical_label` writes them, steps rising inside the melody; a chord lasts until
            the next change or the end. Empty when the source had no accompaniment or chord symbols.
    """

    events: np.ndarray
    steps_per_quarter: int = 4
    tempos: tuple[tuple[int, float], ...] = ((0, 120.0),)
    time_signatures: tuple[tuple[int, int, int], ...] = ((0, 4, 4),)
    velocity: int = 100
    program: int = 0
    source: str = ""
    start_step: int = 0
    chords: tuple[tuple[int, str], ...] = ()

    def __post_init__(self):
        # Messages are formatted only on failure: extraction builds thousands of melodies a second.
        events = np.asarray(self.events)
        if events.ndim != 1:
            raise MelodyRNNError(f"`events` must be one-dimensional, got shape {events.shape}")
        check(
            events.size == 0 or (events.min() >= NO_EVENT and events.max() <= 127),
            "`events` must hold values in [-2, 127]",
        )
        object.__setattr__(self, "events", events.astype(np.int16))
        tempos = tuple((int(s), float(q)) for s, q in self.tempos)
        meters = tuple((int(s), int(n), int(d)) for s, n, d in self.time_signatures)
        object.__setattr__(self, "tempos", tempos)
        object.__setattr__(self, "time_signatures", meters)
        check(bool(tempos) and tempos[0][0] == 0, "`tempos` must start at step 0")
        if not all(q > 0 for _, q in tempos):
            raise MelodyRNNError(f"tempos must be > 0 qpm, got {tempos}")
        check(bool(meters) and meters[0][0] == 0, "`time_signatures` must start at step 0")
        if not all(is_usable_time_signature(n, d) for _, n, d in meters):
            raise MelodyRNNError(f"`time_signatures` must be usable meters (see `melodyrnn.theory`), got {meters}")
        if not 1 <= self.velocity <= 127:
            raise MelodyRNNError(f"`velocity` must be in [1, 127], got {self.velocity!r}")
        if not 0 <= self.program <= 127:
            raise MelodyRNNError(f"`program` must be in [0, 127], got {self.program!r}")
        chords = tuple((int(step), canonical_label(label)) for step, label in self.chords)
        steps = [step for step, _ in chords]
        if steps and not (
            0 <= steps[0] and steps[-1] < max(len(events), 1) and all(a < b for a, b in zip(steps, steps[1:]))
        ):
            raise MelodyRNNError(
                f"`chords` steps must rise from >= 0 and lie inside the melody's {len(events)} steps, got {steps[:8]}"
            )
        object.__setattr__(self, "chords", chords)

    @classmethod
    def from_valid_fields(
        cls,
        events: np.ndarray,
        steps_per_quarter: int,
        tempos: tuple[tuple[int, float], ...],
        time_signatures: tuple[tuple[int, int, int], ...],
        velocity: int,
        program: int,
        source: str,
        start_step: int,
        chords: tuple[tuple[int, str], ...],
    ) -> Melody:
        """A melody from fields already as `Melody` keeps them, without checking them again (extraction makes
        thousands a second, and the check cost more than the rest of making one).

        The caller vouches for each field: `events` int16 in [-2, 127] (kept, not copied); `tempos` and
        `time_signatures` tuples of ints (and float qpm > 0), the first at step 0, usable meters; `velocity` in
        [1, 127] and `program` in [0, 127], ints; `chords` canonical labels at rising steps inside the melody.
        """
        melody = object.__new__(cls)
        for name, value in (
            ("events", events), ("steps_per_quarter", steps_per_quarter), ("tempos", tempos),
            ("time_signatures", time_signatures), ("velocity", velocity), ("program", program), ("source", source),
            ("start_step", start_step), ("chords", chords),
        ):  # fmt: skip
            object.__setattr__(melody, name, value)
        return melody

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Melody):
            return NotImplemented
        return (
            np.array_equal(self.events, other.events)
            and self.steps_per_quarter == other.steps_per_quarter
            and self.tempos == other.tempos
            and self.time_signatures == other.time_signatures
            and self.velocity == other.velocity
            and self.program == other.program
            and self.chords == other.chords
        )

    def __len__(self) -> int:
        return int(self.events.size)

    def __repr__(self) -> str:
        lo, hi = self.pitch_range or (None, None)
        return (
            f"Melody({len(self)} steps, {len(self.notes())} notes, pitches {lo}-{hi}, "
            f"{self.qpm:g} qpm, {self.time_signature[0]}/{self.time_signature[1]}, "
            + (f"{len(self.chords)} chords, " if self.chords else "")
            + f"source={self.source!r})"
        )

    @property
    def qpm(self) -> float:
        """The tempo at the start, in quarter notes per minute."""
        return self.tempos[0][1]

    @property
    def time_signature(self) -> tuple[int, int]:
        """The time signature at the start, ``(numerator, denominator)``."""
        return self.time_signatures[0][1:]

    @property
    def steps_per_bar(self) -> float:
        """Steps in one bar of the opening time signature."""
        return steps_per_bar(self.steps_per_quarter, *self.time_signature)

    @property
    def num_bars(self) -> float:
        return len(self) / self.steps_per_bar

    @property
    def pitches(self) -> np.ndarray:
        """The pitch of every note, in order, int16 array of shape (notes,)."""
        return self.events[self.events >= 0]

    @property
    def pitch_range(self) -> tuple[int, int] | None:
        """``(lowest, highest)`` pitch, or None when the melody has no notes."""
        p = self.pitches
        return (int(p.min()), int(p.max())) if p.size else None

    def notes(self) -> list[tuple[int, int, int]]:
        """The notes as ``(pitch, start_step, end_step)``, end exclusive."""
        out = []
        onsets = np.flatnonzero(self.events != NO_EVENT)
        for i, step in enumerate(onsets):
            pitch = int(self.events[step])
            if pitch >= 0:
                end = int(onsets[i + 1]) if i + 1 < len(onsets) else len(self)
                out.append((pitch, int(step), end))
        return out

    def first_steps(self, steps: int) -> Melody:
        """The melody's first `steps` steps, with the chords that change before them; the rest of its metadata
        (tempos, time signatures, program, velocity, source) as it is."""
        return replace(self, events=self.events[:steps], chords=tuple(c for c in self.chords if c[0] < steps))

    def transpose(
        self,
        semitones: int,
        *,
        min_pitch: int = 0,
        max_pitch: int = 127,
        on_out_of_range: Literal["raise", "fold"] = "raise",
    ) -> Melody:
        """Returns the melody moved by `semitones`.

        The chords move with the notes (by `semitones`; a folded note's octave does not change its chord).
        Rule for notes that leave ``[min_pitch, max_pitch]``: "raise" raises `OutOfRangeError`; "fold"
        moves each such note by whole octaves back into the range (the range must span an octave).

        Raises:
            OutOfRangeError: a note leaves the range and `on_out_of_range` is "raise".
        """
        check(
            on_out_of_range in ("raise", "fold"),
            f"`on_out_of_range` must be 'raise' or 'fold', got {on_out_of_range!r}",
        )
        events = self.events.astype(np.int32)
        notes = events >= 0
        moved = np.where(notes, events + int(semitones), events)
        outside = notes & ((moved < min_pitch) | (moved > max_pitch))
        if outside.any():
            if on_out_of_range == "raise":
                bad = moved[outside]
                raise OutOfRangeError(
                    f"transposing by {semitones} moves pitches {sorted(set(bad.tolist()))[:5]} outside "
                    f"[{min_pitch}, {max_pitch}]"
                )
            check(max_pitch - min_pitch >= 11, "folding needs a pitch range of at least an octave")
            low = moved < min_pitch
            moved = np.where(notes & low, moved + 12 * np.ceil((min_pitch - moved) / 12).astype(np.int32), moved)
            high = moved > max_pitch
            moved = np.where(notes & high, moved - 12 * np.ceil((moved - max_pitch) / 12).astype(np.int32), moved)
        chords = tuple((step, transpose_label(label, semitones)) for step, label in self.chords)
        return replace(self, events=moved.astype(np.int16), chords=chords)

    @classmethod
    def from_notes(
        cls,
        notes: Iterable[tuple[int, int, int]],
        *,
        num_steps: int | None = None,
        **metadata,
    ) -> Melody:
        """Builds a melody from ``(pitch, start_step, end_step)`` notes (monophonic, sorted by start).

        A note's end is cut at the next note's start. `num_steps` defaults to the last end.

        Raises:
            MelodyRNNError: the notes are unsorted or a pitch is outside [0, 127].
        """
        notes = list(notes)
        length = num_steps if num_steps is not None else max((e for _, _, e in notes), default=0)
        events = np.full(length, NO_EVENT, dtype=np.int16)
        for i, (pitch, start, end) in enumerate(notes):
            check(0 <= pitch <= 127, f"pitch must be in [0, 127], got {pitch}")
            check(end > start >= 0, f"a note must end after it starts, got ({pitch}, {start}, {end})")
            next_start = notes[i + 1][1] if i + 1 < len(notes) else None
            check(
                next_start is None or next_start > start,
                f"notes must be sorted with distinct starts, got start {next_start} after {start}",
            )
            if start >= length:
                break
            events[start] = pitch
            if end < length and (next_start is None or end < next_start):
                events[end] = NOTE_OFF
        return cls(events=events, **metadata)


# --------------------------------------------------------------------------------------------------
# Writing back


def melody_to_score(
    melody: Melody,
    *,
    qpm: float | None = None,
    time_signature: tuple[int, int] | None = None,
    program: int | None = None,
    velocity: int | None = None,
    chords: bool | int = False,
) -> Score:
    """The melody as a `Score`; any argument given replaces the melody's own value.

    With `chords` (True for piano, or a General MIDI program) the melody's chords follow as a second track of
    block chords — a bass note in octave 2 and the chord's tones from its root in octave 3 — on its own channel.
    """
    spq = melody.steps_per_quarter
    vel = int(velocity if velocity is not None else melody.velocity)
    check(1 <= vel <= 127, f"`velocity` must be in [1, 127], got {vel}")
    prog = int(program if program is not None else melody.program)
    check(0 <= prog <= 127, f"`program` must be in [0, 127], got {prog}")
    notes = [Note(p, vel, s / spq, e / spq) for p, s, e in melody.notes()]
    score = notes_to_score(notes, program=prog, name=os.path.basename(melody.source) or "melody")
    if chords is not False and chords is not None:
        chord_program = 0 if chords is True else chords
        check(
            is_int(chord_program) and 0 <= chord_program <= 127,
            f"`chords` must be True, False or a program in [0, 127], got {chords!r}",
        )
        score.tracks.append(
            Track(_chord_notes(melody, max(1, vel * 3 // 4)), program=int(chord_program), name="chords")
        )
    if qpm is not None:
        check(MIN_QPM <= qpm <= 60_000_000, f"`qpm` must be in [{MIN_QPM:.2f}, 60000000] (what MIDI holds), got {qpm}")
        score.tempos = [(0.0, float(qpm))]
    else:
        score.tempos = [(s / spq, q) for s, q in melody.tempos]
    if time_signature is not None:
        numerator, denominator = check_time_signature(time_signature)
        score.time_signatures = [(0.0, numerator, denominator)]
    else:
        score.time_signatures = [(s / spq, n, d) for s, n, d in melody.time_signatures]
    return score


def _chord_notes(melody: Melody, velocity: int) -> list[Note]:
    """The melody's chords as block-chord notes, each held until the next change or the melody's end."""
    spq, notes = melody.steps_per_quarter, []
    ends = [step for step, _ in melody.chords[1:]] + [len(melody)]
    for (start, label), end in zip(melody.chords, ends):
        chord = parse_label(label)
        if chord is None:
            continue
        bass = 36 + (chord.root + chord.bass) % 12
        tones = [48 + chord.root + interval for interval in QUALITY_TONES[chord.quality]]
        notes += [Note(p, velocity, start / spq, end / spq) for p in sorted({bass, *tones})]
    return sorted(notes, key=lambda n: (n.start_quarters, n.pitch))


def melody_to_midi(melody: Melody, path: str | os.PathLike | None = None, **overrides) -> bytes:
    """Writes a melody as MIDI bytes, and to `path` when given.

    Args:
        melody: what to write.
        path: optional file to write.
        **overrides: ``qpm``, ``time_signature``, ``program``, ``velocity`` replace the melody's own; ``chords``
            (True or a program) adds the chords as a second track (see `melody_to_score`).

    Returns:
        The MIDI file's bytes.
    """
    data = score_to_midi(melody_to_score(melody, **overrides))
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    return data


# --------------------------------------------------------------------------------------------------
# Tokens


def melody_to_tokens(melody: Melody, config: EncodingConfig = EncodingConfig()) -> np.ndarray:
    """Encodes a melody as token ids.

    Returns:
        int32 array of shape (steps,), values in [0, config.vocab_size).

    Raises:
        OutOfRangeError: a pitch lies outside the config's range.
    """
    return events_to_tokens(melody.events, config)


def events_to_tokens(events: np.ndarray, config: EncodingConfig) -> np.ndarray:
    """`melody_to_tokens` of events (int, shape (steps,)), one melody's or many melodies' back to back."""
    events = events.astype(np.int32)
    notes = events >= 0
    if notes.any():
        lo, hi = events[notes].min(), events[notes].max()
        if lo < config.min_pitch or hi > config.max_pitch:
            raise OutOfRangeError(f"melody pitches {lo}-{hi} lie outside [{config.min_pitch}, {config.max_pitch}]")
    return np.where(notes, events - config.min_pitch + NUM_SPECIAL, events - NO_EVENT).astype(np.int32)


def events_list_to_tokens(events: Sequence[np.ndarray], config: EncodingConfig) -> np.ndarray:
    """The tokens of many melodies' events, back to back, int16, in one pass (what a cache stores).

    Raises:
        OutOfRangeError: as `melody_to_tokens`, for the first melody outside the pitch range.
    """
    if not events:
        return np.zeros(0, np.int16)
    try:
        return events_to_tokens(np.concatenate(events), config).astype(np.int16)
    except OutOfRangeError:
        for one in events:
            events_to_tokens(one, config)
        raise


def tokens_to_melody(
    tokens: Sequence[int] | np.ndarray, config: EncodingConfig = EncodingConfig(), **metadata
) -> Melody:
    """Decodes token ids into a melody; `metadata` fills `Melody`'s other fields (``chords`` included: tokens
    hold events only).

    Raises:
        MelodyRNNError: an id lies outside [0, vocab_size).
    """
    ids = np.asarray(tokens, dtype=np.int64)
    check(ids.ndim == 1, f"`tokens` must be one-dimensional, got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= config.vocab_size):
        raise MelodyRNNError(f"token ids must be in [0, {config.vocab_size}), got {ids.min()}..{ids.max()}")
    events = np.where(ids >= NUM_SPECIAL, ids - NUM_SPECIAL + config.min_pitch, ids + NO_EVENT)
    metadata.setdefault("steps_per_quarter", config.steps_per_quarter)
    return Melody(events=events.astype(np.int16), **metadata)
