"""Chords as Harte labels (``C:maj``, ``A:min7``, ``G:7/3``, ``N``) and chord recognition from a score's accompaniment.

Start at `score_to_chords` (the notes of a `Score`'s accompaniment tracks → ``(quarters, label)`` changes), or
`parse_label` / `format_label` / `transpose_label` for one label. `VOCABULARY` lists the qualities recognition
chooses from; `parse_label` also reads mir_eval's other shorthands (``maj6``, ``9``, ...). The last part packs
per-melody chords into flat int arrays, so a cache stores them without pickle.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from melodyrnn.chord_search import batch_frames, best_paths
from melodyrnn.compiled import jit
from melodyrnn.errors import ChordLabelError
from melodyrnn.midi_io import Score
from melodyrnn.midi_score import concatenated_notes

#: The label for "no chord": nothing plays.
NO_CHORD = "N"
#: Pitch classes of each quality, in semitones above the root (mir_eval's shorthands).
QUALITY_TONES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
    "dim": (0, 3, 6), "dim7": (0, 3, 6, 9), "hdim7": (0, 3, 6, 10), "aug": (0, 4, 8), "sus2": (0, 2, 7),
    "sus4": (0, 5, 7), "minmaj7": (0, 3, 7, 11), "maj6": (0, 4, 7, 9), "min6": (0, 3, 7, 9),
    "9": (0, 2, 4, 7, 10), "maj9": (0, 2, 4, 7, 11), "min9": (0, 2, 3, 7, 10), "11": (0, 2, 4, 5, 7, 10),
    "13": (0, 2, 4, 7, 9, 10), "5": (0, 7), "1": (0,),
}  # fmt: skip
#: The qualities `score_to_chords` recognizes (with "N" where nothing plays), most common first.
VOCABULARY = ("maj", "min", "7", "maj7", "min7", "dim", "dim7", "hdim7", "aug", "sus2", "sus4")
#: How roots are spelled when a label is written (a parsed ``Db`` is written ``C#``).
ROOT_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

_NATURALS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_DEGREE_SEMITONES = {1: 0, 2: 2, 3: 4, 4: 5, 5: 7, 6: 9, 7: 11, 8: 0, 9: 2, 10: 4, 11: 5, 12: 7, 13: 9}
# How a bass interval above the root is written after the slash; an augmented chord's fifth is "#5".
_BASS_DEGREES = ("1", "b2", "2", "b3", "3", "4", "b5", "5", "b6", "6", "b7", "7")
_LABEL = re.compile(r"^([A-G])([#b]*)(?::([A-Za-z0-9]*))?(?:/([#b]*)(\d{1,2}))?$")


class Chord(NamedTuple):
    """One parsed chord: root pitch class (0 = C), quality (a key of `QUALITY_TONES`), bass in semitones above
    the root (0 = root position)."""

    root: int
    quality: str
    bass: int = 0

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        """The chord's pitch classes, root first."""
        return tuple((self.root + i) % 12 for i in QUALITY_TONES[self.quality])


def parse_label(label: str) -> Chord | None:
    """Reads a Harte label as mir_eval does: ``C:maj``, ``Bb:min7``, ``G:7/3``, ``C`` (= ``C:maj``); None for ``N``.

    Raises:
        ChordLabelError: not a label, or a quality outside `QUALITY_TONES` (extensions in parentheses included).
    """
    if not isinstance(label, str):
        raise ChordLabelError(f"a chord label must be a string, got {type(label).__name__}")
    if label == NO_CHORD:
        return None
    match = _LABEL.match(label)
    if not match:
        raise ChordLabelError(
            f"bad chord label {label!r}: expected Harte syntax like 'C:maj', 'A:min7', 'G:7/3' or 'N'"
        )
    letter, accidentals, quality, bass_accidentals, degree = match.groups()
    quality = "maj" if quality is None else quality
    if quality not in QUALITY_TONES:
        raise ChordLabelError(f"bad chord label {label!r}: unknown quality {quality!r}; known: {sorted(QUALITY_TONES)}")
    root = (_NATURALS[letter] + accidentals.count("#") - accidentals.count("b")) % 12
    bass = 0
    if degree is not None:
        if not 1 <= int(degree) <= 13:
            raise ChordLabelError(f"bad chord label {label!r}: the bass degree must be 1-13, got {degree}")
        shift = bass_accidentals.count("#") - bass_accidentals.count("b")
        bass = (_DEGREE_SEMITONES[int(degree)] + shift) % 12
    return Chord(root, quality, bass)


