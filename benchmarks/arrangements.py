"""Song-like multi-track arrangements around a known melody, for measuring melody-track choice and chord reading.

Start at `build_arrangements` (training_data/ files → `Arrangement`s, balanced over kinds, namings and registers)
or `arrange` (one melody `Score` → one `Arrangement`). Each arrangement knows which track is the melody and the
chords its accompaniment plays (Harte labels, one per bar, from `harmonize_bars`). numpy and melodyrnn only, so
benchmarks and tests can both use it (tests put benchmarks/ on ``sys.path``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melodyrnn.midi_io import Note, Score, Track, read_midi, score_to_midi

#: Kinds of arrangement: which parts play beside the melody.
KINDS = ("folk", "band", "piano", "counter", "arpeggio", "full")
#: Harder kinds, asked for by name (`build_arrangements(kinds=...)`): "pop" — a melody that breathes, a stepwise
#: counter-melody that answers it, a walking bass, a one-bar riff, piano chords and drums; "descant" — a stepwise
#: counter-melody *above* the melody, with chords and bass.
HARD_KINDS = ("pop", "descant")
#: How tracks are named: truthfully, with names that point at the wrong track, or not at all.
NAMINGS = ("honest", "misleading", "missing")
#: "low" puts the melody below the chords (an octave or two down, the accompaniment moved up).
REGISTERS = ("normal", "low")

# Major-scale degrees and the triad quality on each (vii° is left out: a folk harmonisation rarely needs it).
_DEGREES = ((0, "maj"), (2, "min"), (4, "min"), (5, "maj"), (7, "maj"), (9, "min"))
# A small preference for I, IV, V, then vi, so ambiguous bars get the chord a player would choose.
_PRIOR = (0.30, 0.05, 0.0, 0.20, 0.25, 0.10)
_TRIAD = {"maj": (0, 4, 7), "min": (0, 3, 7)}
_ROOT_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

_HONEST = {
    "melody": ("Melody", "Vocal", "Lead Vocal", "Voice", "Lead", "Solo", "Melodie", "Melodía", "Canto", "Tune"),
    "chords": ("Chords", "Comping", "Rhythm Guitar", "Accompaniment"),
    "bass": ("Bass", "Bass Guitar", "Fretless Bass"),
    "pad": ("Pad", "Warm Pad", "Synth Pad"),
    "strings": ("Strings", "String Ensemble"),
    "drums": ("Drums", "Percussion", "Drum Kit"),
    "piano_lh": ("Piano LH", "Piano Left"),
    "piano_rh": ("Piano RH", "Piano Right"),
    "counter": ("Counter Melody", "Backing Vocals", "Harmony", "Fills"),
    "arpeggio": ("Arpeggio", "Harp", "Arp"),
    "guitar": ("Guitar", "Acoustic Guitar", "Strum"),
    "line_counter": ("Counter Melody", "Backing Vocals", "String Line", "Oohs"),
    "descant": ("Descant", "Obbligato", "Counter Melody"),
    "walking_bass": ("Bass", "Upright Bass", "Walking Bass"),
    "riff": ("Riff", "Synth Hook", "Guitar Riff"),
}
# Names that lie: the melody gets an accompaniment's name, and some accompaniment gets a melody's name.
_MELODY_LIES = ("Piano", "Strings", "Chords", "Accomp", "Pad", "Track 2")
_ACCOMPANIMENT_LIES = ("Melody", "Lead", "Vocal", "Voice", "Solo")
# (lowest, highest) GM program per role when the program follows the part's family.
_PROGRAMS = {
    "chords": (0, 7), "bass": (32, 39), "pad": (88, 95), "strings": (48, 51), "piano_lh": (0, 1),
    "piano_rh": (0, 1), "counter": (40, 79), "arpeggio": (24, 47), "guitar": (24, 31), "line_counter": (40, 79),
    "descant": (56, 79), "walking_bass": (32, 35), "riff": (24, 87),
}  # fmt: skip
# The parts of each kind besides the melody; "full" draws 4-10 of the pool (and maybe one more counter-melody).
_PARTS = {
    "folk": ("chords", "bass"),
    "band": ("chords", "bass", "drums", "pad"),
    "piano": ("piano_lh", "piano_rh"),
    "counter": ("counter", "piano_rh", "piano_lh", "bass", "drums"),
    "arpeggio": ("arpeggio", "bass", "pad"),
    "pop": ("line_counter", "walking_bass", "riff", "piano_rh", "drums"),
    "descant": ("descant", "chords", "bass"),
}
_POOL = ("chords", "bass", "drums", "pad", "strings", "piano_lh", "piano_rh", "counter", "arpeggio", "guitar")


@dataclass(frozen=True)
class Arrangement:
    """A multi-track score whose melody track and chords are known.

    Attributes:
        score: the arrangement; `midi` writes it. Every track holds notes, so `read_midi` gives back the tracks
            in this order (track ``i`` of `score` is track ``i`` of the score read from `midi`).
        melody_track: index in `score.tracks` of the melody.
        chords: ``(start_quarters, end_quarters, label)`` per bar, labels in Harte syntax (``C:maj``, ``A:min``),
            covering the whole piece from 0.
        roles: one role per track ("melody", "chords", "bass", "drums", ...).
        kind, naming, register: which of `KINDS`, `NAMINGS`, `REGISTERS` built it.
        source: the melody file.
        seed: the seed it was built from (same seed, same melody → same arrangement).
    """

    score: Score
    melody_track: int
    chords: tuple[tuple[float, float, str], ...]
    roles: tuple[str, ...]
    kind: str
    naming: str
    register: str
    source: str
    seed: int

    @property
    def midi(self) -> bytes:
        """The arrangement as a type-1 standard MIDI file."""
        return score_to_midi(self.score)

    def chords_at(self, quarters: Sequence[float] | np.ndarray) -> list[str]:
        """The chord label sounding at each position (quarter notes); "N" past the end."""
        starts = np.array([c[0] for c in self.chords])
        q = np.asarray(quarters, dtype=np.float64)
        i = np.searchsorted(starts, q, side="right") - 1
        end = self.chords[-1][1] if self.chords else 0.0
        return [self.chords[k][2] if k >= 0 and x < end else "N" for k, x in zip(i.tolist(), q.tolist())]

    def chord_labels(self, steps_per_quarter: int = 4) -> list[str]:
        """The chord label per step of the grid, from step 0 to the end of the last chord."""
        end = self.chords[-1][1] if self.chords else 0.0
        return self.chords_at(np.arange(int(round(end * steps_per_quarter))) / steps_per_quarter)


def bar_grid(
    time_signatures: Sequence[tuple[float, int, int]], end_quarters: float
) -> list[tuple[float, float, float]]:
    """``(start, end, beat)`` in quarter notes per bar up to `end_quarters` (the last bar may run past it).

    A meter change restarts the bar lines where it occurs; compound meters (6/8, 9/8, 12/8) beat in dotted
    quarters, the others in their denominator.
    """
    bars: list[tuple[float, float, float]] = []
    for i, (start, numerator, denominator) in enumerate(time_signatures):
        seg_end = time_signatures[i + 1][0] if i + 1 < len(time_signatures) else math.inf
        length = numerator * 4.0 / denominator
        beat = 1.5 if denominator == 8 and numerator % 3 == 0 else 4.0 / denominator
        q = start
        while q < min(seg_end, end_quarters) - 1e-9:
            bars.append((q, min(q + length, seg_end), beat))  # a meter change cuts a bar short
            q += length
    return bars or [(0.0, 4.0, 1.0)]


def _key_tonic(notes: Sequence[Note]) -> int:
    """The major key (tonic pitch class) whose scale holds the most melody duration; ties go to the last note."""
    weight = np.zeros(12)
    for n in notes:
        weight[n.pitch % 12] += n.end_quarters - n.start_quarters
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    fit = np.array([weight[(t + scale) % 12].sum() for t in range(12)])
    best = np.flatnonzero(fit >= fit.max() - 1e-9)
    last = notes[-1].pitch % 12 if notes else 0
    # Among equal fits, the key whose tonic or relative-minor tonic ends the tune.
    for t in best:
        if last in (t, (t + 9) % 12):
            return int(t)
    return int(best[0])


def harmonize_bars(notes: Sequence[Note], bars: Sequence[tuple[float, float, float]]) -> list[tuple[int, str]]:
    """One diatonic triad per bar: the one whose tones cover most of the bar's melody (downbeats count double).

    Args:
        notes: the melody, positions in quarter notes.
        bars: from `bar_grid`.

    Returns:
        ``(root pitch class, quality)`` per bar, quality "maj" or "min"; a bar without melody keeps the
        previous bar's chord (the first bars the tonic's).
    """
    tonic = _key_tonic(notes)
    starts = np.array([n.start_quarters for n in notes])
    ends = np.array([n.end_quarters for n in notes])
    pcs = np.array([n.pitch % 12 for n in notes])
    chords: list[tuple[int, str]] = []
    previous = (tonic, "maj")
    for bar_start, bar_end, beat in bars:
        overlap = np.clip(np.minimum(ends, bar_end) - np.maximum(starts, bar_start), 0, None)
        on_beat = np.isclose(((starts - bar_start) / beat) % 1.0, 0.0) & (overlap > 0)
        weight = overlap * (1.0 + on_beat)
        if weight.sum() <= 0:
            chords.append(previous)
            continue
        scores = []
        for (degree, quality), prior in zip(_DEGREES, _PRIOR):
            tones = {(tonic + degree + i) % 12 for i in _TRIAD[quality]}
            inside = weight[np.isin(pcs, list(tones))].sum()
            scores.append(inside - 0.5 * (weight.sum() - inside) + prior * (bar_end - bar_start) / 4.0)
        degree, quality = _DEGREES[int(np.argmax(scores))]
        previous = ((tonic + degree) % 12, quality)
        chords.append(previous)
    return chords


def harte(root: int, quality: str) -> str:
    """A Harte chord label, e.g. ``harte(9, "min") == "A:min"``."""
    return f"{_ROOT_NAMES[root % 12]}:{quality}"


def _voicing(root: int, quality: str, center: int, size: int = 3) -> list[int]:
    """Close-position chord tones (`size` of them, the root doubled above for 4) nearest to `center`."""
    tones = [root + i for i in _TRIAD[quality]] + [root + 12]
    base = center - 6 - ((center - 6 - root) % 12)  # the root at or just below center - 6
    return [base + (t - root) for t in tones[:size]]


def _span(start: float, end: float, pitches: Sequence[int], velocity: int, legato: float = 0.92) -> list[Note]:
    return [Note(int(p), velocity, start, start + (end - start) * legato) for p in pitches]


def _part_notes(role: str, bars, chords, melody: Sequence[Note], center: int, rng: np.random.Generator) -> list[Note]:
    """The notes of one accompaniment part over the whole piece (`center`: the chords' middle pitch)."""
    notes: list[Note] = []
    velocity = int(rng.integers(50, 90))
    eighths = rng.random() < 0.5
    melody_median = int(np.median([n.pitch for n in melody]))
    for (start, end, beat), (root, quality) in zip(bars, chords):
        beats = np.arange(start, end - 1e-9, beat)
        if role in ("chords", "piano_rh", "guitar"):
            for b in beats:
                notes += _span(
                    b, min(b + beat, end), _voicing(root, quality, center + (role == "guitar") * -5), velocity
                )
        elif role in ("pad", "strings"):
            notes += _span(start, end, _voicing(root, quality, center - 3, 4), velocity, legato=1.0)
        elif role == "bass":
            low = 28 + (root - 4) % 12  # E1..D#2
            for k, b in enumerate(beats):
                pitch = low + (7 if eighths and k % 2 else 0)
                notes += _span(b, min(b + beat, end), [pitch], velocity + 10)
        elif role == "piano_lh":
            tones = _voicing(root, quality, center - 12)
            pattern = [tones[0], tones[2], tones[1], tones[2]]  # an Alberti-like broken chord
            for k, q in enumerate(np.arange(start, end - 1e-9, beat / 2)):
                notes += _span(q, min(q + beat / 2, end), [pattern[k % 4]], velocity)
        elif role == "arpeggio":
            tones = _voicing(root, quality, center, 4)
            step = beat / (4 if eighths else 2)
            order = tones + tones[-2:0:-1]
            for k, q in enumerate(np.arange(start, end - 1e-9, step)):
                notes += _span(q, min(q + step, end), [order[k % len(order)]], velocity)
        elif role == "drums":
            hit = min(0.25, beat / 2)  # short beats (x/16 meters) get shorter hits
            for k, b in enumerate(beats):
                notes += _span(b, b + hit, [36 if k % 2 == 0 else 38], velocity + 20)
                notes += _span(b, b + hit, [42], velocity)
                if b + beat <= end + 1e-9:  # no off-beat hat in a bar a meter change cut short
                    notes += _span(b + beat / 2, b + beat / 2 + hit, [42], velocity - 10)
        elif role == "counter":
            notes += _counter_bar(start, end, beat, root, quality, melody, melody_median, velocity)
    if role in ("line_counter", "descant", "walking_bass", "riff"):
        notes += _line_part(role, bars, chords, melody, rng, velocity)
    return notes


def _scale_step(pitch: int, steps: int, tonic: int) -> int:
    """`pitch` moved by `steps` degrees of the major scale on `tonic` (snapped into the scale first)."""
    scale = [p for p in range(pitch - 24, pitch + 25) if (p - tonic) % 12 in (0, 2, 4, 5, 7, 9, 11)]
    i = int(np.argmin([abs(p - pitch) for p in scale]))
    return scale[i + steps]


def _line_part(role: str, bars, chords, melody: Sequence[Note], rng: np.random.Generator, velocity: int) -> list[Note]:
    """Stepwise lines: a counter-melody (below) or descant (above) that moves in eighths where the melody rests
    and holds chord tones where it moves; a walking bass; a one-bar riff on each chord's root."""
    tonic, median = _key_tonic(melody), int(np.median([n.pitch for n in melody]))
    onsets = np.array([n.start_quarters for n in melody])
    notes: list[Note] = []
    pitch = {"line_counter": median - 5, "descant": median + 7, "walking_bass": 40, "riff": median - 3}[role]
    motif = [0, 1, 2, 1, 0, -1, 0, 2][: int(rng.choice([4, 6, 8]))]
    for k, ((start, end, beat), (root, quality)) in enumerate(zip(bars, chords)):
        tones = [(root + i) % 12 for i in _TRIAD[quality]]
        if role == "walking_bass":
            next_root = chords[k + 1][0] if k + 1 < len(chords) else root
            low = 40 + (root - 4) % 12  # the root, in E2-Eb3
            beats = np.arange(start, end - 1e-9, beat)
            line = [low] + [_scale_step(low, j, tonic) for j in range(1, len(beats))]
            if len(beats) > 1:
                line[-1] = 40 + (next_root - 4) % 12 - 1  # a chromatic approach to the next root
            notes += [n for b, p in zip(beats, line) for n in _span(b, min(b + beat, end), [p], velocity + 10)]
        elif role == "riff":
            base = pitch - ((pitch - root) % 12)
            step = 0.5 if beat >= 1 else beat
            for j, q in enumerate(np.arange(start, end - 1e-9, step)):
                notes += _span(q, min(q + step, end), [_scale_step(base, motif[j % len(motif)], tonic)], velocity)
        else:
            half = (end - start) / 2 if end - start >= 2 else end - start
            for h in np.arange(start, end - 1e-9, half):
                pitch = min((p for p in range(pitch - 6, pitch + 7) if p % 12 in tones), key=lambda p: abs(p - pitch))
                if ((onsets >= h - 1e-9) & (onsets < h + half - 1e-9)).any():
                    notes += _span(h, min(h + half, end), [pitch], velocity)
                    continue
                direction = 1 if rng.random() < 0.5 else -1
                for j, q in enumerate(np.arange(h, min(h + half, end) - 1e-9, 0.5)):
                    notes += _span(q, min(q + 0.5, end), [_scale_step(pitch, direction * j, tonic)], velocity + 5)
    return notes


def _counter_bar(start, end, beat, root, quality, melody, melody_median, velocity) -> list[Note]:
    """A counter-melody bar: runs of chord tones where the melody rests or holds, one long tone where it moves."""
    tones = sorted(_voicing(root, quality, melody_median - 7, 4))
    onsets = [n.start_quarters for n in melody if start - 1e-9 <= n.start_quarters < end - 1e-9]
    sounding = [(n.start_quarters, n.end_quarters) for n in melody if n.start_quarters < end and n.end_quarters > start]
    notes: list[Note] = []
    busy_from = None
    for k, b in enumerate(np.arange(start, end - 1e-9, beat)):
        quiet = not any(b - 1e-9 <= s < b + beat - 1e-9 for s in onsets) or not any(
            s < b + beat and e > b for s, e in sounding
        )
        if quiet:
            if busy_from is not None:
                notes += _span(busy_from, b, [tones[k % 3]], velocity)
                busy_from = None
            half = beat / 2
            notes += _span(b, b + half, [tones[(k + 1) % 4]], velocity + 5)
            notes += _span(b + half, min(b + beat, end), [tones[(k + 2) % 4]], velocity + 5)
        elif busy_from is None:
            busy_from = b
    if busy_from is not None:
        notes += _span(busy_from, end, [tones[1]], velocity)
    return notes


def _repeat(
    score: Score, target_seconds: float | None, qpm: float
) -> tuple[list[Note], list[tuple[float, int, int]], float]:
    """The melody's notes and meters repeated to last `target_seconds` at `qpm` (once when None); the tune's length."""
    notes = [n for t in score.tracks if not t.is_drum for n in t.notes]
    notes.sort(key=lambda n: (n.start_quarters, -n.pitch))
    bars = bar_grid(score.time_signatures, max(n.end_quarters for n in notes))
    tune_quarters = bars[-1][1]
    repeats = 1
    if target_seconds:
        repeats = max(1, min(64, math.ceil(target_seconds / (tune_quarters * 60.0 / qpm))))
    out_notes, meters = [], []
    for r in range(repeats):
        offset = r * tune_quarters
        out_notes += [Note(n.pitch, n.velocity, n.start_quarters + offset, n.end_quarters + offset) for n in notes]
        meters += [(q + offset, num, den) for q, num, den in score.time_signatures if q < tune_quarters]
    return out_notes, meters, tune_quarters


def _playable(notes: list[Note]) -> list[Note]:
    """`notes` as one MIDI channel can hold them: in pitch range, a note cut where its pitch is struck again, and
    nothing shorter than a 32nd (a meter change can leave a sliver of a bar), sorted by start."""
    out: list[Note] = []
    by_pitch = sorted((n for n in notes if 0 <= n.pitch <= 127), key=lambda n: (n.pitch, n.start_quarters))
    for n, following in zip(by_pitch, [*by_pitch[1:], None]):
        end = n.end_quarters
        if following is not None and following.pitch == n.pitch:
            end = min(end, following.start_quarters)
        if end - n.start_quarters >= 0.125:
            out.append(Note(n.pitch, n.velocity, n.start_quarters, end))
    return sorted(out, key=lambda n: (n.start_quarters, -n.pitch))


def _name(role: str, naming: str, liar: str | None, rng: np.random.Generator) -> str:
    if naming == "missing":
        return ""
    if naming == "misleading" and role == "melody":
        return str(rng.choice(_MELODY_LIES))
    if naming == "misleading" and role == liar:
        return str(rng.choice(_ACCOMPANIMENT_LIES))
    return str(rng.choice(_HONEST[role]))


def _program(role: str, rng: np.random.Generator) -> int:
    if role == "melody" or role == "drums" or rng.random() < 0.2:
        return int(rng.integers(0, 128))  # every GM program appears on the melody and now and then elsewhere
    lo, hi = _PROGRAMS[role]
    return int(rng.integers(lo, hi + 1))


def arrange(
    melody: Score,
    *,
    kind: str,
    naming: str = "honest",
    register: str = "normal",
    seed: int = 0,
    target_seconds: float | None = None,
) -> Arrangement:
    """Builds an arrangement around the melody held by `melody` (its non-drum notes, read as one line).

    Args:
        melody: a one-melody score, e.g. a training_data/ file from `read_midi`.
        kind: one of `KINDS` or `HARD_KINDS`.
        naming: one of `NAMINGS`.
        register: one of `REGISTERS`.
        seed: seeds every choice (programs, names, track order, patterns, tempo).
        target_seconds: repeat the tune until the piece lasts at least this long (3-5 minutes for song-sized
            files); None plays it once.

    Returns:
        The `Arrangement` (3-12 tracks; "folk" has 3).

    Raises:
        ValueError: an unknown kind, naming or register, or a score without notes.
    """
    if kind not in KINDS + HARD_KINDS or naming not in NAMINGS or register not in REGISTERS:
        raise ValueError(f"unknown kind/naming/register {kind!r}/{naming!r}/{register!r}")
    if not any(t.notes for t in melody.tracks if not t.is_drum):
        raise ValueError(f"{melody.source}: no melody notes")
    rng = np.random.default_rng(seed)
    qpm = float(rng.choice([72, 84, 96, 100, 108, 120, 132, 144]))
    notes, meters, _ = _repeat(melody, target_seconds, qpm)
    bars = bar_grid(meters, max(n.end_quarters for n in notes))
    triads = harmonize_bars(notes, bars)
    median = int(np.median([n.pitch for n in notes]))
    shift, center = 0, median - 9  # chords sit about an octave and a half below the tune's middle by default
    if register == "low":
        shift = -12 * int(rng.integers(1, 3))
        center = median + shift + 20  # and the chords about an octave above the moved melody's middle
    velocity = int(rng.integers(85, 115))
    lead = [Note(n.pitch + shift, velocity, n.start_quarters, n.end_quarters) for n in notes]
    if kind == "pop":
        # The singer breathes: the second half of every fourth bar rests, and the counter-melody answers there.
        breaths = [(s + (e - s) / 2, e) for k, (s, e, _) in enumerate(bars) if k % 4 == 3]
        lead = [n for n in lead if not any(a <= n.start_quarters < b for a, b in breaths)]
    if kind == "full":
        roles = [str(r) for r in rng.choice(_POOL, size=int(rng.integers(4, 11)), replace=False)]
        if rng.random() < 0.5:
            roles.append("counter")  # a second counter-melody or strings doubling make the crowded cases
    else:
        roles = list(_PARTS[kind])
    liar = str(rng.choice([r for r in roles if r != "drums"]))
    parts = [("melody", lead)] + [(r, _part_notes(r, bars, triads, lead, center, rng)) for r in roles]
    order = rng.permutation(len(parts))
    tracks = []
    for i in order:
        role, part = parts[i]
        part = _playable(part)
        tracks.append(
            Track(part, program=_program(role, rng), is_drum=role == "drums", name=_name(role, naming, liar, rng))
        )
    score = Score(tracks, tempos=[(0.0, qpm)], time_signatures=meters, source=f"{melody.source}#{kind}-{naming}")
    labels = tuple((s, e, harte(r, q)) for (s, e, _), (r, q) in zip(bars, triads))
    return Arrangement(
        score=score,
        melody_track=int(np.flatnonzero(order == 0)[0]),
        chords=labels,
        roles=tuple(parts[i][0] for i in order),
        kind=kind,
        naming=naming,
        register=register,
        source=melody.source,
        seed=seed,
    )


def melody_files(root: str | os.PathLike) -> list[Path]:
    """The ``.mid`` files under `root`, sorted (a fixed order, so seeds pick the same files everywhere)."""
    return sorted(Path(root).rglob("*.mid"))


def build_arrangements(
    files: Sequence[str | os.PathLike],
    count: int,
    seed: int = 0,
    target_seconds: float | None = None,
    kinds: Sequence[str] = KINDS,
) -> list[Arrangement]:
    """`count` arrangements of melodies drawn from `files`, every kind × naming equally often.

    Args:
        files: one-melody MIDI files (e.g. `melody_files("training_data/midi")`).
        count: how many arrangements.
        seed: picks the files and seeds each arrangement; different seeds give disjoint-ish draws.
        target_seconds: each piece lasts between this and 5/3 of it (180 gives 3-5 minute songs); None plays
            each tune once.
        kinds: the kinds to cycle through (`KINDS` by default; add `HARD_KINDS` for the harder ones).

    Returns:
        The arrangements, in a deterministic order. Roughly a quarter have the "low" register.
    """
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(files), size=count, replace=count > len(files))
    out = []
    for i, pick in enumerate(picks.tolist()):
        kind = kinds[i % len(kinds)]
        naming = NAMINGS[(i // len(kinds)) % len(NAMINGS)]
        register = "low" if rng.random() < 0.25 else "normal"
        seconds = None if target_seconds is None else float(target_seconds) * (1.0 + 0.67 * rng.random())
        score = read_midi(files[pick])
        sub_seed = int(rng.integers(0, 2**31))
        out.append(arrange(score, kind=kind, naming=naming, register=register, seed=sub_seed, target_seconds=seconds))
    return out
