"""Which track of a song carries the melody: evidence from names, texture, register, rhythm and the other tracks.

Start at `choose_melody_tracks` (a `Score` and a selection — "auto", "all", a track name or an index — → a
`TrackChoice` saying which tracks are taken and, per track, why). "auto" scores each pitched track with a
hand-made linear score over `track_features` (weights in `_WEIGHTS`, set on arrangements built from
training_data/ melodies); names count, but monophony, stepwise motion, register and how a track relates to the
others count more, so a lying or missing name does not decide.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from melodyrnn.errors import NoMelodyError
from melodyrnn.midi_io import Score, Track

#: The grid onsets are read on, in steps per quarter note: fine enough that triplets and ornaments of a single
#: line never land on one step (which would read as chords).
ONSET_STEPS_PER_QUARTER = 12
#: The grid of what sounds when (register, polyphony, harmony), sampled at each step's middle so that a legato
#: overlap shorter than half a step does not read as two notes at once.
GRID_STEPS_PER_QUARTER = 4
# Patterns (riffs, broken chords) show within a few hundred notes; longer lines are only read that far for them.
_PATTERN_NOTES = 1024

_MELODY_NAME = re.compile(
    r"melod|vocal|voice|vox|lead|solo|sing|sänger|canto|cantus|chant|voz|voix|stimme|tune|theme|tema|"
    r"soprano|sopran|dessus|treble|lyric|\bmel\b|\bld\b",
    re.IGNORECASE,
)
_ACCOMPANIMENT_NAME = re.compile(
    r"bass|chord|comp|accomp|begleit|acomp|pad|string|drum|perc|kit|piano ?l|\blh\b|left|arp|rhythm|strum|"
    r"harmon|backing|fill|counter|alto|tenor|choir|organ|synth ?pad|keys|guitar|gtr|harp|brass section|"
    r"cymbal|snare|kick|hat|tom",
    re.IGNORECASE,
)
# Words that make a melody word name an accompaniment: "Counter Melody", "Backing Vocals", "Harmony Vocal".
_SUPPORTING_NAME = re.compile(r"counter|backing|back|harmon|bgv|2nd|second|choir|chorus vox|double", re.IGNORECASE)

# How much each feature moves a track's score (features are in [0, 1] unless said). Positive: melody-like.
_WEIGHTS = {
    "melody_name": 1.0,  # the name says melody/vocal/lead/solo...
    "accompaniment_name": -0.75,  # the name says bass/chords/pad/drums/piano LH...
    "chord_onsets": -4.0,  # share of onsets struck with another note of the same track: block chords
    "sounding_polyphony": -1.5,  # share of sounding time with two or more notes: pads, sustained chords
    "stepwise": 2.0,  # share of moves by 1-2 semitones: tunes move by step, broken chords and bass lines leap
    "repeated": -2.0,  # share of repeated pitches beyond 40%: pedal notes, bass roots, strummed patterns
    "on_top": 2.5,  # share of its sounding time it is the highest pitched track
    "at_bottom": -1.5,  # share of its sounding time it is the lowest pitched track (with others sounding)
    "periodic": -2.0,  # how far the pitch sequence's best repeat at a lag of 2-8 notes exceeds 50%: patterns
    "contour_periodic": -2.0,  # how far the up/down contour's best repeat at a lag of 2-8 exceeds 70%: riffs
    "busiest_line": 2.5,  # its onsets over those of the busiest single line: tunes move, counter-lines hold
    "rhythm_variety": 1.5,  # entropy of inter-onset intervals, in bits, capped at 2, over 2
    "sparse": -2.0,  # how far its sounding share falls below 25% of the piece
    "slow": -1.0,  # fewer than one onset per two quarter notes while sounding
    "bass_program": -1.0,  # GM 32-39
    "pad_program": -0.5,  # GM 48-55 (ensembles, choirs) and 88-95 (pads)
    "lead_program": 0.3,  # GM 56-87: brass, reeds, pipes, synth leads
    "fills_rests": -1.5,  # most of its onsets fall where a busier line rests: a counter-melody answering it
    "chord_tones": -2.5,  # how far the share of its notes whose pitch class another track sounds exceeds 80%
}
# The words a left-out track's reason starts with, per feature that spoke most against it.
_LEFT_OUT = {
    "chord_onsets": "plays chords",
    "sounding_polyphony": "sustained chords",
    "stepwise": "leaps like a bass line or broken chord",
    "repeated": "repeats one pitch",
    "at_bottom": "lowest part (bass)",
    "rhythm_variety": "even, pattern-like rhythm",
    "periodic": "repeats a short pitch pattern (broken chord, riff)",
    "contour_periodic": "repeats a short up-and-down pattern (riff)",
    "busiest_line": "holds notes while the melody moves",
    "sparse": "sounds in little of the piece",
    "slow": "few, long notes",
    "bass_program": "bass instrument",
    "pad_program": "pad or ensemble instrument",
    "accompaniment_name": "accompaniment name",
    "fills_rests": "fills the melody's rests (counter-melody)",
    "chord_tones": "only plays the harmony's tones",
    "on_top": "under the melody",
    "melody_name": "no melody name",
}


@dataclass(frozen=True)
class TrackVerdict:
    """What was decided about one track.

    Attributes:
        index: position in `Score.tracks`.
        name: the track's name.
        taken: whether its notes go to melody extraction.
        reason: a short phrase, e.g. "melody: melody name, monophonic, stepwise" or "left out: plays chords".
        key: the reason without track details, for counting ("drum track", "plays chords", ...).
        score: the "auto" score (None for other selections and for tracks not scored).
    """

    index: int
    name: str
    taken: bool
    reason: str
    key: str
    score: float | None = None


@dataclass(frozen=True)
class TrackChoice:
    """The tracks taken from one score, and a verdict per track (in track order)."""

    taken: tuple[int, ...]
    verdicts: tuple[TrackVerdict, ...]

    @property
    def had_choice(self) -> bool:
        """Whether the score held more than one pitched track with notes."""
        return sum(v.key not in ("drum track", "no notes") for v in self.verdicts) > 1

    def summary(self) -> str:
        """One line naming the taken tracks and why, e.g. ``2 'Vocal' (melody name, monophonic, stepwise)``."""
        parts = [f"{v.index} {v.name!r} ({v.reason})" for v in self.verdicts if v.taken]
        return "; ".join(parts) if parts else "no track"


def track_features(score: Score) -> dict[int, dict[str, float]]:
    """The evidence `choose_melody_tracks` weighs, per pitched track that holds notes.

    Args:
        score: from `read_midi`.

    Returns:
        track index → feature name → value (the names of `_WEIGHTS`; most are shares in [0, 1]).
    """
    pitched = [i for i, t in enumerate(score.tracks) if not t.is_drum and _note_count(t)]
    notes = [_note_arrays(score.tracks[i]) for i in pitched]
    grid = _Grid(notes)
    others_top = _max_of_others(grid.top)
    others_bottom = -_max_of_others(-grid.bottom)
    sounding = grid.count > 0
    piece_steps = max(1, int(sounding.any(axis=0).sum()))
    class_counts = grid.classes.sum(axis=0, dtype=np.int16)  # (12, steps): how many tracks sound each class
    # What each track shares with the others, counted for all tracks at once (rows of the grid), then divided per
    # track as plain ints: the same shares as a mean per track.
    mine_steps = sounding.sum(axis=1).tolist()
    polyphonic = (grid.count >= 2).sum(axis=1).tolist()
    busy = sounding & (others_top >= 0)
    n_busy = busy.sum(axis=1).tolist()
    on_top = ((grid.top >= others_top) & busy).sum(axis=1).tolist()
    at_bottom = ((grid.bottom <= others_bottom) & busy).sum(axis=1).tolist()
    # An accompaniment line plays the harmony the other tracks sound; a tune adds passing and neighbour notes.
    row_of = np.repeat(np.arange(len(pitched)), [notes[row][0].size for row in range(len(pitched))])
    at = np.concatenate(grid.onsets) if pitched else np.zeros(0, np.int64)
    pcs = np.concatenate([notes[row][0] for row in range(len(pitched))]) % 12 if pitched else at
    heard = class_counts[pcs, at] - grid.classes[row_of, pcs, at]
    with_others = others_top[row_of, at] >= 0
    n_with = np.bincount(row_of[with_others], minlength=len(pitched)).tolist()
    n_consonant = np.bincount(row_of[with_others & (heard > 0)], minlength=len(pitched)).tolist()
    features: dict[int, dict[str, float]] = {}
    for row, i in enumerate(pitched):
        track = score.tracks[i]
        f = _line_features(notes[row][0], grid.fine_onsets[row])
        f["sounding_polyphony"] = polyphonic[row] / max(1, mine_steps[row])
        f["on_top"] = on_top[row] / n_busy[row] if n_busy[row] else 1.0
        f["at_bottom"] = at_bottom[row] / n_busy[row] if n_busy[row] else 0.0
        f["sparse"] = max(0.0, 0.25 - mine_steps[row] / piece_steps) / 0.25
        consonant = n_consonant[row] / n_with[row] if n_with[row] else 0.0
        f["chord_tones"] = max(0.0, consonant - 0.8) / 0.2
        f["slow"] = float(grid.onset_count[row] / max(1, mine_steps[row]) * GRID_STEPS_PER_QUARTER < 0.5)
        f.update(_name_features(track.name))  # copied: the cached dict is never changed
        f.update(_program_features(track.program))
        features[i] = f
    _add_rest_filling(features, pitched, grid, sounding)
    lines = [grid.onset_count[r] for r, i in enumerate(pitched) if features[i]["chord_onsets"] < 0.2]
    for r, i in enumerate(pitched):
        features[i]["busiest_line"] = min(1.0, grid.onset_count[r] / max([1, *lines]))
    return features


def _note_count(track: Track) -> int:
    arrays = getattr(track, "arrays", None)  # a reader that keeps notes as arrays spares making Note objects
    return len(arrays.pitches) if arrays is not None else len(track.notes)


def _note_arrays(track: Track) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pitches int64, starts float64, ends float64), each (notes,), in quarter notes, sorted by start."""
    arrays = getattr(track, "arrays", None)
    if arrays is not None:
        return np.asarray(arrays.pitches, np.int64), np.asarray(arrays.start_quarters), np.asarray(arrays.end_quarters)
    n = len(track.notes)
    return (
        np.fromiter((x.pitch for x in track.notes), np.int64, n),
        np.fromiter((x.start_quarters for x in track.notes), np.float64, n),
        np.fromiter((x.end_quarters for x in track.notes), np.float64, n),
    )