def format_label(chord: Chord | None) -> str:
    """Writes a chord as a Harte label (the inverse of `parse_label`, spelling roots as `ROOT_NAMES`)."""
    if chord is None:
        return NO_CHORD
    text = f"{ROOT_NAMES[chord.root % 12]}:{chord.quality}"
    if chord.bass % 12:
        bass = chord.bass % 12
        text += "/" + ("#5" if bass == 8 and chord.quality == "aug" else _BASS_DEGREES[bass])
    return text


def canonical_label(label: str) -> str:
    """`label` as `format_label` writes it (``Db:maj`` → ``C#:maj``, ``C`` → ``C:maj``). Raises `ChordLabelError`."""
    if isinstance(label, str):
        known = _CANONICAL.get(label)
        if known is not None:
            return known
    canonical = format_label(parse_label(label))
    if len(_CANONICAL) < _CANONICAL_CACHE:  # songs repeat a handful of labels thousands of times
        _CANONICAL[label] = canonical
    return canonical


# Labels already read, for `canonical_label`: bounded, so a stream of odd labels cannot grow it without end.
_CANONICAL: dict[str, str] = {}
_CANONICAL_CACHE = 4096


def transpose_label(label: str, semitones: int) -> str:
    """`label` moved by `semitones` (``N`` stays ``N``). Raises `ChordLabelError` for a bad label."""
    chord = parse_label(label)
    return NO_CHORD if chord is None else format_label(chord._replace(root=(chord.root + int(semitones)) % 12))


#: Chord suffixes as musicians write them → Harte qualities (`chord_name_to_label`).
_SUFFIXES = {
    "": "maj", "M": "maj", "maj": "maj", "m": "min", "min": "min", "-": "min", "7": "7", "dom7": "7",
    "maj7": "maj7", "M7": "maj7", "Δ": "maj7", "Δ7": "maj7", "ma7": "maj7", "m7": "min7", "min7": "min7",
    "-7": "min7", "dim": "dim", "°": "dim", "o": "dim", "dim7": "dim7", "°7": "dim7", "o7": "dim7",
    "m7b5": "hdim7", "min7b5": "hdim7", "ø": "hdim7", "ø7": "hdim7", "aug": "aug", "+": "aug", "sus2": "sus2",
    "sus4": "sus4", "sus": "sus4", "mMaj7": "minmaj7", "mM7": "minmaj7", "m(maj7)": "minmaj7", "minmaj7": "minmaj7",
    "6": "maj6", "m6": "min6", "9": "9", "maj9": "maj9", "M9": "maj9", "m9": "min9", "11": "11", "13": "13",
    "5": "5",
}  # fmt: skip
_NAME = re.compile(r"^([A-G])([#b♯♭]?)(.*?)(?:/([A-G])([#b♯♭]?))?$")
_NO_CHORD_NAMES = ("N", "N.C.", "NC", "N.C")


