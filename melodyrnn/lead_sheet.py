"""A melody laid out as a lead sheet: its key and how each pitch is spelled in it, and its bars of notatable notes.

Start at `lay_out` (a `Melody` → `LeadSheet`: bars of `Item`s, each a note or rest of one notatable value, tied
where a sound goes on, with the chord symbol that starts on it) and `resolve_key` (a key given or estimated →
`KeySignature`, whose `spell` names a pitch). `melodyrnn.notation` writes the result as MusicXML or ABC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from melodyrnn.chords import NO_CHORD, parse_label
from melodyrnn.encoding import Melody
from melodyrnn.errors import NotationError
from melodyrnn.theory import parse_key

# Scale → (mode as MusicXML names it, its key signature in fifths above the tonic's major one). Scales without a
# mode of their own take the signature of the major or minor they sit in.
MODES: dict[str, tuple[str, int]] = {
    "major": ("major", 0), "minor": ("minor", -3), "harmonic minor": ("minor", -3), "melodic minor": ("minor", -3),
    "dorian": ("dorian", -2), "phrygian": ("phrygian", -4), "lydian": ("lydian", 1), "mixolydian": ("mixolydian", -1),
    "locrian": ("locrian", -5), "pentatonic major": ("major", 0), "pentatonic minor": ("minor", -3),
    "blues": ("minor", -3), "chromatic": ("major", 0),
}  # fmt: skip
_LETTERS_BY_FIFTHS = "FCGDAEB"  # the line of fifths: F is -1, C 0, G 1, ...
_NATURAL_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
#: The shortest written value, in quarter notes (a 64th note).
SHORTEST = Fraction(1, 16)
# Written values, longest first: whole to 64th, with up to two dots while the last dot stays >= a 64th.
_VALUES = sorted(
    {
        Fraction(4, 2**k) * (2 - Fraction(1, 2**dots))
        for k in range(7)
        for dots in range(3)
        if Fraction(4, 2**k) / 2**dots >= SHORTEST
    },
    reverse=True,
)
TYPE_NAMES = {
    Fraction(4, 2**k): name for k, name in enumerate(("whole", "half", "quarter", "eighth", "16th", "32nd", "64th"))
}


def fifths_to_name(fifths: int) -> tuple[str, int]:
    """The pitch class at `fifths` on the line of fifths (0 = C, 1 = G, -1 = F) as ``(letter, alter)``."""
    return _LETTERS_BY_FIFTHS[(fifths + 1) % 7], (fifths + 1) // 7


def _name_to_fifths(letter: str, alter: int) -> int:
    return _LETTERS_BY_FIFTHS.index(letter) - 1 + 7 * alter


@dataclass(frozen=True)
class KeySignature:
    """A key as notation writes it.

    Attributes:
        fifths: the signature, -7 (seven flats) to 7 (seven sharps).
        mode: "major", "minor", "dorian", ... (`MODES`).
        tonic: the tonic's name, e.g. "Eb".
    """

    fifths: int
    mode: str
    tonic: str

    @property
    def name(self) -> str:
        return f"{self.tonic} {self.mode}"

    @property
    def minor_like(self) -> bool:
        return self.mode in ("minor", "phrygian", "locrian")

    def spell(self, pitch: int) -> tuple[str, int, int]:
        """MIDI `pitch` as ``(letter, alter, octave)`` in this key: scale tones as the signature has them, others
        as the nearest names on the line of fifths (in C major: C#, Eb, F#, Ab, Bb; in A minor also G# and D#)."""
        lowest = self.fifths - (2 if self.minor_like else 4)
        position = lowest + (pitch * 7 - lowest) % 12  # pitch class p sits at 7p (mod 12) on the line of fifths
        letter, alter = fifths_to_name(position)
        return letter, alter, (pitch - alter - _NATURAL_PITCH_CLASS[letter]) // 12 - 1

    def signature_alter(self, letter: str) -> int:
        """The alteration the key signature gives `letter` (-1, 0 or 1)."""
        position = _name_to_fifths(letter, 0)
        if self.fifths > 0:
            return 1 if position < self.fifths - 1 else 0
        return -1 if position > 5 + self.fifths else 0


def resolve_key(melody: Melody, key: str | None = None) -> KeySignature:
    """The key to write `melody` in: `key` ("D major", "Eb minor", "A dorian"; spelled as given when its signature
    has at most seven accidentals), or the Krumhansl–Schmuckler estimate from its notes (C major without notes).

    Raises:
        MelodyRNNError: `key` is not a key (see `melodyrnn.theory.parse_key`).
    """
    if key is None:
        # imported here: generating melodies (sampling writes them through this module) needs no metrics
        from melodyrnn.metrics import estimate_key

        estimate = estimate_key(melody)[0]
        key = "C major" if estimate == "unknown" else estimate
        if key == "Ab minor":  # five sharps read more easily than seven flats
            key = "G# minor"
    _, scale = parse_key(key)
    mode, offset = MODES[scale]
    name = key.strip().split(" ", 1)[0].replace("♯", "#").replace("♭", "b")
    tonic = _name_to_fifths(name[0].upper(), name[1:].count("#") - name[1:].count("b"))
    fifths = tonic + offset
    if abs(fifths) > 7:  # D# major, say: write it as Eb major
        shift = -12 if fifths > 0 else 12
        tonic, fifths = tonic + shift, fifths + shift
    letter, alter = fifths_to_name(tonic)
    return KeySignature(fifths, mode, letter + ("#" * alter if alter > 0 else "b" * -alter))


# --------------------------------------------------------------------------------------------------
# Bars


@dataclass(frozen=True)
class Item:
    """One written note or rest.

    Attributes:
        pitch: MIDI pitch, or None for a rest.
        quarters: its written value in quarter notes (one of the notatable values: whole to 64th, dotted or not).
        tie_stop: it continues the note before (tied from it).
        tie_start: the note goes on in the next item.
        chord: the Harte label of the chord symbol that starts here, or None.
        offset: quarters from the start of its bar.
    """

    pitch: int | None
    quarters: Fraction
    tie_stop: bool = False
    tie_start: bool = False
    chord: str | None = None
    offset: Fraction = Fraction(0)


@dataclass
class Bar:
    """One bar: its meter, whether it is a pickup (shorter than its meter), and its items."""

    numerator: int
    denominator: int
    quarters: Fraction
    pickup: bool = False
    items: list[Item] = field(default_factory=list)

    @property
    def full_quarters(self) -> Fraction:
        return Fraction(4 * self.numerator, self.denominator)


@dataclass
class LeadSheet:
    """A melody laid out for notation: key, tempo, bars."""

    key: KeySignature
    qpm: float
    bars: list[Bar]
    program: int


def split_value(quarters: Fraction) -> list[Fraction]:
    """`quarters` as notatable values to tie together, longest first (5 sixteenths → a quarter and a 16th).

    Raises:
        NotationError: it is not a whole number of 64th notes (a triplet grid, say).
    """
    if (quarters / SHORTEST).denominator != 1:
        raise NotationError(
            f"a note of {quarters} quarter notes cannot be written without tuplets: lead sheets are written for "
            "melodies on a grid of halves, quarters, eighths ... of a quarter note (steps_per_quarter 1, 2, 4, 8 "
            "or 16)"
        )
    values = []
    while quarters > 0:
        value = next(v for v in _VALUES if v <= quarters)
        values.append(value)
        quarters -= value
    return values


def _readable_values(position: Fraction, length: Fraction, numerator: int, denominator: int) -> list[Fraction]:
    """The values a sound of `length` quarters at `position` (quarters into a whole bar) is written as. In compound
    meters a sound that does not fill whole beats is tied at each beat it crosses (6/8 shows its two halves); in
    4/4 one that starts off the beat is tied at the half bar. Each piece then goes through `split_value`."""
    beat = beat_quarters(numerator, denominator)
    end = position + length
    cut = None
    if beat == Fraction(3, 2) and (position % beat or end % beat):
        cut = (position // beat + 1) * beat
    elif (numerator, denominator) == (4, 4) and position % beat and position < 2:
        cut = Fraction(2)
    if cut is None or cut >= end:
        return split_value(length)
    return split_value(cut - position) + _readable_values(cut, end - cut, numerator, denominator)


def _bar_lines(melody: Melody, end: Fraction) -> list[tuple[Fraction, int, int]]:
    """``(start_quarters, numerator, denominator)`` of every bar up to `end` (the last bar may pass it); a meter
    change that falls inside a bar cuts that bar short."""
    spq = melody.steps_per_quarter
    changes = [(Fraction(s, spq), n, d) for s, n, d in melody.time_signatures]
    bars = []
    for i, (start, numerator, denominator) in enumerate(changes):
        stop = changes[i + 1][0] if i + 1 < len(changes) else None
        position = start
        while (stop is None and position < end) or (stop is not None and position < stop):
            bars.append((position, numerator, denominator))
            position += Fraction(4 * numerator, denominator)
        if stop is None:
            break
    return bars or [(Fraction(0), *melody.time_signature)]


def lay_out(melody: Melody, key: str | None = None) -> LeadSheet:
    """Lays `melody` out in bars of notatable notes and rests.

    A melody that opens with less than a bar of silence opens on a pickup bar holding what is left of that bar.
    Notes are tied across bar lines and where a chord changes under them; the last bar is filled with rest.

    Args:
        melody: the melody; its chords become chord symbols.
        key: see `resolve_key`.

    Raises:
        NotationError: a value that needs tuplets (see `split_value`).
        MelodyRNNError: a bad `key`.
    """
    spq = melody.steps_per_quarter
    notes = [(p, Fraction(s, spq), Fraction(e, spq)) for p, s, e in melody.notes()]
    end = Fraction(len(melody), spq)
    lines = _bar_lines(melody, max(end, Fraction(1, spq)))
    last_start, last_numerator, last_denominator = lines[-1]
    # a bar ends where the next begins (a meter change may cut one short); the last is written whole
    starts = [start for start, _, _ in lines] + [last_start + Fraction(4 * last_numerator, last_denominator)]
    first_onset = notes[0][1] if notes else Fraction(0)
    pickup = 0 < first_onset < starts[1] and len(lines) > 1
    chords = {Fraction(s, spq): label for s, label in melody.chords}
    cuts = sorted(set(starts) | set(chords) | {t for _, s, e in notes for t in (s, e)})
    sounds = _sounds(notes, cuts, first_onset if pickup else Fraction(0), starts[-1])
    bars = []
    for i, (bar_start, numerator, denominator) in enumerate(lines):
        lo, hi = (first_onset if pickup and i == 0 else bar_start), starts[i + 1]
        bar = Bar(numerator, denominator, hi - lo, pickup=pickup and i == 0)
        in_force = _chord_at(melody, lo) if i == 0 else None
        for pitch, a, b, tied_from in sounds:
            if a < lo or a >= hi:
                continue
            chord = chords.get(a, in_force if a == lo else None)
            offset = a - lo
            values = _readable_values(offset + bar.full_quarters - bar.quarters, b - a, numerator, denominator)
            for k, value in enumerate(values):
                bar.items.append(
                    Item(
                        pitch,
                        value,
                        tie_stop=pitch is not None and (tied_from or k > 0),
                        tie_start=pitch is not None and (k + 1 < len(values) or _goes_on(sounds, pitch, b)),
                        chord=chord if k == 0 else None,
                        offset=offset,
                    )
                )
                offset += value
        bars.append(bar)
    return LeadSheet(resolve_key(melody, key), melody.qpm, bars, melody.program)


def _chord_at(melody: Melody, quarters: Fraction) -> str | None:
    """The chord in force at `quarters` (for a pickup that starts after the first change), or None."""
    spq, label = melody.steps_per_quarter, None
    for step, candidate in melody.chords:
        if Fraction(step, spq) <= quarters:
            label = candidate
    return label


def _sounds(
    notes: list[tuple[int, Fraction, Fraction]], cuts: list[Fraction], begin: Fraction, end: Fraction
) -> list[tuple[int | None, Fraction, Fraction, bool]]:
    """Notes and rests from `begin` to `end` cut at every point of `cuts`: ``(pitch or None, start, end, tied
    from the piece before)``."""
    pieces: list[tuple[int | None, Fraction, Fraction, bool]] = []
    spans: list[tuple[int | None, Fraction, Fraction]] = []
    position = begin
    for note_pitch, start, stop in notes:
        if start > position:
            spans.append((None, position, start))
        spans.append((note_pitch, start, stop))
        position = stop
    if position < end:
        spans.append((None, position, end))
    for pitch, start, stop in spans:
        inner = [c for c in cuts if start < c < stop]
        bounds = [start, *inner, stop]
        for k in range(len(bounds) - 1):
            pieces.append((pitch, bounds[k], bounds[k + 1], pitch is not None and k > 0))
    return pieces


def _goes_on(sounds: list[tuple[int | None, Fraction, Fraction, bool]], pitch: int | None, at: Fraction) -> bool:
    """Whether the piece that starts at `at` continues a note of `pitch` (a tie)."""
    return any(p == pitch and a == at and tied for p, a, _, tied in sounds)


def chord_symbol(label: str, key: KeySignature) -> str | None:
    """A Harte label as a lead sheet writes it (``A:min7`` → ``Am7``, ``G:7/3`` → ``G7/B``, ``N`` → ``N.C.``),
    with roots spelled in `key`; None for a label with no symbol."""
    chord = parse_label(label)
    if chord is None:
        return "N.C." if label == NO_CHORD else None
    root = spelled_pitch_class(chord.root, key)
    text = root + CHORD_SUFFIXES[chord.quality]
    if chord.bass % 12:
        text += "/" + spelled_pitch_class(chord.root + chord.bass, key)
    return text


def spelled_pitch_class(pitch_class: int, key: KeySignature) -> str:
    """A pitch class's name in `key` ("Bb", "F#")."""
    letter, alter, _ = key.spell(60 + pitch_class % 12)
    return letter + ("#" * alter if alter > 0 else "b" * -alter)


#: How each Harte quality is written after the root in a chord symbol.
CHORD_SUFFIXES = {
    "maj": "", "min": "m", "7": "7", "maj7": "maj7", "min7": "m7", "dim": "dim", "dim7": "dim7", "hdim7": "m7b5",
    "aug": "aug", "sus2": "sus2", "sus4": "sus4", "minmaj7": "mM7", "maj6": "6", "min6": "m6", "9": "9",
    "maj9": "maj9", "min9": "m9", "11": "11", "13": "13", "5": "5", "1": "",
}  # fmt: skip


def bar_starts_quarters(melody: Melody) -> list[tuple[Fraction, int, int]]:
    """``(start_quarters, numerator, denominator)`` of each bar the melody spans (for the backing track)."""
    return _bar_lines(melody, max(Fraction(len(melody), melody.steps_per_quarter), SHORTEST))


def beat_quarters(numerator: int, denominator: int) -> Fraction:
    """The beat of a meter in quarter notes: a dotted quarter in 6/8, 9/8, 12/8; else the denominator's value."""
    if denominator == 8 and numerator % 3 == 0 and numerator > 3:
        return Fraction(3, 2)
    return Fraction(4, denominator)


def divisions(sheet: LeadSheet) -> int:
    """MusicXML's divisions per quarter note: the least that writes every item's value as a whole number."""
    return math.lcm(1, *(item.quarters.denominator for bar in sheet.bars for item in bar.items))
