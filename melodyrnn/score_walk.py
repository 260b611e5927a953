"""Walking a music21 stream into notes, meters and tempos in quarter notes: what `melodyrnn.scores` and
`training_data/build.py` share.

`walk` yields every element with its offset; `pickup_origin` and `realign_bars` put bar lines where the score has
them; `tied_notes` merges ties pitch by pitch; `time_signature_map` and `tempo_map` read the maps. music21 is
imported inside each function: it is an optional extra.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

EPS = 1e-6


def walk(container: Any, base: float = 0.0) -> Iterator[tuple[float, Any]]:
    """Yields ``(offset_quarters, element)`` for every non-stream element under `container`, in order.

    Offsets are summed site by site, not read from `flatten()`: music21's ABC reader puts one TimeSignature into
    several measures, and a flattened stream reports every copy at the offset of the last one.
    """
    from music21 import stream

    for element in container:
        offset = base + float(container.elementOffset(element))
        if isinstance(element, stream.Stream):
            yield from walk(element, offset)
        else:
            yield offset, element


def pickup_origin(part: Any) -> tuple[float, float]:
    """Where quarter 0 of the output lies in the part, and the pickup's length in quarter notes.

    A pickup is shifted right by its missing length, so bar lines fall on whole bars: music21's `paddingLeft`, or
    the shortfall of a short first measure.
    """
    measures = list(part.getElementsByClass("Measure"))
    if not measures:
        return 0.0, 0.0
    first = measures[0]
    pickup = float(first.paddingLeft or 0.0)
    if pickup <= EPS and len(measures) > 1:
        bar = float(first.barDuration.quarterLength)
        length = float(first.duration.quarterLength)
        if EPS < length < bar - EPS:
            pickup = bar - length
    return float(part.elementOffset(first)) - pickup, pickup


def realign_bars(measures: list[tuple[float, float]], meters: list[tuple[float, int, int]]) -> int:
    """Re-states the meter where a full measure starts off the bar grid; returns how many were added.

    Sections that open with their own pickup, written bars a note short or long, and repeats played out all move
    the written bar lines off the meter's grid; a time-signature event restarts the grid (in melodyrnn and
    pretty_midi alike), so re-stating the meter at such a bar puts bar lines back where the source has them.

    Args:
        measures: ``(start_quarters, length_quarters)`` of each measure after the first, in order.
        meters: ``(quarters, numerator, denominator)``, sorted, the first at 0; extended in place.
    """
    added = 0
    for start, length in measures:
        i = max(k for k, m in enumerate(meters) if m[0] <= start + EPS)
        since, numerator, denominator = meters[i]
        bar = numerator * 4.0 / denominator
        if abs(length - bar) > EPS:
            continue  # a short or long bar (pickup, split bar, volta ending) is not evidence
        phase = (start - since) / bar
        if abs(phase - round(phase)) * bar > 1e-4:
            meters.insert(i + 1, (round(start, 6), numerator, denominator))
            added += 1
    return added


def tied_notes(walked: list[tuple[float, Any]], facts: Counter, *, top_of_chords: bool) -> list[list]:
    """The notes of a walked part as ``[midi_pitch, start_quarters, end_quarters]``, ties merged, in walk order.

    Grace notes (anything of no length) are dropped. Ties merge pitch by pitch: music21's `stripTies()` also
    merges ties between *different* pitches, which ABC files use as slurs ("f-g").

    Args:
        walked: from `walk`, sorted by offset.
        facts: counts ``grace_notes_dropped``, ``ties_merged`` (and ``chords_reduced``), updated in place.
        top_of_chords: keep only a chord's highest note (a melody); else every note of it (a part).
    """
    from music21 import chord, harmony, note

    raw: list[list] = []
    open_ties: dict[int, int] = {}  # pitch -> index in `raw` of the note whose tie is still open
    for start, element in walked:
        if not isinstance(element, (note.Note, chord.Chord)) or isinstance(element, harmony.Harmony):
            continue
        length = float(element.quarterLength)
        if element.duration.isGrace or length <= EPS:
            facts["grace_notes_dropped"] += 1
            continue
        if isinstance(element, chord.Chord):
            if not element.notes:
                continue
            if top_of_chords:
                top = max(element.notes, key=lambda n: n.pitch.ps)
                sounding = [(top.pitch, element.tie or top.tie)]
                facts["chords_reduced"] += 1
            else:
                sounding = [(n.pitch, n.tie or element.tie) for n in element.notes]
        else:
            sounding = [(element.pitch, element.tie)]
        for pitch, tie in sounding:
            midi = int(round(pitch.ps))
            index = open_ties.pop(midi, None)
            if index is not None and abs(raw[index][2] - start) < EPS:
                raw[index][2] = start + length
                facts["ties_merged"] += 1
            else:
                raw.append([midi, start, start + length])
                index = len(raw) - 1
            if tie is not None and tie.type in ("start", "continue"):
                open_ties[midi] = index
    return raw


def time_signature_map(walked: list[tuple[float, Any]], facts: Counter) -> list[tuple[float, int, int]]:
    """``(quarters, numerator, denominator)`` of each meter change, the first at 0 (4/4, counted as
    ``no_time_signature``, when none is written); meters no bar fits are counted as ``time_signatures_invalid``."""
    from music21 import meter

    meters: dict[float, tuple[int, int]] = {}
    for offset, ts in walked:
        if not isinstance(ts, meter.TimeSignature):
            continue
        numerator, denominator = int(ts.numerator), int(ts.denominator)
        if not (1 <= denominator <= 64 and denominator & (denominator - 1) == 0 and 1 <= numerator <= 255):
            facts["time_signatures_invalid"] += 1
            continue
        meters.setdefault(max(0.0, round(offset, 6)), (numerator, denominator))
    out: list[tuple[float, int, int]] = []
    for offset in sorted(meters):
        if not out or out[-1][1:] != meters[offset]:
            out.append((offset, *meters[offset]))
    if not out:
        facts["no_time_signature"] += 1
        out = [(0.0, 4, 4)]
    out[0] = (0.0, *out[0][1:])
    return out


def tempo_map(walked: list[tuple[float, Any]]) -> list[tuple[float, float]]:
    """``(quarters, qpm)`` of each metronome mark with a number, sorted (text-only marks get an invented one)."""
    from music21 import tempo

    tempos: dict[float, float] = {}
    for offset, mark in walked:
        if not isinstance(mark, tempo.MetronomeMark) or mark.number is None or getattr(mark, "numberImplicit", False):
            continue
        qpm = mark.getQuarterBPM()
        if qpm is None or not 20.0 <= qpm <= 400.0:
            continue
        tempos.setdefault(max(0.0, round(offset, 6)), round(float(qpm), 3))
    return [(offset, tempos[offset]) for offset in sorted(tempos)]