def chord_name_to_label(name: str) -> str:
    """A chord as musicians write it (``Am``, ``F#m7``, ``Bb7``, ``Cmaj7``, ``Gsus4``, ``Bdim``, ``C/E``, ``N.C.``)
    or a Harte label (``A:min``) → its canonical Harte label (``A:min``, ``C:maj/3``, ``N``).

    Raises:
        ChordLabelError: neither a chord name nor a Harte label; the message names it.
    """
    if not isinstance(name, str):
        raise ChordLabelError(f"a chord must be a string, got {type(name).__name__}")
    text = name.strip()
    if text in _NO_CHORD_NAMES:
        return NO_CHORD
    if ":" in text:
        return canonical_label(text)
    match = _NAME.match(text)
    quality = _SUFFIXES.get(match.group(3)) if match else None
    if match is None or quality is None:
        raise ChordLabelError(
            f"bad chord {name!r}: expected a chord name like 'Am', 'F#m7', 'Bb7', 'Cmaj7', 'Gsus4', 'Bdim', 'C/E' "
            "or a Harte label like 'A:min7'"
        )
    letter, accidental, _, bass_letter, bass_accidental = match.groups()

    def pitch_class(letter: str, accidental: str) -> int:
        return (_NATURALS[letter] + {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(accidental or "", 0)) % 12

    root = pitch_class(letter, accidental)
    bass = (pitch_class(bass_letter, bass_accidental) - root) % 12 if bass_letter else 0
    return format_label(Chord(root, quality, bass))


def slice_changes(changes: Sequence[tuple], start: float, end: float, positions: Sequence | None = None) -> tuple:
    """The ``(position, label)`` changes in force over [start, end), re-based so `start` is 0.

    The change in force at `start` (if any) moves to 0; later ones keep their distance from `start`.
    `positions`, the changes' positions, saves listing them again when the same changes are sliced many times.
    """
    positions = [c[0] for c in changes] if positions is None else positions
    first = bisect.bisect_right(positions, start) - 1
    stop = bisect.bisect_left(positions, end, lo=first + 1)  # the changes are sorted: only those before `end`
    later = [(p - start, label) for p, label in changes[first + 1 : stop]]
    return (((0, changes[first][1]),) if first >= 0 else ()) + tuple(later)


# --------------------------------------------------------------------------------------------------
# Recognition

#: How much the lowest sounding note counts beside the others: a little, since a walking bass's passing tones
#: must not decide the chord (inversions are read from the bass alone, see `_change_codes`).
BASS_WEIGHT = 0.25
#: What changing chord costs in the smoothing, in units of one frame's match (a cosine, at most 1): a passing
#: note that makes another chord fit a little better for one beat does not pay it.
SWITCH_PENALTY = 0.25
#: How the frame's match mixes the shape of its profile (cosine to the template: every tone of the chord present,
#: in balance) with how much of it the chord explains (weight on chord tones minus weight off them, over the total):
#: the second adds up over the beats of an arpeggio, where each beat holds only two of the chord's tones.
SHAPE_WEIGHT = 0.5
#: A head start for the chord whose root is the bass, in proportion to how long it is: it tells apart chords of the
#: same tones (C:sus2 / G:sus4, the rotations of dim7 and aug) and settles a 6th against a relative minor 7th.
ROOT_BONUS = 0.02
# Triads are far more common than the others: a small head start settles near ties (a triad plus a passing 7th).
_PRIOR = {"maj": 0.04, "min": 0.04}


def _templates() -> tuple[np.ndarray, list[Chord]]:
    """Unit-length pitch-class templates, float32 shape (chords, 12), and the chord each stands for."""
    chords = [Chord(root, quality) for quality in VOCABULARY for root in range(12)]
    table = np.zeros((len(chords), 12), np.float32)
    for i, chord in enumerate(chords):
        table[i, list(chord.pitch_classes)] = 1.0
    return table / np.linalg.norm(table, axis=1, keepdims=True), chords


_TABLE, _CHORDS = _templates()
_TEMPLATE_NORMS = np.sqrt((_TABLE > 0).sum(axis=1))  # shape (chords,): sqrt of each chord's size
_ROOTS = np.array([c.root for c in _CHORDS], np.int64)
_PRIORS = np.array([_PRIOR.get(c.quality, 0.0) for c in _CHORDS])
_MEMBERS = _TABLE > 0  # bool (chords, 12): the chord's pitch classes
# Every recognizable chord's label, per bass interval above the root (only the chord's own tones are used), at
# chord * 12 + interval, then N: labels are written once here, not once per change.
_CODE_LABELS = [format_label(c._replace(bass=b)) for c in _CHORDS for b in range(12)] + [NO_CHORD]


def score_to_chords(score: Score, exclude: Sequence[int] = ()) -> tuple[tuple[float, str], ...]:
    """Reads the chords the accompaniment of `score` plays: every non-drum track not in `exclude`, together.

    Per beat (see `frame_bounds`), the pitch classes sounding (weighted by how long they sound) plus the lowest
    sounding note (weighted by `BASS_WEIGHT`) are matched against `VOCABULARY`'s templates: a mix
    (`SHAPE_WEIGHT`) of the cosine to the template and the share of the weight the chord explains, with a small
    head start for triads and for the chord whose root is the bass (`ROOT_BONUS`). A Viterbi pass with
    `SWITCH_PENALTY` per change smooths the sequence, so a passing note does not flip the chord and the beats of
    an arpeggio add up. Where nothing sounds the chord is ``N``; a beat with a single pitch class only rules
    chords out, so the chord before goes on. A chord whose bass is mostly another of its tones is an inversion
    (``C:maj/3``).

    Args:
        score: the score; positions in quarter notes.
        exclude: indices into `score.tracks` to leave out (the melody).

    Returns:
        ``(start_quarters, label)`` per chord change, the first at 0.0, ending with ``N`` where the accompaniment
        stops; empty when no accompaniment track has notes or no beat sounds two pitch classes (never a guessed
        progression).
    """
    return scores_to_chords([(score, exclude)])[0]


def scores_to_chords(requests: Sequence[tuple[Score, Sequence[int]]]) -> list[tuple[tuple[float, str], ...]]:
    """`score_to_chords` of several scores at once, the same chords: their notes go to the compiled loops
    (`batch_frames`, `_chord_scores`, `best_paths`, `_change_codes`) together, so the Python work per score is
    gathering its tracks and writing its labels.

    Args:
        requests: ``(score, exclude)`` pairs, as `score_to_chords` takes them.

    Returns:
        The chord changes of each score, in order.
    """
    parts, track_counts, meters, meter_counts = [], [0], [], [0]
    for score, exclude in requests:
        skip = set(exclude)
        tracks = [t for i, t in enumerate(score.tracks) if i not in skip and not t.is_drum and t.num_notes]
        parts += tracks
        track_counts.append(len(tracks))
        meters += score.time_signatures
        meter_counts.append(len(score.time_signatures))
    if not parts:
        return [()] * len(requests)
    pitches, note_starts, note_ends, track_offsets = concatenated_notes(parts)
    bounds, runs, rows, ends, offsets = batch_frames(
        pitches,
        note_starts,
        note_ends,
        track_offsets[np.cumsum(track_counts)],  # where each score's notes begin
        np.array(meters, np.float64).reshape(-1, 3),
        np.cumsum(meter_counts),
    )
    scores, heard = _chord_scores(rows, _cosines(rows, offsets[2]), offsets[2], _TEMPLATE_NORMS, _PRIORS, _ROOTS)
    path = best_paths(scores, runs, offsets[1], heard, SWITCH_PENALTY)
    positions, codes, changes = _change_codes(path, runs, rows, bounds, ends, offsets, heard, _ROOTS, _MEMBERS)
    at, places, labels = changes.tolist(), positions.tolist(), list(map(_CODE_LABELS.__getitem__, codes.tolist()))
    return [tuple(zip(places[lo:hi], labels[lo:hi])) for lo, hi in zip(at[:-1], at[1:])]


def _cosines(rows: np.ndarray, row_offsets: np.ndarray) -> np.ndarray:
    """The cosine of each row's profile (its chroma plus `BASS_WEIGHT` times its bass) to each chord's template,
    float64 (rows, chords).

    The product stays numpy's, whose sums BLAS rounds in one order for a matrix and in another for a lone row:
    each score is read as if alone, so the one row of a score whose beats all sound alike is multiplied alone.
    """
    profile = rows[:, :12] + BASS_WEIGHT * rows[:, 12:]
    unit = profile / np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-9)
    cosine = unit @ _TABLE.T
    for row in row_offsets[:-1][np.diff(row_offsets) == 1].tolist():
        cosine[row] = (unit[row : row + 1].copy() @ _TABLE.T)[0]
    return cosine


