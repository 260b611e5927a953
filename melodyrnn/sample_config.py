"""What the user asks `Sampler.generate` for, checked without TensorFlow: `SampleConfig` and the primers.

Start at `SampleConfig` (every sampling control, validated on construction) and `primer_to_melody` (pitches, note
names, a `Melody` or a MIDI file → a `Melody`). Kept apart from `melodyrnn.sampling` so that the CLI's parser,
the app's form and `import melodyrnn` can use them without loading TensorFlow (seconds).
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from melodyrnn.chords import chord_name_to_label
from melodyrnn.conditioning import beat_quarters
from melodyrnn.configs import Config, is_int, is_real
from melodyrnn.encoding import NUM_SPECIAL, EncodingConfig, Melody
from melodyrnn.errors import MelodyRNNError
from melodyrnn.extraction import ExtractionConfig, midi_to_melodies
from melodyrnn.midi_io import MIN_QPM
from melodyrnn.theory import check_time_signature, key_pitch_classes, note_name_to_pitch

__all__ = [
    "DEFAULT_CHORD_GUIDANCE",
    "MAX_ROWS",
    "MAX_STEPS",
    "MAX_WORK",
    "PRIMER_EXTRACTION",
    "SampleConfig",
    "parse_progression",
    "primer_to_melody",
    "progression_to_chords",
    "read_primer",
]

#: A primer read from MIDI goes through the training extraction, with the length and variety filters off
#: (a primer may be one bar of one note).
PRIMER_EXTRACTION = ExtractionConfig(min_bars=0, min_unique_pitches=1)
# Bounds on one request, so that no argument can exhaust memory, run for hours or write a melody too long for
# melodyrnn to read back (its MIDI reader stops at 100,000 quarter notes).
#: Steps per melody: 1,024 bars of 4/4 at 4 steps per quarter note.
MAX_STEPS = 16384
#: Sequences decoded side by side: melodies × beams (each carries the model's state and attention cache).
MAX_ROWS = 1024
#: Sequences × steps in one call.
MAX_WORK = 1 << 22
#: `SampleConfig.chord_guidance` unless asked otherwise.
DEFAULT_CHORD_GUIDANCE = 2.0


@dataclass(frozen=True)
class SampleConfig(Config):
    """Everything that controls one `Sampler.generate` call. Validated on construction.

    Attributes:
        num_melodies: melodies to generate, in one batch.
        num_steps: total length in steps, primer included; or
        bars: total length in bars of the output's time signature, primer included. Neither: `default_bars`.
        temperature: divides the logits; 0 takes the argmax (greedy), exactly.
        top_k: keep the k most likely events at each step; 0 keeps all.
        top_p: keep the smallest set of most likely events whose probability reaches top_p (nucleus); 1 keeps all.
        beam_size: hypotheses kept per melody; > 1 (or branch_factor > 1) runs beam search.
        branch_factor: candidate events each hypothesis expands into per step: the most likely ones when
            temperature is 0, otherwise drawn without replacement (after temperature, top-k, top-p).
        key: "D minor", "F# dorian", "Bb major", "A blues", ...: NOTE_ONs outside the scale are masked
            (scales: see `melodyrnn.theory.SCALES`).
        min_pitch, max_pitch: NOTE_ONs outside [min_pitch, max_pitch] are masked.
        repetition_penalty: >= 1 discourages striking the last note's pitch again: its probability is divided
            by ``repetition_penalty ** run``, run = how many times in a row that pitch has been struck.
        max_repeats: the most times in a row a pitch may be struck again right after itself (0: never repeat a
            pitch immediately); None: no cap. Rests and holds do not break a run.
        qpm, time_signature, program, velocity: written to the MIDI; None keeps the primer's (or 120 qpm, 4/4,
            program 0, velocity 100 without a primer). `time_signature` also sets the bar length for `bars`.
        seed: makes the melodies reproducible; None draws a fresh one.
        chords: a chord progression the melodies are written over (see `parse_progression`): "Am F C G" (a
            chord a bar, repeated to the length asked for), "Am F | C G" (bars split), "Am:2 F:2" (beats), or
            ``(beat, chord)`` pairs (not repeated). A chord-aware model follows it; any model's melodies carry it
            in `Melody.chords`. A primer keeps its own chords where it has any.
        pickup: the chance that a melody without a primer opens with a pickup, as most tunes do: step 0 is
            silence and the model chooses when the first note comes (by the last step of the first bar at the
            latest); otherwise step 0 is a note on the downbeat. None: the share of the model's training melodies
            that opened so (its bundle's ``metadata["data"]["pickup_share"]``; 0 for a bundle that does not record
            it). Greedy decoding (temperature 0) opens with a pickup when the chance is at least 0.5.
        chord_guidance: how strongly a chord-aware model follows `chords`: 1 is the model as trained, higher
            leans each note further towards what the chords make likely (classifier-free guidance: the logits
            become ``withheld + chord_guidance * (given - withheld)``, the model run with the chords and without
            them in one batch), 0 ignores them for the notes. Only a chord-aware model given chords uses it, and
            then each step costs about twice as much work.

    Raises:
        MelodyRNNError: any field out of range, e.g. "`temperature` must be >= 0, got -1".
    """

    num_melodies: int = 1
    num_steps: int | None = None
    bars: float | None = None
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    beam_size: int = 1
    branch_factor: int = 1
    key: str | None = None
    min_pitch: int | None = None
    max_pitch: int | None = None
    repetition_penalty: float = 1.0
    max_repeats: int | None = None
    qpm: float | None = None
    time_signature: tuple[int, int] | None = None
    program: int | None = None
    velocity: int | None = None
    seed: int | None = None
    chords: str | tuple[tuple[float, str], ...] | None = None
    chord_guidance: float = DEFAULT_CHORD_GUIDANCE
    pickup: float | None = None

    what: ClassVar[str] = "sample config"
    #: Length of a melody when neither `bars` nor `num_steps` is given.
    default_bars: ClassVar[float] = 8

    def __post_init__(self):
        check = self._require

        check(
            is_int(self.num_melodies) and 1 <= self.num_melodies <= MAX_ROWS,
            "num_melodies",
            f"an integer in [1, {MAX_ROWS}]",
        )
        check(
            self.num_steps is None or (is_int(self.num_steps) and 1 <= self.num_steps <= MAX_STEPS),
            "num_steps",
            f"an integer in [1, {MAX_STEPS}] or None",
        )
        check(self.bars is None or (is_real(self.bars) and self.bars > 0), "bars", "a number > 0 or None")
        if self.num_steps is not None and self.bars is not None:
            raise MelodyRNNError(
                f"give `bars` or `num_steps`, not both (got bars={self.bars!r}, num_steps={self.num_steps!r})"
            )
        check(is_real(self.temperature) and self.temperature >= 0, "temperature", ">= 0")
        check(is_int(self.top_k) and self.top_k >= 0, "top_k", "an integer >= 0 (0 = off)")
        check(is_real(self.top_p) and 0 < self.top_p <= 1, "top_p", "in (0, 1]")
        check(is_int(self.beam_size) and 1 <= self.beam_size <= 256, "beam_size", "an integer in [1, 256]")
        check(is_int(self.branch_factor) and 1 <= self.branch_factor <= 256, "branch_factor", "an integer in [1, 256]")
        if self.num_melodies * self.beam_size > MAX_ROWS:
            raise MelodyRNNError(
                f"`num_melodies` × `beam_size` must be at most {MAX_ROWS} sequences decoded at once, got "
                f"{self.num_melodies} × {self.beam_size} = {self.num_melodies * self.beam_size}"
            )
        if self.key is not None:
            key_pitch_classes(self.key)  # raises on an unknown tonic or scale
        for name in ("min_pitch", "max_pitch"):
            value = getattr(self, name)
            check(value is None or (is_int(value) and 0 <= value <= 127), name, "an integer in [0, 127] or None")
        if self.min_pitch is not None and self.max_pitch is not None and self.min_pitch > self.max_pitch:
            raise MelodyRNNError(f"`min_pitch` must be <= `max_pitch`, got {self.min_pitch} > {self.max_pitch}")
        check(is_real(self.repetition_penalty) and self.repetition_penalty > 0, "repetition_penalty", "> 0")
        check(
            self.max_repeats is None or (is_int(self.max_repeats) and self.max_repeats >= 0),
            "max_repeats",
            "an integer >= 0 or None",
        )
        check(
            self.qpm is None or (is_real(self.qpm) and MIN_QPM <= self.qpm <= 1000),
            "qpm",
            f"in [{MIN_QPM:.2f}, 1000] (MIDI holds nothing slower) or None",
        )
        if self.time_signature is not None:
            object.__setattr__(self, "time_signature", check_time_signature(self.time_signature))
        check(
            self.program is None or (is_int(self.program) and 0 <= self.program <= 127),
            "program",
            "an integer in [0, 127] or None",
        )
        check(
            self.velocity is None or (is_int(self.velocity) and 1 <= self.velocity <= 127),
            "velocity",
            "an integer in [1, 127] or None",
        )
        check(self.seed is None or (is_int(self.seed) and self.seed >= 0), "seed", "an integer >= 0 or None")
        check(is_real(self.chord_guidance) and 0 <= self.chord_guidance <= 10, "chord_guidance", "a number in [0, 10]")
        check(self.pickup is None or (is_real(self.pickup) and 0 <= self.pickup <= 1), "pickup", "in [0, 1] or None")
        if self.chords is not None:
            if not isinstance(self.chords, str):  # pairs, also as JSON's lists: a hashable tuple of tuples
                check(isinstance(self.chords, (list, tuple)), "chords", "a progression string or (beat, chord) pairs")
                pairs = [tuple(p) if isinstance(p, (list, tuple)) else (p,) for p in self.chords]
                object.__setattr__(self, "chords", tuple(pairs))
            parse_progression(self.chords, self.time_signature or (4, 4))  # raises on a bad chord or layout

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def uses_beam_search(self) -> bool:
        return self.beam_size > 1 or self.branch_factor > 1

    def allowed_ids(self, encoding: EncodingConfig, vocab_size: int | None = None) -> np.ndarray:
        """float32 `(vocab_size,)`, added to the logits: 0 where an id may be drawn, -inf for the notes the key or
        the pitch range forbid and for ids past `encoding`'s vocabulary (a model's extra tokens).

        Raises:
            MelodyRNNError: no pitch of the encoding's range is allowed.
        """
        pitches = np.arange(encoding.min_pitch, encoding.max_pitch + 1)
        ok = np.ones(pitches.size, bool)
        if self.min_pitch is not None:
            ok &= pitches >= self.min_pitch
        if self.max_pitch is not None:
            ok &= pitches <= self.max_pitch
        if self.key is not None:
            ok &= np.isin(pitches % 12, sorted(key_pitch_classes(self.key)))
        if not ok.any():
            raise MelodyRNNError(
                f"no pitch of the model's range [{encoding.min_pitch}, {encoding.max_pitch}] satisfies "
                f"key={self.key!r}, min_pitch={self.min_pitch!r}, max_pitch={self.max_pitch!r}"
            )
        allowed = np.full(vocab_size or encoding.vocab_size, -np.inf, np.float32)
        allowed[:NUM_SPECIAL] = 0.0
        allowed[NUM_SPECIAL : encoding.vocab_size] = np.where(ok, 0.0, -np.inf)
        return allowed


# ----------------------------------------------------------------------------------------------------------
# Chord progressions

_DURATION = re.compile(r"^(.+):(\d+(?:\.\d*)?)$")


def parse_progression(chords, time_signature: tuple[int, int] = (4, 4)) -> tuple[tuple[tuple[float, str], ...], float]:
    """Reads a chord progression into beats of `time_signature` (compound meters beat in dotted quarters).

    Args:
        chords: a string of chords as musicians write them or Harte labels (`chord_name_to_label`), separated
            by spaces: each lasts one bar ("Am F C G"), or the beats after a colon ("Am:2 F:2"; the last
            ":number" is always beats, so write Harte's ``G:7`` as ``G7``); "|" splits bars, whose chords without
            beats share what the others leave ("Am F | C G" = two chords a bar); or ``(beat, chord)`` pairs, beats
            from 0, rising.

    Returns:
        ``(changes, cycle_beats)``: ``(beat, Harte label)`` changes, and the beats after which a string repeats
        (0 for pairs, which do not).

    Raises:
        ChordLabelError: a bad chord, named.
        MelodyRNNError: a bad layout (no chords, a bar overfull, beats not rising).
    """
    numerator, denominator = time_signature
    bar = numerator * 4 / denominator / beat_quarters(numerator, denominator)  # beats per bar
    if isinstance(chords, str):
        changes, beat = [], 0.0
        bars = [b for b in chords.split("|")] if "|" in chords else chords.split()
        for group in (b.split() for b in bars):
            if not group:
                continue
            timed = [_DURATION.match(t) for t in group]
            given = sum(float(m.group(2)) for m in timed if m)
            free = sum(m is None for m in timed)
            share = bar if "|" not in chords else (bar - given) / free if free else 0.0
            if "|" in chords and (given > bar + 1e-9 or (free and share <= 0)):
                raise MelodyRNNError(f"`chords`: the bar {' '.join(group)!r} holds more than its {bar:g} beats")
            start = beat
            for token, m in zip(group, timed):
                length = float(m.group(2)) if m else share
                if length <= 0:
                    raise MelodyRNNError(f"`chords`: {token!r} must last more than 0 beats")
                changes.append((beat, chord_name_to_label(m.group(1) if m else token)))
                beat += length
            beat = max(beat, start + bar) if "|" in chords else beat
        if not changes:
            raise MelodyRNNError(f"`chords` must name at least one chord, got {chords!r}")
        return tuple(changes), beat
    pairs: list[tuple[float, str]] = []
    for pair in chords:
        if len(pair) != 2 or not is_real(pair[0]) or pair[0] < 0 or (pairs and pair[0] <= pairs[-1][0]):
            raise MelodyRNNError(f"`chords` pairs must be (beat, chord) with beats >= 0 and rising, got {pair!r}")
        pairs.append((float(pair[0]), chord_name_to_label(pair[1])))
    if not pairs:
        raise MelodyRNNError("`chords` must name at least one chord, got no pairs")
    return tuple(pairs), 0.0


def progression_to_chords(
    chords, time_signature: tuple[int, int], steps_per_quarter: int, num_steps: int
) -> tuple[tuple[int, str], ...]:
    """A progression (`parse_progression`) as a melody's ``(step, Harte label)`` chords over `num_steps` steps:
    a string repeats to the end; a chord restated without a change is dropped. Raises as `parse_progression`."""
    changes, cycle = parse_progression(chords, time_signature)
    step_beats = beat_quarters(*time_signature) * steps_per_quarter
    out: list[tuple[int, str]] = []
    for k in range(max(1, math.ceil(num_steps / (cycle * step_beats))) if cycle else 1):
        for beat, label in changes:
            step = int(round((k * cycle + beat) * step_beats))
            if step >= num_steps or (out and out[-1][1] == label):
                continue
            if out and out[-1][0] == step:  # shorter than a step: the later chord wins
                out.pop()
            out.append((step, label))
    return tuple(out)


# ----------------------------------------------------------------------------------------------------------
# Primers


def _pitches_to_melody(pitches: Sequence[int], encoding: EncodingConfig) -> Melody:
    spq = encoding.steps_per_quarter
    return Melody.from_notes(
        [(p, i * spq, (i + 1) * spq) for i, p in enumerate(pitches)], steps_per_quarter=spq, source="primer"
    )


def primer_to_melody(primer, encoding: EncodingConfig = EncodingConfig()) -> Melody | None:
    """Turns any accepted primer into a `Melody`.

    Args:
        primer: None; a `Melody`; MIDI pitches (`[62, 65, 69]`); note names ("D4 F4 A4", "C#5,E5" or a list of
            names), each note one beat long; or a MIDI file (a path, or its bytes), whose first melody is taken,
            extracted by the training code (`midi_to_melodies`) with `PRIMER_EXTRACTION`'s filters.
        encoding: the bundle's encoding (its grid and pitch range).

    Returns:
        The primer melody, or None for no primer.

    Raises:
        MelodyRNNError: a bad note name, a pitch outside 0-127, an empty primer, or a melody on another grid.
        MidiReadError, NoMelodyError: the MIDI file cannot be read or holds no melody.
    """
    return read_primer(primer, encoding)[0]


def read_primer(primer, encoding: EncodingConfig) -> tuple[Melody | None, bool]:
    """`primer_to_melody`, and whether the primer's time signature is its own (a Melody or a MIDI file), not
    the 4/4 that pitches and note names get by default (a lookback model counts bars of its own only)."""
    if primer is None:
        return None, False
    own_meter = not isinstance(primer, (str, list, tuple, np.ndarray))
    if isinstance(primer, Melody):
        melody = primer
    elif isinstance(primer, (bytes, bytearray)):
        melody = midi_to_melodies(bytes(primer), encoding, PRIMER_EXTRACTION)[0]
    elif isinstance(primer, os.PathLike) or (
        isinstance(primer, str)
        and (os.path.isfile(primer) or primer.strip().lower().endswith((".mid", ".midi", ".kar")))
    ):
        melody, own_meter = midi_to_melodies(os.fspath(primer), encoding, PRIMER_EXTRACTION)[0], True
    elif isinstance(primer, str):
        names = [n for n in re.split(r"[\s,]+", primer.strip()) if n]
        melody = _pitches_to_melody([note_name_to_pitch(n) for n in names], encoding)
    elif isinstance(primer, (list, tuple, np.ndarray)):
        pitches = []
        for p in list(primer):
            if isinstance(p, str):
                pitches.append(note_name_to_pitch(p))
            elif isinstance(p, numbers.Integral) and not isinstance(p, bool) and 0 <= int(p) <= 127:
                pitches.append(int(p))
            else:
                raise MelodyRNNError(f"`primer` pitches must be MIDI numbers in [0, 127] or note names, got {p!r}")
        melody = _pitches_to_melody(pitches, encoding)
    else:
        raise MelodyRNNError(
            f"`primer` must be pitches, note names, a Melody, or a MIDI file path or bytes, got {type(primer).__name__}"
        )
    if len(melody) == 0 or melody.pitches.size == 0:
        raise MelodyRNNError("`primer` must hold at least one note")
    if melody.steps_per_quarter != encoding.steps_per_quarter:
        raise MelodyRNNError(
            f"`primer` must be on the model's grid of {encoding.steps_per_quarter} steps per "
            f"quarter, got {melody.steps_per_quarter}"
        )
    return melody, own_meter
