"""A backing track from a melody's chords: the chords on a second instrument in a pattern, a bass line on the roots.

Start at `melody_to_midi_with_backing` (MIDI bytes: the melody, then the chords and the bass, each on its own
channel and program) or `backing_tracks` for the two `Track`s. Styles (`BACKING_STYLES`): "block" (the chord
struck at each bar and change and held), "arpeggio" (its tones in eighth notes, up and down), "waltz" (bass on the
downbeat, chords on the other beats: oom-pah-pah in 3/4, oom-pah in 4/4 and 6/8). A melody without chords gets
no backing: nothing is invented.
"""

from __future__ import annotations

import os
from fractions import Fraction

from melodyrnn.chords import QUALITY_TONES, parse_label
from melodyrnn.configs import check, is_int
from melodyrnn.encoding import Melody, melody_to_score
from melodyrnn.errors import NotationError
from melodyrnn.lead_sheet import bar_starts_quarters, beat_quarters
from melodyrnn.midi_io import Note, Track, score_to_midi

__all__ = ["BACKING_STYLES", "backing_tracks", "has_chords", "melody_to_midi_with_backing"]

BACKING_STYLES = ("none", "block", "arpeggio", "waltz")
#: General MIDI programs of the backing: acoustic grand piano for the chords, acoustic bass for the bass line.
CHORD_PROGRAM, BASS_PROGRAM = 0, 32
_CHORD_FLOOR, _BASS_FLOOR = 48, 36  # the chords voiced from C3 up, the bass from C2 up
_ARPEGGIO_NOTE = Fraction(1, 2)  # quarters: eighth notes


def check_backing(style: str) -> str:
    """`style` if it is one of `BACKING_STYLES`. Raises `NotationError` otherwise."""
    if style not in BACKING_STYLES:
        raise NotationError(f"`backing` must be one of {', '.join(BACKING_STYLES)}, got {style!r}")
    return style


def has_chords(melody: Melody) -> bool:
    """Whether `melody` carries chords to back (any label but ``N``)."""
    return any(label != "N" for _, label in melody.chords)