@jit
def _chord_scores(
    rows: np.ndarray,
    cosine: np.ndarray,
    row_offsets: np.ndarray,
    template_norms: np.ndarray,
    priors: np.ndarray,
    roots: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """How well each chord, and N (the last column), fits each frame's row: float64 (rows, chords + 1); and
    whether each score has a row sounding two pitch classes or more (bool (scores,)): one with none has no chords.

    Args:
        rows: int64 (rows, 24): how long each pitch class sounds in a frame, then how long it is the lowest
            sounding, in samples.
        cosine: float64 (rows, chords), from `_cosines`.
        row_offsets: int64 (scores + 1,): score i's rows are ``row_offsets[i]:row_offsets[i + 1]``.
        template_norms: float64 (chords,): sqrt of each chord's size.
        priors: float64 (chords,): each chord's head start.
        roots: int64 (chords,): each chord's root pitch class.
    """
    count, chords = cosine.shape
    out = np.empty((count, chords + 1))
    evidence = np.zeros(count, np.bool_)
    profile, share = np.empty(12), np.empty(12)
    for r in range(count):
        squares, total, bass, sounding = 0.0, 0.0, 0.0, 0
        for pc in range(12):
            profile[pc] = rows[r, pc] + BASS_WEIGHT * rows[r, 12 + pc]
            squares += profile[pc] * profile[pc]  # whole quarters of samples: every sum here is exact
            total += profile[pc]
            bass += rows[r, 12 + pc]
            sounding += rows[r, pc] > 0
        norm = math.sqrt(squares)
        total, silent = max(total, 1e-9), norm < 1e-9
        # One pitch class (a bass line, a held note) fits every chord that holds it: no evidence, the chord goes on.
        evidence[r] = sounding >= 2
        for pc in range(12):
            share[pc] = rows[r, 12 + pc] / max(bass, 1e-9)
        best = -math.inf
        for c in range(chords):
            # (2 * weight on the chord's tones - total) / total, the weight on its tones being cosine * norm * size
            explained = cosine[r, c] * norm
            explained *= template_norms[c]
            explained *= 2.0
            explained -= total
            explained *= 1.0 - SHAPE_WEIGHT
            explained /= total
            score = cosine[r, c] * SHAPE_WEIGHT + explained + priors[c] + ROOT_BONUS * share[roots[c]]
            out[r, c] = score
            best = max(best, score)
        # A lone pitch class only says which chords it rules out: relative to the best, it never opens a chord.
        for c in range(chords):
            out[r, c] = -1.0 if silent else out[r, c] if evidence[r] else out[r, c] - best
        # N is certain where nothing sounds, never chosen where chords can be told apart, and by a hair before the
        # first evidence (so a piece opening on a lone bass line does not open on a guess).
        out[r, chords] = 1.0 if silent else -1.0 if evidence[r] else 1e-3
    heard = np.zeros(len(row_offsets) - 1, np.bool_)
    for s in range(len(heard)):
        heard[s] = np.any(evidence[row_offsets[s] : row_offsets[s + 1]])
    return out, heard


@jit
def _change_codes(
    path: np.ndarray,
    runs: np.ndarray,
    rows: np.ndarray,
    bounds: np.ndarray,
    ends: np.ndarray,
    offsets: np.ndarray,
    heard: np.ndarray,
    roots: np.ndarray,
    members: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each heard score's chord changes from its best `path` over the `runs` of `batch_frames` (`rows`, `bounds`,
    `ends` and `offsets` are its too): where each starts (float64 quarter notes, the first at 0), its label's
    index in `_CODE_LABELS` (int64: chord * 12 + bass interval, or N), and each score's slice of the two (int64
    (scores + 1,)). A chord whose bass time is more than half on one of its tones other than the root is that
    inversion (``C:maj/3``); ``N`` follows where the accompaniment ends unless the last chord is N already.

    Args:
        roots: int64 (chords,): each chord's root pitch class.
        members: bool (chords, 12): each chord's pitch classes.
    """
    no_chord = len(roots) * 12
    positions = np.empty(len(path) + len(heard))
    codes = np.empty(len(path) + len(heard), np.int64)
    changes = np.zeros(len(heard) + 1, np.int64)
    at = 0
    bass = np.zeros(12, np.int64)
    for s in range(len(heard)):
        lo, hi = offsets[1, s], offsets[1, s + 1] if heard[s] else offsets[1, s]
        start = lo  # the run the current chord starts at
        for t in range(lo, hi):
            for pc in range(12):
                bass[pc] += rows[runs[t, 2], 12 + pc] * runs[t, 1]
            if t + 1 < hi and path[t + 1] == path[t]:
                continue
            state, low, held = path[t], 0, 0
            for pc in range(12):
                low = pc if bass[pc] > bass[low] else low
                held += bass[pc]
            if state == len(roots):
                codes[at] = no_chord
            else:
                inverted = low != roots[state] and members[state, low] and bass[low] > 0.5 * held
                codes[at] = state * 12 + ((low - roots[state]) % 12 if inverted else 0)
            positions[at] = 0.0 if start == lo else bounds[offsets[0, s] + runs[start, 0]]
            at += 1
            start = t + 1
            bass[:] = 0
        if hi > lo and codes[at - 1] != no_chord:
            positions[at], codes[at] = ends[s], no_chord
            at += 1
        changes[s + 1] = at
    return positions[:at], codes[:at], changes


# --------------------------------------------------------------------------------------------------
# Flat arrays, for caches


def chords_to_arrays(
    per_melody: Sequence[Sequence[tuple[int, str]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Packs each melody's ``(step, label)`` chords into flat arrays (no pickle needed).

    Returns:
        ``(offsets, steps, ids, labels)``: int64 offsets of shape (melodies + 1,) — melody i's chords are
        entries ``offsets[i]:offsets[i + 1]`` — int32 steps and int32 ids of shape (chords,), and the distinct
        labels the ids index, sorted.
    """
    labels = sorted({label for chords in per_melody for _, label in chords})
    index = {label: i for i, label in enumerate(labels)}
    flat = [(step, index[label]) for chords in per_melody for step, label in chords]
    offsets = np.concatenate([[0], np.cumsum([len(chords) for chords in per_melody])]).astype(np.int64)
    steps = np.array([s for s, _ in flat], dtype=np.int32)
    ids = np.array([i for _, i in flat], dtype=np.int32)
    return offsets, steps, ids, labels


