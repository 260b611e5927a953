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

from melodyrnn.chord_search import SAMPLES_PER_QUARTER, distinct_rows, frame_starts, sample_profiles, viterbi
from melodyrnn.errors import ChordLabelError
from melodyrnn.midi_io import Score

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


def slice_changes(changes: Sequence[tuple], start: float, end: float) -> tuple:
    """The ``(position, label)`` changes in force over [start, end), re-based so `start` is 0.

    The change in force at `start` (if any) moves to 0; later ones keep their distance from `start`.
    """
    positions = [c[0] for c in changes]
    first = bisect.bisect_right(positions, start) - 1
    stop = bisect.bisect_left(positions, end, lo=first + 1)  # the changes are sorted: only those before `end`
    later = [(p - start, label) for p, label in changes[first + 1 : stop]]
    return (((0, changes[first][1]),) if first >= 0 else ()) + tuple(later)


# --------------------------------------------------------------------------------------------------
# Recognition

#: How much the lowest sounding note counts beside the others: a little, since a walking bass's passing tones
#: must not decide the chord (inversions are read from the bass alone, see `_with_bass`).
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
_LOCKSTEP = 32  # scores smoothed together: past a few dozen, each step's arrays outgrow the caches


def _templates() -> tuple[np.ndarray, list[Chord]]:
    """Unit-length pitch-class templates, float32 shape (chords, 12), and the chord each stands for."""
    chords = [Chord(root, quality) for quality in VOCABULARY for root in range(12)]
    table = np.zeros((len(chords), 12), np.float32)
    for i, chord in enumerate(chords):
        table[i, list(chord.pitch_classes)] = 1.0
    return table / np.linalg.norm(table, axis=1, keepdims=True), chords


_TABLE, _CHORDS = _templates()
_TEMPLATE_NORMS = np.sqrt((_TABLE > 0).sum(axis=1))  # shape (chords,): sqrt of each chord's size
_ROOTS = np.array([c.root for c in _CHORDS])
_PRIORS = np.array([_PRIOR.get(c.quality, 0.0) for c in _CHORDS])
_MEMBERS = _TABLE > 0  # bool (chords, 12): the chord's pitch classes
# Every recognizable chord's label, per bass interval above the root (only the chord's own tones are used).
_LABELS = [[format_label(c._replace(bass=b)) for b in range(12)] for c in _CHORDS]


class _Beats(NamedTuple):
    """One score's accompaniment per frame, the frames that repeat the one before merged into runs."""

    bounds: np.ndarray  # float64 (frames + 1,): frame boundaries in quarter notes
    firsts: np.ndarray  # int64 (runs,): the first frame of each run
    counts: np.ndarray  # int64 (runs, 1): frames in each run
    chroma: np.ndarray  # float64 (runs, 12): how long each pitch class sounds in the run's first frame, in samples
    bass: np.ndarray  # float64 (runs, 12): how long each is the lowest sounding there
    end_quarters: float  # where the accompaniment stops


def _beats(score: Score, exclude: Sequence[int]) -> _Beats | None:
    """The accompaniment of `score` (its pitched tracks but `exclude`) per beat; None when no such track has notes."""
    skip = set(exclude)
    parts = [t.arrays for i, t in enumerate(score.tracks) if i not in skip and not t.is_drum and t.num_notes]
    if not parts:
        return None
    pitches = np.concatenate([p.pitches for p in parts]).astype(np.int64)
    starts = np.concatenate([p.start_quarters for p in parts])
    ends = np.concatenate([p.end_quarters for p in parts])
    end_quarters = float(ends.max())
    bounds = frame_starts(score.time_signatures, end_quarters)
    num_samples = max(1, math.ceil(bounds[-1] * SAMPLES_PER_QUARTER))
    profiles = sample_profiles(pitches, starts, ends, num_samples)
    # frame f holds the samples whose centre lies in [bounds[f], bounds[f + 1])
    cuts = np.clip(np.ceil(bounds * SAMPLES_PER_QUARTER - 0.5).astype(np.int64), 0, num_samples)
    # Running counts of the 0/1 samples, in int32: exact, and several times faster to sum than floats.
    cumulative = np.zeros((num_samples + 1, 24), np.int32)
    np.cumsum(profiles, axis=0, out=cumulative[1:])
    frames = (cumulative[cuts[1:]] - cumulative[cuts[:-1]]).astype(np.float64)
    # Beats that repeat the beat before (a chord struck on every beat) are scored once, weighted by their count:
    # a best path never changes chord inside such a run.
    new_run = np.ones(len(frames), bool)
    new_run[1:] = np.any(frames[1:] != frames[:-1], axis=1)
    firsts = np.flatnonzero(new_run)
    counts = np.diff(np.append(firsts, len(frames)))[:, None]
    return _Beats(bounds, firsts, counts, frames[firsts, :12], frames[firsts, 12:], end_quarters)