class _Grid:
    """The pitched tracks on the feature grid: per track and step the highest and lowest sounding pitch (-1 and
    128 where silent), how many notes sound, which pitch classes sound; and each track's onset steps."""

    def __init__(self, notes: list[tuple[np.ndarray, np.ndarray, np.ndarray]]):
        tracks = len(notes)
        last = max((float(e.max()) for _, _, e in notes if e.size), default=0.0)
        self.end = end = int(np.ceil(last * GRID_STEPS_PER_QUARTER)) + 2  # steps, past the last note's end
        self.top = np.full((tracks, end), -1, np.int16)
        self.bottom = np.full((tracks, end), 128, np.int16)
        self.count = np.zeros((tracks, end), np.int16)
        self.classes = np.zeros((tracks, 12, end), np.bool_)
        sizes = [p.size for p, _, _ in notes]
        offsets = np.cumsum([0, *sizes])
        pitches = np.concatenate([p for p, _, _ in notes]) if notes else np.zeros(0, np.int64)
        start_quarters = np.concatenate([s for _, s, _ in notes]) if notes else np.zeros(0)
        end_quarters = np.concatenate([e for _, _, e in notes]) if notes else np.zeros(0)
        # All tracks in one pass: each note's row offsets its steps into the flattened (tracks, steps) grids.
        # Step k sounds a note that covers its middle, (k + 0.5) / GRID; every note keeps at least its first.
        starts = np.ceil(start_quarters * GRID_STEPS_PER_QUARTER - 0.5).astype(np.int64).clip(0, end - 2)
        ends = np.maximum(np.ceil(end_quarters * GRID_STEPS_PER_QUARTER - 0.5).astype(np.int64), starts + 1)
        lengths = ends - starts
        # Every (note, step) the note sounds in, as flat arrays: one numpy pass instead of a loop per note.
        steps = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        sounding = np.repeat(pitches, lengths).astype(np.int16)
        rows = np.repeat(np.repeat(np.arange(tracks), sizes), lengths)
        flat = rows * end + steps
        np.maximum.at(self.top.reshape(-1), flat, sounding)
        np.minimum.at(self.bottom.reshape(-1), flat, sounding)
        self.count[:] = np.bincount(flat, minlength=tracks * end).reshape(tracks, end)
        # One flat index, not three: numpy's fancy assignment costs several times more per extra index array.
        self.classes.reshape(-1)[(rows * 12 + sounding % 12) * end + steps] = True
        bounds = offsets[1:-1].tolist()
        #: per track and note, the coarse step it starts in
        self.onsets: list[np.ndarray] = np.split(starts, bounds) if tracks else []
        fine = np.rint(start_quarters * ONSET_STEPS_PER_QUARTER).astype(np.int64)
        #: per track and note, its onset on the fine onset grid
        self.fine_onsets: list[np.ndarray] = np.split(fine, bounds) if tracks else []
        changes = np.concatenate([[0], np.cumsum(np.diff(fine) != 0)])
        #: per track, distinct fine onsets
        self.onset_count: list[int] = [
            int(changes[hi - 1] - changes[lo]) + 1 if hi > lo else 0 for lo, hi in zip(offsets[:-1], offsets[1:])
        ]


