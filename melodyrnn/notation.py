"""Melodies written as notation: MusicXML (for MuseScore, Sibelius, Finale) and ABC (for folk tune books).

Start at `melody_to_musicxml` and `melody_to_abc`: title, meter, key (given or estimated), tempo, chord symbols
from `Melody.chords`, notes spelled in the key, rests, ties across bar lines and a pickup bar
(`melodyrnn.lead_sheet` lays the bars out). Both are written as plain text here, no extra needed; music21,
abc2midi and MuseScore read them back in the tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import escape

from melodyrnn.backing import check_backing, melody_to_midi_with_backing
from melodyrnn.chords import NO_CHORD, parse_label
from melodyrnn.encoding import Melody
from melodyrnn.errors import NotationError
from melodyrnn.files import atomic_write
from melodyrnn.lead_sheet import (
    TYPE_NAMES,
    Bar,
    Item,
    KeySignature,
    LeadSheet,
    beat_quarters,
    chord_symbol,
    divisions,
    lay_out,
    spelled_pitch_class,
)

__all__ = ["DEFAULT_TITLE", "OUTPUT_FORMATS", "melody_to_abc", "melody_to_musicxml", "parse_formats", "write_melody"]

DEFAULT_TITLE = "Melody"
# MusicXML's <kind> for each Harte quality.
_KINDS = {
    "maj": "major", "min": "minor", "7": "dominant", "maj7": "major-seventh", "min7": "minor-seventh",
    "dim": "diminished", "dim7": "diminished-seventh", "hdim7": "half-diminished", "aug": "augmented",
    "sus2": "suspended-second", "sus4": "suspended-fourth", "minmaj7": "major-minor", "maj6": "major-sixth",
    "min6": "minor-sixth", "9": "dominant-ninth", "maj9": "major-ninth", "min9": "minor-ninth",
    "11": "dominant-11th", "13": "dominant-13th", "5": "power", "1": "pedal",
}  # fmt: skip
_ACCIDENTAL_NAMES = {-2: "flat-flat", -1: "flat", 0: "natural", 1: "sharp", 2: "double-sharp"}
_ABC_ACCIDENTALS = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}
_ABC_MODES = {
    "major": "", "minor": "m", "dorian": "dor", "phrygian": "phr", "lydian": "lyd", "mixolydian": "mix",
    "locrian": "loc",
}  # fmt: skip


class _Accidentals:
    """Which notes of a bar need a written accidental. Readers differ on whether an accidental holds for the same
    letter in other octaves, so one is written wherever either reading would otherwise give another pitch."""

    def __init__(self, key: KeySignature):
        self.key = key
        self.by_octave: dict[tuple[str, int], int] = {}
        self.by_letter: dict[str, int] = {}

    def new_bar(self) -> None:
        self.by_octave.clear()
        self.by_letter.clear()

    def needed(self, letter: str, alter: int, octave: int) -> bool:
        default = self.key.signature_alter(letter)
        shown = self.by_octave.get((letter, octave), default) != alter or self.by_letter.get(letter, default) != alter
        if shown:
            self.by_octave[(letter, octave)] = alter
            self.by_letter[letter] = alter
        return shown


# --------------------------------------------------------------------------------------------------
# MusicXML


def melody_to_musicxml(
    melody: Melody,
    path: str | os.PathLike | None = None,
    *,
    title: str = DEFAULT_TITLE,
    key: str | None = None,
    instrument: str = "Melody",
) -> str:
    """Writes a melody as a MusicXML 4.0 lead sheet (one part, chord symbols above the staff).

    Args:
        melody: what to write; its chords become `<harmony>` chord symbols, its first tempo the metronome mark.
        path: optional file to write (UTF-8).
        title: the work title.
        key: the key, e.g. "D major", "Eb minor", "A dorian"; None estimates it from the notes.
        instrument: the part name.

    Returns:
        The MusicXML text.

    Raises:
        NotationError: a value that needs tuplets (a melody on a triplet grid).
        MelodyRNNError: a bad `key`.
    """
    sheet = lay_out(melody, key)
    per_quarter = divisions(sheet)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 4.0 Partwise//EN" '
        '"http://www.musicxml.org/dtds/partwise.dtd">',
        '<score-partwise version="4.0">',
        f"  <work><work-title>{escape(title)}</work-title></work>",
        "  <identification><encoding><software>melodyrnn</software></encoding></identification>",
        '  <part-list><score-part id="P1">',
        f"    <part-name>{escape(instrument)}</part-name>",
        f'    <score-instrument id="P1-I1"><instrument-name>{escape(instrument)}</instrument-name></score-instrument>',
        f'    <midi-instrument id="P1-I1"><midi-channel>1</midi-channel><midi-program>{sheet.program + 1}'
        "</midi-program></midi-instrument>",
        "  </score-part></part-list>",
        '  <part id="P1">',
    ]
    pitches = [item.pitch for bar in sheet.bars for item in bar.items if item.pitch is not None]
    bass_clef = bool(pitches) and sorted(pitches)[len(pitches) // 2] < 55
    accidentals = _Accidentals(sheet.key)
    number = 0 if sheet.bars[0].pickup else 1
    for i, bar in enumerate(sheet.bars):
        implicit = ' implicit="yes"' if bar.pickup else ""
        lines.append(f'    <measure number="{number + i}"{implicit}>')
        previous = sheet.bars[i - 1] if i else None
        if previous is None or (previous.numerator, previous.denominator) != (bar.numerator, bar.denominator):
            lines.append(_attributes(sheet, bar, per_quarter, first=previous is None, bass_clef=bass_clef))
        if i == 0:
            qpm = f"{sheet.qpm:.6g}"
            lines.append(
                '      <direction placement="above"><direction-type><metronome><beat-unit>quarter</beat-unit>'
                f'<per-minute>{qpm}</per-minute></metronome></direction-type><sound tempo="{qpm}"/></direction>'
            )
        accidentals.new_bar()
        for item in bar.items:
            if item.chord is not None:
                lines.append(_harmony(item.chord, sheet.key))
            lines.append(_note(item, per_quarter, sheet.key, accidentals))
        if i == len(sheet.bars) - 1:
            lines.append('      <barline location="right"><bar-style>light-heavy</bar-style></barline>')
        lines.append("    </measure>")
    lines += ["  </part>", "</score-partwise>", ""]
    text = "\n".join(lines)
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return text


def _attributes(sheet: LeadSheet, bar: Bar, per_quarter: int, *, first: bool, bass_clef: bool) -> str:
    time = f"<time><beats>{bar.numerator}</beats><beat-type>{bar.denominator}</beat-type></time>"
    if not first:
        return f"      <attributes>{time}</attributes>"
    clef = "<clef><sign>F</sign><line>4</line></clef>" if bass_clef else "<clef><sign>G</sign><line>2</line></clef>"
    key = f"<key><fifths>{sheet.key.fifths}</fifths><mode>{sheet.key.mode}</mode></key>"
    return f"      <attributes><divisions>{per_quarter}</divisions>{key}{time}{clef}</attributes>"


def _harmony(label: str, key: KeySignature) -> str:
    chord = parse_label(label)
    if chord is None:
        return '      <harmony><root><root-step>C</root-step></root><kind text="N.C.">none</kind></harmony>'
    parts = ["      <harmony>", _step_alter("root", spelled_pitch_class(chord.root, key))]
    symbol = chord_symbol(label, key) or ""
    suffix = symbol[len(spelled_pitch_class(chord.root, key)) :].split("/")[0]
    parts.append(f'<kind text="{escape(suffix)}">{_KINDS[chord.quality]}</kind>')
    if chord.bass % 12:
        parts.append(_step_alter("bass", spelled_pitch_class(chord.root + chord.bass, key)))
    return "".join(parts) + "</harmony>"


def _step_alter(role: str, name: str) -> str:
    alter = name[1:].count("#") - name[1:].count("b")
    text = f"<{role}><{role}-step>{name[0]}</{role}-step>"
    return text + (f"<{role}-alter>{alter}</{role}-alter>" if alter else "") + f"</{role}>"


def _note(item: Item, per_quarter: int, key: KeySignature, accidentals: _Accidentals) -> str:
    base, dots = _base_and_dots(item.quarters)
    duration = f"<duration>{int(item.quarters * per_quarter)}</duration>"
    ties = ('<tie type="stop"/>' if item.tie_stop else "") + ('<tie type="start"/>' if item.tie_start else "")
    notations = ('<tied type="stop"/>' if item.tie_stop else "") + ('<tied type="start"/>' if item.tie_start else "")
    shape = f"<voice>1</voice><type>{TYPE_NAMES[base]}</type>" + "<dot/>" * dots
    if item.pitch is None:
        return f"      <note><rest/>{duration}{shape}</note>"
    letter, alter, octave = key.spell(item.pitch)
    pitch = (
        f"<pitch><step>{letter}</step>" + (f"<alter>{alter}</alter>" if alter else "") + f"<octave>{octave}</octave>"
    )
    shown = f"<accidental>{_ACCIDENTAL_NAMES[alter]}</accidental>" if accidentals.needed(letter, alter, octave) else ""
    tail = f"<notations>{notations}</notations>" if notations else ""
    return f"      <note>{pitch}</pitch>{duration}{ties}{shape}{shown}{tail}</note>"


def _base_and_dots(quarters: Fraction) -> tuple[Fraction, int]:
    """A notatable value as its undotted value and number of dots (0.75 → (0.5, 1))."""
    for dots in range(3):
        base = quarters / (2 - Fraction(1, 2**dots))
        if base in TYPE_NAMES:
            return base, dots
    raise AssertionError(f"{quarters} is not a notatable value")  # lay_out only makes notatable values


# --------------------------------------------------------------------------------------------------
# ABC

#: ABC's unit note length (``L:``), in quarter notes: an eighth, as most tune books use.
ABC_UNIT = Fraction(1, 2)
BARS_PER_LINE = 4


def melody_to_abc(
    melodies: Melody | Sequence[Melody],
    path: str | os.PathLike | None = None,
    *,
    title: str | Sequence[str] = DEFAULT_TITLE,
    key: str | None = None,
) -> str:
    """Writes one melody as an ABC tune, or several as a tune book (tunes ``X:1``, ``X:2``, ...).

    Each tune has the header fields X (number), T (title), M (meter), L (unit length: an eighth), Q (tempo in
    quarter notes), K (key, given or estimated per melody), then its bars: chord symbols in quotes ("Am7"), notes
    spelled in the key with accidentals as a bar needs them, rests (z), ties (-) across bar lines, a pickup bar
    when the melody opens off the beat, four bars to a line, and ``|]`` at the end.

    Args:
        melodies: a melody, or several for a tune book.
        path: optional file to write (UTF-8).
        title: the title, or one per melody; with one title and several melodies each is numbered
            ("Melody 1", "Melody 2", ...).
        key: as for `melody_to_musicxml`, for every tune.

    Returns:
        The ABC text.

    Raises:
        NotationError: no melodies, titles that do not match them, or a value that needs tuplets.
        MelodyRNNError: a bad `key`.
    """
    tunes = [melodies] if isinstance(melodies, Melody) else list(melodies)
    if not tunes or not all(isinstance(m, Melody) for m in tunes):
        raise NotationError("`melodies` must be a Melody or a non-empty sequence of Melody objects")
    if isinstance(title, str):
        titles = [title] if len(tunes) == 1 else [f"{title} {i + 1}" for i in range(len(tunes))]
    else:
        titles = list(title)
        if len(titles) != len(tunes):
            raise NotationError(f"`title` must give one title per melody ({len(tunes)}), got {len(titles)}")
    text = "\n".join(_abc_tune(m, i + 1, t, key) for i, (m, t) in enumerate(zip(tunes, titles)))
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return text


def _abc_tune(melody: Melody, number: int, title: str, key: str | None) -> str:
    sheet = lay_out(melody, key)
    first = sheet.bars[0]
    mode = _ABC_MODES[sheet.key.mode]
    header = [
        f"X:{number}",
        f"T:{' '.join(title.split()) or DEFAULT_TITLE}",
        f"M:{first.numerator}/{first.denominator}",
        f"L:{ABC_UNIT.numerator}/{ABC_UNIT.denominator * 4}",
        f"Q:1/4={sheet.qpm:.6g}",
        f"K:{sheet.key.tonic}{mode}",
    ]
    accidentals = _Accidentals(sheet.key)
    lines, line = [], ""
    meter = (first.numerator, first.denominator)
    for i, bar in enumerate(sheet.bars):
        if (bar.numerator, bar.denominator) != meter:
            meter = (bar.numerator, bar.denominator)
            line += f"[M:{bar.numerator}/{bar.denominator}] "
        accidentals.new_bar()
        line += _abc_bar(bar, sheet.key, accidentals)
        line += " |]" if i == len(sheet.bars) - 1 else " |"
        if (i + 1 - first.pickup) % BARS_PER_LINE == 0 and i + 1 > first.pickup or i == len(sheet.bars) - 1:
            lines.append(line)
            line = ""
        else:
            line += " "
    return "\n".join(header + lines) + "\n"


def _abc_bar(bar: Bar, key: KeySignature, accidentals: _Accidentals) -> str:
    beat = beat_quarters(bar.numerator, bar.denominator)
    offset_shift = bar.full_quarters - bar.quarters if bar.pickup else Fraction(0)
    text = ""
    for k, item in enumerate(bar.items):
        # a space between beats breaks the beams there, as a printed part groups them
        if k and (item.offset + offset_shift) % beat == 0:
            text += " "
        if item.chord is not None:
            symbol = "N.C." if item.chord == NO_CHORD else chord_symbol(item.chord, key)
            if symbol is not None:
                text += f'"{symbol}"'
        length = _abc_length(item.quarters)
        if item.pitch is None:
            text += "z" + length
            continue
        letter, alter, octave = key.spell(item.pitch)
        text += (_ABC_ACCIDENTALS[alter] if accidentals.needed(letter, alter, octave) else "") + _abc_pitch(
            letter, octave
        )
        text += length + ("-" if item.tie_start else "")
    return text


def _abc_pitch(letter: str, octave: int) -> str:
    """A letter in an octave (C4 = middle C) as ABC writes it: C, c, c', C,."""
    if octave >= 5:
        return letter.lower() + "'" * (octave - 5)
    return letter + "," * (4 - octave)