def arrays_to_chords(offsets, steps, ids, labels: Sequence[str], i: int) -> tuple[tuple[int, str], ...]:
    """Melody `i`'s chords from `chords_to_arrays`' arrays."""
    lo, hi = int(offsets[i]), int(offsets[i + 1])
    return tuple((int(s), labels[int(k)]) for s, k in zip(steps[lo:hi].tolist(), ids[lo:hi].tolist()))


def chord_arrays_problem(offsets, steps, ids, labels: Sequence[str], lengths: np.ndarray) -> str | None:
    """What makes chord arrays unusable beside melodies of `lengths` steps (int, shape (melodies,)), or None."""
    if any(np.asarray(a).ndim != 1 for a in (offsets, steps, ids)):
        return "chord arrays must be one-dimensional"
    if not all(np.issubdtype(np.asarray(a).dtype, np.integer) for a in (offsets, steps, ids)):
        return "chord arrays must be integers"
    if offsets.size != lengths.size + 1 or offsets[0] != 0 or offsets[-1] != steps.size or steps.size != ids.size:
        return "its chord offsets do not match its melodies or chords"
    if np.any(np.diff(offsets) < 0):
        return "its chord offsets decrease"
    if ids.size and (ids.min() < 0 or ids.max() >= len(labels)):
        return "chord ids point past its chord labels"
    try:
        for label in labels:
            parse_label(label)
    except ChordLabelError as err:
        return str(err)
    if steps.size:
        owner = np.repeat(np.arange(lengths.size), np.diff(offsets))
        first = np.zeros(steps.size, bool)
        first[offsets[:-1][np.diff(offsets) > 0]] = True
        rises = np.diff(steps.astype(np.int64), prepend=-1) > 0
        if steps.min() < 0 or np.any(steps >= np.maximum(lengths[owner], 1)) or not np.all(rises | first):
            return "chord steps must rise within each melody and lie inside it"
    return None