def _max_of_others(values: np.ndarray) -> np.ndarray:
    """Per row, the elementwise max over the other rows (-1 where there is no other row)."""
    if values.shape[0] < 2:
        return np.full_like(values, -1)
    # The row holding each column's maximum sees the second largest; the others see the maximum.
    holder = values.argmax(axis=0)
    columns = np.arange(values.shape[1])
    first = values[holder, columns]
    rest = values.copy()
    rest[holder, columns] = np.iinfo(values.dtype).min
    out = np.broadcast_to(first, values.shape).copy()
    out[holder, columns] = rest.max(axis=0)
    return out


def _line_features(pitches: np.ndarray, onset_steps: np.ndarray) -> dict[str, float]:
    """Features of a track's top line (`pitches` and `onset_steps`, one per note, sorted by onset): chord
    strikes, stepwise motion, repeats, patterns and rhythm variety."""
    # Differences by slicing, not np.diff: a track costs a few dozen small calls, and np.diff's own Python costs
    # as much as the subtraction.
    change = onset_steps[1:] - onset_steps[:-1]
    if (change < 0).any():  # notes out of order (a hand-made track): the distinct onsets, sorted
        steps, first = np.unique(onset_steps, return_index=True)
    else:  # where sorted onsets change is where each distinct onset's notes start
        first = np.concatenate([[True], change != 0]).nonzero()[0] if onset_steps.size else change
        steps = onset_steps[first]
    per_onset = np.concatenate([first[1:], [onset_steps.size]]) - first
    chord_onsets = np.count_nonzero(per_onset >= 2) / steps.size if steps.size else 0.0
    # The highest note struck at each onset step (notes are sorted by start; take the max per group).
    line = np.maximum.reduceat(pitches, first) if steps.size else pitches
    moves = np.abs(line[1:] - line[:-1])
    steps_moved = np.count_nonzero((moves >= 1) & (moves <= 2))
    stepwise = steps_moved / max(1, int(np.count_nonzero(moves))) if moves.size else 0.0
    repeated = (moves.size - np.count_nonzero(moves)) / moves.size if moves.size else 1.0
    # A riff or broken chord repeats a short pattern, often moved to each chord's root: equal pitches or equal
    # moves at a lag of 2-8 notes.
    head = line[:_PATTERN_NOTES]
    head_moves = head[1:] - head[:-1]
    periodic = max(_best_repeat(head), _best_repeat(head_moves))
    gaps = steps[1:] - steps[:-1]
    if gaps.size:
        # The counts of each gap, in the order of the gaps' values (as np.unique gives them: the sum's order).
        small = gaps.min() >= 0 and gaps.max() < 1 << 16
        counts = np.bincount(gaps) if small else np.unique(gaps, return_counts=True)[1]
        counts = counts[counts > 0]
        p = counts / counts.sum()
        entropy = float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: no -0.0 in reports
    else:
        entropy = 0.0
    return {
        "chord_onsets": float(chord_onsets),
        "stepwise": stepwise,
        "repeated": max(0.0, repeated - 0.4) / 0.6,
        "rhythm_variety": min(entropy, 2.0) / 2.0,
        "periodic": max(0.0, periodic - 0.5) / 0.5,
        "contour_periodic": max(0.0, _best_repeat(np.sign(head_moves)) - 0.7) / 0.3,
    }