def _abc_length(quarters: Fraction) -> str:
    units = quarters / ABC_UNIT
    if units == 1:
        return ""
    if units.denominator == 1:
        return str(units.numerator)
    return (str(units.numerator) if units.numerator != 1 else "") + f"/{units.denominator}"


# --------------------------------------------------------------------------------------------------
# Files in several formats

#: What `write_melody` writes, and each format's file suffix.
OUTPUT_FORMATS = {"mid": ".mid", "musicxml": ".musicxml", "abc": ".abc"}
_FORMAT_ALIASES = {"midi": "mid", "xml": "musicxml", "mxl": "musicxml"}


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """Output formats from ``"mid,musicxml,abc"`` or a sequence of names, in order, without repeats.

    Raises:
        NotationError: an unknown or empty list of formats.
    """
    names = [n for n in formats.split(",") if n.strip()] if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise NotationError(f"`format` names must be strings, got {name!r}")
        canonical = _FORMAT_ALIASES.get(name.strip().lower(), name.strip().lower())
        if canonical not in OUTPUT_FORMATS:
            raise NotationError(f"unknown output format {name!r}: choose from {', '.join(OUTPUT_FORMATS)}")
        if canonical not in out:
            out.append(canonical)
    if not out:
        raise NotationError(f"`format` must name at least one of {', '.join(OUTPUT_FORMATS)}, got {formats!r}")
    return tuple(out)


