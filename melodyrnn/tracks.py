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
from itertools import repeat
from operator import mul, sub

from melodyrnn.errors import NoMelodyError
from melodyrnn.midi_io import Score, Track
from melodyrnn.midi_score import concatenated_notes
from melodyrnn.track_grid import FEATURES, grid_features, overlap_share

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

_WEIGHT_NAMES, _WEIGHT_VALUES = tuple(_WEIGHTS), tuple(_WEIGHTS.values())
_LEFT_OUT_NAMES = tuple(_LEFT_OUT)
_LEFT_OUT_WEIGHTS = tuple(_WEIGHTS[k] for k in _LEFT_OUT)


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

    The numbers read from the notes come from `track_grid.grid_features`, all tracks in one compiled call.

    Args:
        score: from `read_midi`.

    Returns:
        track index → feature name → value (the names of `_WEIGHTS`; most are shares in [0, 1]).
    """
    pitched = [i for i, t in enumerate(score.tracks) if not t.is_drum and _note_count(t)]
    if not pitched:
        return {}
    values = grid_features(*concatenated_notes([score.tracks[i] for i in pitched])).tolist()
    features: dict[int, dict[str, float]] = {}
    for i, row in zip(pitched, values):
        track = score.tracks[i]
        # In the order the features were always listed: the name and program features after "slow".
        named = _name_features(track.name).values()  # read only: the dicts are cached
        played = _program_features(track.program).values()
        features[i] = dict(zip(_FEATURE_ORDER, (*row[:_NAMES_AT], *named, *played, *row[_NAMES_AT:])))
    return features


_NAMES_AT = FEATURES.index("slow") + 1
_FEATURE_ORDER = (
    *FEATURES[:_NAMES_AT],
    *("melody_name", "accompaniment_name", "bass_program", "pad_program", "lead_program"),
    *FEATURES[_NAMES_AT:],
)


def _note_count(track: Track) -> int:
    return track.num_notes


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


@functools.lru_cache(maxsize=256)
def _program_features(program: int) -> dict[str, float]:
    return {
        "bass_program": float(32 <= program <= 39),
        "pad_program": float(48 <= program <= 55 or 88 <= program <= 95),
        "lead_program": float(56 <= program <= 87),
    }


def _score(f: dict[str, float]) -> float:
    # The products summed in `_WEIGHTS` order, the same floats as ever (scores are reported and compared).
    return float(sum(map(mul, _WEIGHT_VALUES, map(f.get, _WEIGHT_NAMES, repeat(0.0)))))


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
    best_values = list(map(features[best].get, _LEFT_OUT_NAMES, repeat(0.0)))
    for i in pitched:
        name, f = score.tracks[i].name, features[i]
        if i in taken:
            verdicts[i] = TrackVerdict(i, name, True, f"melody: {_for_reasons(f)}", "melody", round(scores[i], 3))
            continue
        key = _against(f, best_values)
        verdicts[i] = TrackVerdict(i, name, False, f"left out: {key}", key, round(scores[i], 3))
    return TrackChoice(tuple(sorted(taken)), tuple(verdicts[i] for i in range(len(score.tracks))))


def _overlap(a: Track, b: Track) -> float:
    """The share of `a`'s sounding time during which `b` sounds too (on the feature grid)."""
    pitches, starts, ends, _ = concatenated_notes([a, b])
    return overlap_share(pitches, starts, ends, a.num_notes)


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


def _against(f: dict[str, float], best: list[float]) -> str:
    """The feature that counts most against a left-out track, compared with the taken one (`best`: its values of
    the features of `_LEFT_OUT`, in that order)."""
    deltas = list(map(mul, _LEFT_OUT_WEIGHTS, map(sub, map(f.get, _LEFT_OUT_NAMES, repeat(0.0)), best)))
    worst = deltas.index(min(deltas))  # the first of equals, in `_LEFT_OUT` order
    return _LEFT_OUT[_LEFT_OUT_NAMES[worst]] if deltas[worst] < 0 else "less melodic than the melody"