def _best_repeat(seq: np.ndarray) -> float:
    """The largest share of elements equal to the one 2-8 places earlier (0 for short sequences)."""
    best = 0.0
    for k in range(2, 9):
        if seq.size <= 2 * k:  # too short for this lag, and for the longer ones
            break
        best = max(best, np.count_nonzero(seq[k:] == seq[:-k]) / (seq.size - k))
    return best


@functools.lru_cache(maxsize=4096)  # a collection repeats a few hundred names; three regexes a track add up
def _name_features(name: str) -> dict[str, float]:
    # "track 3" is the reader's stand-in for a missing name: it says nothing.
    if re.fullmatch(r"\s*(track|trk|tr)?\s*\d*\s*", name, re.IGNORECASE):
        return {"melody_name": 0.0, "accompaniment_name": 0.0}
    melody = bool(_MELODY_NAME.search(name)) and not _SUPPORTING_NAME.search(name)
    return {
        "melody_name": float(melody),
        "accompaniment_name": float(not melody and bool(_ACCOMPANIMENT_NAME.search(name))),
    }


def _program_features(program: int) -> dict[str, float]:
    return {
        "bass_program": float(32 <= program <= 39),
        "pad_program": float(48 <= program <= 55 or 88 <= program <= 95),
        "lead_program": float(56 <= program <= 87),
    }