def backing_tracks(
    melody: Melody,
    style: str = "block",
    *,
    chord_program: int = CHORD_PROGRAM,
    bass_program: int = BASS_PROGRAM,
    velocity: int | None = None,
) -> list[Track]:
    """The backing of `melody`'s chords: ``[chords, bass]`` tracks, or ``[]`` for style "none" or a melody
    without chords. Positions are the melody's own (quarters from its step 0), so the backing lines up with it.

    Args:
        melody: the melody; its `chords` are played, each until the next change or the melody's end.
        style: one of `BACKING_STYLES`.
        chord_program, bass_program: General MIDI programs (0-127).
        velocity: the melody's loudness the backing is set under (default: the melody's).

    Raises:
        NotationError: an unknown style.
        MelodyRNNError: a program outside 0-127.
    """
    check_backing(style)
    for name, value in (("chord_program", chord_program), ("bass_program", bass_program)):
        check(is_int(value) and 0 <= value <= 127, f"`{name}` must be an integer in [0, 127], got {value!r}")
    if style == "none" or not has_chords(melody):
        return []
    loudness = melody.velocity if velocity is None else velocity
    chord_velocity, bass_velocity = max(1, loudness * 55 // 100), max(1, loudness * 70 // 100)
    chord_notes: list[Note] = []
    bass_notes: list[Note] = []
    for start, end, label, beats in _segments(melody):
        chord = parse_label(label)
        if chord is None:
            continue
        tones = [_CHORD_FLOOR + chord.root + i for i in QUALITY_TONES[chord.quality]]
        bass = _BASS_FLOOR + (chord.root + chord.bass) % 12
        fifth = _BASS_FLOOR + (chord.root + 7) % 12
        if style == "block":
            chord_notes += [Note(p, chord_velocity, float(start), float(end)) for p in tones]
            bass_notes.append(Note(bass, bass_velocity, float(start), float(end)))
        elif style == "arpeggio":
            cycle = tones + [tones[0] + 12] + tones[-1:0:-1]
            position, k = start, 0
            while position < end:
                stop = min(position + _ARPEGGIO_NOTE, end)
                chord_notes.append(Note(cycle[k % len(cycle)], chord_velocity, float(position), float(stop)))
                position, k = stop, k + 1
            bass_notes.append(Note(bass, bass_velocity, float(start), float(end)))
        else:  # waltz: the bass on the strong beats (root, then fifth), the chord on the others
            for a, b, index, count in beats:
                strong = index == 0 or (count % 2 == 0 and index % 2 == 0)
                if strong:
                    pitch = bass if index == 0 or (index // 2) % 2 == 0 else fifth
                    bass_notes.append(Note(pitch, bass_velocity, float(a), float(b)))
                else:
                    short = a + (b - a) * Fraction(3, 4)  # detached, so the pattern is heard
                    chord_notes += [Note(p, chord_velocity, float(a), float(short)) for p in tones]
    order = lambda n: (n.start_quarters, n.pitch)  # noqa: E731
    return [
        Track(sorted(chord_notes, key=order), program=chord_program, name="chords"),
        Track(sorted(bass_notes, key=order), program=bass_program, name="bass"),
    ]


def _segments(melody: Melody) -> list[tuple[Fraction, Fraction, str, list[tuple[Fraction, Fraction, int, int]]]]:
    """Each chord's time cut at bar lines: ``(start, end, label, beats)`` in quarters, where `beats` lists the
    segment's beats as ``(start, end, index in the bar, beats in the bar)``; a change off the beat starts one."""
    spq = melody.steps_per_quarter
    end = Fraction(len(melody), spq)
    changes = [(Fraction(s, spq), label) for s, label in melody.chords]
    bars = bar_starts_quarters(melody)
    bounds = [start for start, _, _ in bars] + [end]
    out = []
    for i, (chord_start, label) in enumerate(changes):
        chord_end = changes[i + 1][0] if i + 1 < len(changes) else end
        for k, (bar_start, numerator, denominator) in enumerate(bars):
            bar_end = min(bounds[k + 1], bar_start + Fraction(4 * numerator, denominator))
            a, b = max(chord_start, bar_start), min(chord_end, bar_end)
            if a >= b:
                continue
            beat = beat_quarters(numerator, denominator)
            count = max(1, int((bar_end - bar_start) / beat))
            beats = []
            for index in range(count):
                lo, hi = max(a, bar_start + index * beat), min(b, bar_start + (index + 1) * beat)
                if lo < hi:
                    beats.append((lo, hi, index, count))
            out.append((a, b, label, beats))
    return out


def melody_to_midi_with_backing(
    melody: Melody,
    path: str | os.PathLike | None = None,
    *,
    backing: str = "block",
    chord_program: int = CHORD_PROGRAM,
    bass_program: int = BASS_PROGRAM,
    **overrides,
) -> bytes:
    """Writes the melody and its backing as one MIDI file: the melody on channel 1 (its own program), the chords
    on channel 2, the bass on channel 3. With style "none" or no chords it is the melody alone.

    Args:
        melody: what to write.
        path: optional file to write.
        backing: one of `BACKING_STYLES`.
        chord_program, bass_program: the backing's General MIDI programs.
        **overrides: `melody_to_midi`'s ``qpm``, ``time_signature``, ``program``, ``velocity``.

    Returns:
        The MIDI file's bytes.

    Raises:
        NotationError: an unknown style.
        MelodyRNNError: a bad override or program.
    """
    score = melody_to_score(melody, **overrides)
    score.tracks += backing_tracks(
        melody, backing, chord_program=chord_program, bass_program=bass_program, velocity=overrides.get("velocity")
    )
    data = score_to_midi(score)
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    return data