def score_to_chords(score: Score, exclude: Sequence[int] = ()) -> tuple[tuple[float, str], ...]:
    """Reads the chords the accompaniment of `score` plays: every non-drum track not in `exclude`, together.

    Per beat (see `frame_starts`), the pitch classes sounding (weighted by how long they sound) plus the lowest
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
    """`score_to_chords` of several scores at once, the same chords: the smoothing runs in lockstep over scores of
    similar length (`viterbi`), one Python step per beat for them all rather than one per beat of each.

    Args:
        requests: ``(score, exclude)`` pairs, as `score_to_chords` takes them.

    Returns:
        The chord changes of each score, in order.
    """
    beats = {i: b for i, (score, exclude) in enumerate(requests) if (b := _beats(score, exclude)) is not None}
    weighted = {}
    for i, b in beats.items():
        # Score by score: one score's (beats, chords) arrays stay in the caches, where many together would not.
        # A song repeats a few voicings all through: each distinct beat is matched once.
        distinct, inverse = distinct_rows(np.hstack([b.chroma, b.bass]))
        scores, evidence = _frame_scores(distinct[:, :12], distinct[:, 12:])
        scores, evidence = scores[inverse], evidence[inverse]
        if evidence.any():
            scores *= b.counts
            weighted[i] = scores
    out: list[tuple[tuple[float, str], ...]] = [()] * len(requests)
    # Lockstep batches of scores of similar length waste little on padding.
    heard = sorted(weighted, key=lambda i: len(weighted[i]))
    for lo in range(0, len(heard), _LOCKSTEP):
        batch = heard[lo : lo + _LOCKSTEP]
        for i, path in zip(batch, viterbi([weighted[i] for i in batch], SWITCH_PENALTY)):
            out[i] = _path_to_changes(beats[i], path)
    return out


def _path_to_changes(beats: _Beats, path: np.ndarray) -> tuple[tuple[float, str], ...]:
    """The ``(start_quarters, label)`` changes of a best path over `beats`' runs."""
    run_starts = np.flatnonzero(np.diff(path, prepend=-1))
    labels = _run_labels(path[run_starts], np.add.reduceat(beats.bass * beats.counts, run_starts, axis=0))
    positions = beats.bounds[beats.firsts[run_starts]].tolist()
    positions[0] = 0.0
    changes = list(zip(positions, labels))
    if changes[-1][1] != NO_CHORD:
        changes.append((beats.end_quarters, NO_CHORD))
    return tuple(changes)


def _frame_scores(frame_chroma: np.ndarray, frame_bass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How well each chord, and N (the last column), fits each frame: float64 (frames, chords + 1); and which
    frames sound two pitch classes or more (bool, (frames,)): a score with none has no chords.

    Args:
        frame_chroma: how long each pitch class sounds in each frame, in samples, shape (frames, 12).
        frame_bass: how long each pitch class is the lowest sounding, in samples, shape (frames, 12).
    """
    profile = frame_chroma + BASS_WEIGHT * frame_bass
    norms = np.linalg.norm(profile, axis=1, keepdims=True)
    silent = norms[:, 0] < 1e-9
    # One pitch class (a bass line, a held note) fits every chord that holds it: no evidence, the chord goes on.
    evidence = (frame_chroma > 0).sum(axis=1) >= 2
    cosine = (profile / np.maximum(norms, 1e-9)) @ _TABLE.T
    total = np.maximum(profile.sum(axis=1, keepdims=True), 1e-9)
    # In place, in the order of SHAPE_WEIGHT * cosine + (1 - SHAPE_WEIGHT) * (2 * on_chord - total) / total: the
    # same numbers with a third of the passes over (frames, chords) arrays, the bulk of recognition's time.
    explained = np.multiply(cosine, norms)
    explained *= _TEMPLATE_NORMS  # = profile @ membership: the weight on each chord's tones
    explained *= 2.0
    explained -= total
    explained *= 1.0 - SHAPE_WEIGHT
    explained /= total
    out = np.empty((len(profile), len(_CHORDS) + 1))
    scores = np.multiply(cosine, SHAPE_WEIGHT, out=out[:, :-1])
    scores += explained
    scores += _PRIORS
    bass_share = frame_bass / np.maximum(frame_bass.sum(axis=1, keepdims=True), 1e-9)
    scores += (ROOT_BONUS * bass_share)[:, _ROOTS]
    # A lone pitch class only says which chords it rules out: relative to the best, it never opens a chord.
    lone = np.flatnonzero(~evidence)
    scores[lone] -= scores[lone].max(axis=1, keepdims=True)
    scores[silent] = -1.0
    # N is certain where nothing sounds, never chosen where chords can be told apart, and by a hair before the
    # first evidence (so a piece opening on a lone bass line does not open on a guess).
    out[:, -1] = np.where(silent, 1.0, np.where(evidence, -1.0, 1e-3))
    return out, evidence


def _run_labels(states: np.ndarray, run_bass: np.ndarray) -> list[str]:
    """The label of each run of one chord: int `states` (runs,) index `_CHORDS` (its length is N), `run_bass`
    (runs, 12) how long each pitch class is the lowest in the run. A chord whose bass time is more than half on
    one of its tones other than the root is that inversion (``C:maj/3``)."""
    chord = np.minimum(states, len(_CHORDS) - 1)  # N's row is never read
    low = run_bass.argmax(axis=1)
    roots = _ROOTS[chord]
    rows = np.arange(states.size)
    inverted = (low != roots) & _MEMBERS[chord, low] & (run_bass[rows, low] > 0.5 * run_bass.sum(axis=1))
    bass = np.where(inverted, (low - roots) % 12, 0)
    return [NO_CHORD if s == len(_CHORDS) else _LABELS[s][b] for s, b in zip(states.tolist(), bass.tolist())]


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