def write_melody(
    melody: Melody,
    stem: str | os.PathLike,
    formats: str | Sequence[str] = ("mid",),
    *,
    backing: str = "none",
    title: str = DEFAULT_TITLE,
    key: str | None = None,
) -> list[Path]:
    """Writes one melody as `stem` + ".mid" / ".musicxml" / ".abc", one file per format, atomically.

    Args:
        melody: what to write.
        stem: the path without its suffix.
        formats: see `parse_formats`.
        backing: the MIDI file's backing (`melodyrnn.backing.BACKING_STYLES`); none without chords.
        title, key: for the notation.

    Returns:
        The paths written, in the order of `formats`.

    Raises:
        NotationError: an unknown format or backing style, or a melody that needs tuplets.
    """
    check_backing(backing)
    paths = []
    for name in parse_formats(formats):
        path = Path(os.fspath(stem) + OUTPUT_FORMATS[name])
        data: bytes
        if name == "mid":
            data = melody_to_midi_with_backing(melody, backing=backing)
        elif name == "musicxml":
            data = melody_to_musicxml(melody, title=title, key=key).encode()
        else:
            data = melody_to_abc(melody, title=title, key=key).encode()
        atomic_write(path, _writer(data))
        paths.append(path)
    return paths


def _writer(data: bytes) -> Callable[[BinaryIO], object]:
    return lambda f: f.write(data)