def _add_rest_filling(features, pitched: list[int], grid: _Grid, sounding: np.ndarray) -> None:
    """Marks tracks whose onsets mostly fall where a busier (more onsets), mostly monophonic track is silent."""
    lines = [r for r, i in enumerate(pitched) if features[i]["chord_onsets"] < 0.2]
    for r in range(len(pitched)):
        i = pitched[r]
        features[i]["fills_rests"] = 0.0
        for other in lines:
            if other == r or grid.onset_count[other] <= grid.onset_count[r]:
                continue
            silent_there = ~sounding[other][grid.onsets[r]]
            features[i]["fills_rests"] = max(features[i]["fills_rests"], float(silent_there.mean() > 0.5))
    for i in pitched:
        features[i].setdefault("fills_rests", 0.0)


def _score(f: dict[str, float]) -> float:
    return float(sum(_WEIGHTS[k] * f.get(k, 0.0) for k in _WEIGHTS))


def _alone(f: dict[str, float]) -> float:
    """The score without the features that compare a track with the busiest line (a lead handed between tracks
    gives each of them fewer notes, played where the other rests)."""
    return _score({k: v for k, v in f.items() if k not in ("busiest_line", "fills_rests")})


def choose_melody_tracks(score: Score, selection: str | int = "auto") -> TrackChoice:
    """Decides which tracks of `score` carry the melody.

    Args:
        score: from `read_midi`.
        selection: "auto" (score the evidence; files with one pitched track keep it), "all" (every pitched
            track, as melodyrnn did before it chose), a track name (case-insensitive, every track of that name)
            or an index into `score.tracks`.

    Returns:
        The `TrackChoice`. Drum tracks and empty tracks are never taken.

    Raises:
        NoMelodyError: a name no track has, an index out of range, or a selected track that is drums or empty;
            the message lists the tracks there are.
    """
    verdicts: dict[int, TrackVerdict] = {}
    pitched = []
    for i, t in enumerate(score.tracks):
        if t.is_drum:
            verdicts[i] = TrackVerdict(i, t.name, False, "left out: drum track", "drum track")
        elif not _note_count(t):
            verdicts[i] = TrackVerdict(i, t.name, False, "left out: no notes", "no notes")
        else:
            pitched.append(i)
    if isinstance(selection, str) and selection not in ("auto", "all"):
        wanted = [i for i, t in enumerate(score.tracks) if t.name.strip().lower() == selection.strip().lower()]
        _check_selected(score, wanted, f"no track is named {selection!r}")
        return _fixed(score, verdicts, pitched, wanted, f"named {selection!r}")
    if not isinstance(selection, str):
        if not 0 <= selection < len(score.tracks):
            _check_selected(score, [], f"track index {selection} is out of range")
        _check_selected(score, [selection], "")
        return _fixed(score, verdicts, pitched, [selection], f"index {selection} selected")
    if selection == "all" or len(pitched) <= 1:
        why = "every track" if selection == "all" else "the only pitched track"
        return _fixed(score, verdicts, pitched, pitched, why)
    return _auto(score, verdicts, pitched)


def _check_selected(score: Score, wanted: list[int], problem: str) -> None:
    usable = [i for i in wanted if _note_count(score.tracks[i]) and not score.tracks[i].is_drum]
    if usable:
        return
    if not problem:
        problem = f"track {wanted[0]} is a drum track or empty"
    listing = ", ".join(f"{i} {t.name!r}" for i, t in enumerate(score.tracks) if _note_count(t) and not t.is_drum)
    raise NoMelodyError(score.source, f"{problem}; pitched tracks: {listing or 'none'}")


def _fixed(score: Score, verdicts: dict, pitched: list[int], wanted: list[int], why: str) -> TrackChoice:
    for i in pitched:
        name = score.tracks[i].name
        verdicts[i] = (
            TrackVerdict(i, name, True, f"melody: {why}", why)
            if i in wanted
            else TrackVerdict(i, name, False, "left out: not selected", "not selected")
        )
    taken = tuple(i for i in pitched if i in wanted)
    return TrackChoice(taken, tuple(verdicts[i] for i in range(len(score.tracks))))


def _auto(score: Score, verdicts: dict, pitched: list[int]) -> TrackChoice:
    features = track_features(score)
    scores = {i: _score(features[i]) for i in pitched}
    best = max(pitched, key=lambda i: (scores[i], -i))
    taken = [best]
    # A lead handed between tracks ("Vocal 1", "Vocal 2"): more monophonic tracks named as melody that sound
    # where the best one rests (so their filling its rests is no mark against them) and score close to it.
    for i in pitched:
        f = features[i]
        if i == best or not (f["melody_name"] and features[best]["melody_name"] and f["chord_onsets"] < 0.1):
            continue
        if _alone(f) >= _alone(features[best]) - 1.0 and _overlap(score.tracks[i], score.tracks[best]) < 0.2:
            taken.append(i)
    for i in pitched:
        name, f = score.tracks[i].name, features[i]
        if i in taken:
            verdicts[i] = TrackVerdict(i, name, True, f"melody: {_for_reasons(f)}", "melody", round(scores[i], 3))
            continue
        key = _against(f, features[best])
        verdicts[i] = TrackVerdict(i, name, False, f"left out: {key}", key, round(scores[i], 3))
    return TrackChoice(tuple(sorted(taken)), tuple(verdicts[i] for i in range(len(score.tracks))))


def _overlap(a: Track, b: Track) -> float:
    """The share of `a`'s sounding time during which `b` sounds too (on the feature grid)."""
    grid = _Grid([_note_arrays(a), _note_arrays(b)])
    in_a = grid.count[0] > 0
    return float((in_a & (grid.count[1] > 0)).sum() / max(1, in_a.sum()))


def _for_reasons(f: dict[str, float]) -> str:
    """The evidence for a taken track, as a few words."""
    words = []
    if f["melody_name"]:
        words.append("melody name")
    if f["chord_onsets"] < 0.05 and f["sounding_polyphony"] < 0.1:
        words.append("monophonic")
    if f["stepwise"] >= 0.4:
        words.append("stepwise")
    if f["on_top"] >= 0.6:
        words.append("on top")
    if f["rhythm_variety"] >= 0.5:
        words.append("varied rhythm")
    return ", ".join(words) or "best score"


def _against(f: dict[str, float], best: dict[str, float]) -> str:
    """The feature that counts most against a left-out track, compared with the taken one."""
    deltas = {k: _WEIGHTS[k] * (f.get(k, 0.0) - best.get(k, 0.0)) for k in _LEFT_OUT}
    worst = min(deltas, key=lambda k: deltas[k])
    return _LEFT_OUT[worst] if deltas[worst] < 0 else "less melodic than the melody"
