"""The harmonizer: a bidirectional recurrent model that reads a whole melody and gives it one chord per beat.

Start with `harmonize` (a melody or a file in, the melody with its `chords` filled out) and `melody_to_frames`
(what the model reads); `melodyrnn.harmonizer_training` trains one.
The chord under a bar depends on where the phrase goes next, so the network reads the melody both ways: the
project's own `Bidirectional` around its own `LSTM` (`build_harmonizer`).
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras
import numpy as np

from melodyrnn import bundle as bundles
from melodyrnn.chords import NO_CHORD, Chord, format_label, parse_label
from melodyrnn.encoding import Melody
from melodyrnn.errors import BundleError, MelodyRNNError
from melodyrnn.layers import LSTM, Bidirectional
from melodyrnn.theory import key_pitch_classes, parse_key

__all__ = [
    "QUALITIES",
    "NUM_CLASSES",
    "Harmonizer",
    "harmonize",
    "build_harmonizer",
    "melody_to_frames",
    "label_to_class",
    "class_to_label",
    "save_harmonizer",
    "load_harmonizer",
    "DEFAULT_HARMONIZER_PATH",
]

TASK = "harmonize"
DEFAULT_HARMONIZER_PATH = Path(__file__).parent / "pretrained" / "harmonizer.melodyrnn"
#: The chord qualities the harmonizer chooses from, each on 12 roots, plus "N" (no chord): 61 classes. Labels of
#: other qualities are reduced when training: maj7, maj6, maj9, aug, sus2, sus4, 5 and 1 → maj; 9, 11, 13 → 7;
#: minmaj7, min6, min9 → min; dim7 and hdim7 → dim. Inversions are dropped (only the root counts).
QUALITIES = ("maj", "min", "7", "min7", "dim")
NUM_CLASSES = 12 * len(QUALITIES) + 1
N_CLASS = NUM_CLASSES - 1
_REDUCED = {
    "maj7": "maj", "maj6": "maj", "maj9": "maj", "aug": "maj", "sus2": "maj", "sus4": "maj", "5": "maj", "1": "maj",
    "9": "7", "11": "7", "13": "7", "minmaj7": "min", "min6": "min", "min9": "min", "dim7": "dim", "hdim7": "dim",
}  # fmt: skip
_MAX_BEATS = 12  # beat-in-bar one-hot width; later beats of very long bars share the last slot
_METERS = (2, 3, 4)  # beats per bar with a slot of their own; the others share one
#: Per-frame features: sounding share, onsets and the pitch sounding at the frame's start (12 pitch classes each),
#: rest share, beat in the bar (one-hot), beats per bar (one-hot 2/3/4/other) and compound meter (6/8, 9/8, 12/8).
NUM_FEATURES = 3 * 12 + 1 + _MAX_BEATS + len(_METERS) + 1 + 1
_PER = ("beat", "half_bar")


# --------------------------------------------------------------------------------------------------
# Chord classes


def label_to_class(label: str) -> int:
    """A Harte label's class: ``root * len(QUALITIES) + quality`` after the reduction `QUALITIES` documents, or the
    last class for ``N``. Raises `ChordLabelError` for a bad label."""
    chord = parse_label(label)
    if chord is None:
        return N_CLASS
    quality = _REDUCED.get(chord.quality, chord.quality)
    return chord.root * len(QUALITIES) + QUALITIES.index(quality)


def class_to_label(index: int) -> str:
    """The Harte label of a class (``C:maj``, ``A:min7``, ``N``)."""
    if index == N_CLASS:
        return NO_CHORD
    return format_label(Chord(index // len(QUALITIES), QUALITIES[index % len(QUALITIES)]))


def transpose_classes(classes: np.ndarray, semitones: int) -> np.ndarray:
    roots, qualities = np.divmod(classes, len(QUALITIES))
    moved = ((roots + semitones) % 12) * len(QUALITIES) + qualities
    return np.where(classes == N_CLASS, N_CLASS, moved)


def allowed_classes(key: str | None = None, vocabulary=None) -> np.ndarray:
    """bool `(NUM_CLASSES,)`: the classes a restriction leaves (``N`` always stays).

    Args:
        key: only chords whose tones all lie in the key's scale ("D minor", "F major", see `parse_key`); minor keys
            also get their raised seventh, so the dominant (E:maj, E:7 in A minor) stays.
        vocabulary: only these qualities (a subset of `QUALITIES`, a list or a comma-separated string).

    Raises:
        MelodyRNNError: an unknown key or quality, or a restriction that leaves no chord.
    """
    allowed = np.ones(NUM_CLASSES, bool)
    if vocabulary is not None:
        names = [q.strip() for q in vocabulary.split(",")] if isinstance(vocabulary, str) else list(vocabulary)
        unknown = [q for q in names if q not in QUALITIES]
        if not names or unknown:
            raise MelodyRNNError(f"`vocabulary` must name qualities among {QUALITIES}, got {vocabulary!r}")
        allowed[:N_CLASS] = [QUALITIES[i % len(QUALITIES)] in names for i in range(N_CLASS)]
    if key is not None:
        tonic, scale = parse_key(key)
        tones = set(key_pitch_classes(key)) | ({(tonic + 11) % 12} if scale == "minor" else set())
        for i in range(N_CLASS):
            chord = Chord(i // len(QUALITIES), QUALITIES[i % len(QUALITIES)])
            allowed[i] &= set(chord.pitch_classes) <= tones
    if not allowed[:N_CLASS].any():
        raise MelodyRNNError(f"no chord of {QUALITIES} fits key={key!r} with vocabulary={vocabulary!r}")
    return allowed


# --------------------------------------------------------------------------------------------------
# What the model reads


def _beat_steps(numerator: int, denominator: int, steps_per_quarter: int) -> tuple[int, int, bool]:
    """(steps per beat, beats per bar, compound) of a meter: a dotted quarter is the beat of 6/8, 9/8, 12/8."""
    compound = denominator == 8 and numerator % 3 == 0 and numerator > 3
    beat = max(1, round(steps_per_quarter * (1.5 if compound else 4 / denominator)))
    bar = steps_per_quarter * 4 * numerator / denominator
    return beat, max(1, round(bar / beat)), compound


def _frames(melody: Melody) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Beat frames: int start steps `(frames,)`, beat in bar, beats per bar, and compound flags (same shape)."""
    starts, beats, per_bar, compound = [], [], [], []
    meters = list(melody.time_signatures) + [(len(melody), 0, 0)]
    for (step, numerator, denominator), (end, _, _) in zip(meters[:-1], meters[1:]):
        beat, bars, is_compound = _beat_steps(numerator, denominator, melody.steps_per_quarter)
        for i, start in enumerate(range(step, end, beat)):
            starts.append(start)
            beats.append(i % bars)
            per_bar.append(bars)
            compound.append(is_compound)
    return np.array(starts, np.int64), np.array(beats), np.array(per_bar), np.array(compound, bool)


def melody_to_frames(melody: Melody) -> tuple[np.ndarray, np.ndarray]:
    """The harmonizer's input: one feature vector per beat of `melody`.

    Returns:
        `(features, starts)`: float32 `(frames, NUM_FEATURES)` (see `NUM_FEATURES`; never all zeros, so zero
        padding marks the end of a sequence) and int64 `(frames,)`, the step where each beat starts.
    """
    events = melody.events.astype(np.int64)
    # the pitch sounding at every step (-1: silence): a NOTE_ON sounds until the next NOTE_ON or NOTE_OFF
    changes = np.flatnonzero(events != -2)
    sounding = np.full(events.size, -1, np.int64)
    if changes.size:
        held = np.searchsorted(changes, np.arange(events.size), side="right") - 1
        valid = held >= 0
        sounding[valid] = events[changes[held[valid]]]
    sounding = np.where(sounding >= 0, sounding % 12, -1)
    starts, beats, per_bar, compound = _frames(melody)
    ends = np.append(starts[1:], events.size)
    features = np.zeros((starts.size, NUM_FEATURES), np.float32)
    pcs = np.arange(12)
    for f, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist())):
        window = sounding[lo:hi]
        features[f, :12] = (window[:, None] == pcs).mean(axis=0)
        onsets = events[lo:hi]
        features[f, 12:24] = np.isin(pcs, onsets[onsets >= 0] % 12)
        if window[0] >= 0:
            features[f, 24 + window[0]] = 1.0
        features[f, 36] = (window < 0).mean()
    features[np.arange(starts.size), 37 + np.minimum(beats, _MAX_BEATS - 1)] = 1.0
    meter_slot = np.array([_METERS.index(b) if b in _METERS else len(_METERS) for b in per_bar.tolist()], np.int64)
    features[np.arange(starts.size), 37 + _MAX_BEATS + meter_slot] = 1.0
    features[:, -1] = compound
    return features, starts


def transpose_features(features: np.ndarray, semitones: int) -> np.ndarray:
    """`features` of the melody moved by `semitones`: the three pitch-class blocks rotate."""
    moved = features.copy()
    for block in range(3):
        columns = slice(12 * block, 12 * block + 12)
        moved[..., columns] = np.roll(features[..., columns], semitones, axis=-1)
    return moved


def chords_to_classes(melody: Melody, starts: np.ndarray) -> np.ndarray:
    """int64 `(frames,)`: the class of the chord in force at each frame start (``N`` before the first change)."""
    steps = np.array([s for s, _ in melody.chords], np.int64)
    classes = np.array([label_to_class(label) for _, label in melody.chords] + [N_CLASS], np.int64)
    index = np.searchsorted(steps, starts, side="right") - 1
    return classes[np.where(index >= 0, index, -1)]


# --------------------------------------------------------------------------------------------------
# The model and its bundle


@dataclass
class Harmonizer:
    """A harmonizer model with its settings.

    Attributes:
        model: Keras model, float32 `(batch, frames, NUM_FEATURES)` → logits `(batch, frames, NUM_CLASSES)`.
        config: ``units``, ``bidirectional``, ``qualities``, ``num_features``.
        metadata: what it learnt from, its validation scores, ``created``, ``versions``.
        path: the file it came from.
    """

    model: keras.Model
    config: dict
    metadata: dict = field(default_factory=dict)
    path: str = ""

    def logits(self, features: list[np.ndarray]) -> list[np.ndarray]:
        """float32 logits `(frames, NUM_CLASSES)` for each melody's `(frames, NUM_FEATURES)` features."""
        longest = max(f.shape[0] for f in features)
        batch = np.zeros((len(features), longest, NUM_FEATURES), np.float32)
        for i, f in enumerate(features):
            batch[i, : f.shape[0]] = f
        out = keras.ops.convert_to_numpy(self.model(batch, training=False))
        return [out[i, : f.shape[0]] for i, f in enumerate(features)]


def build_harmonizer(units: int = 64, bidirectional: bool = True) -> Harmonizer:
    """A new, untrained harmonizer: Masking → Dense(units, tanh) → Bidirectional(LSTM(units)) → Dense(classes).

    Args:
        units: LSTM units (per direction when `bidirectional`).
        bidirectional: read the melody both ways (melodyrnn's `Bidirectional`); False: forwards only, a model
            that, like a player reading from left to right, sees only the beats so far.

    Raises:
        MelodyRNNError: `units` not a positive int.
    """
    if not isinstance(units, int) or isinstance(units, bool) or not 1 <= units <= 4096:
        raise MelodyRNNError(f"`units` must be an int in [1, 4096], got {units!r}")
    recurrent = LSTM(units, return_sequences=True, name="lstm")
    # Sequential, not functional: its saved config names only layers (no tensor references to vet in safe mode)
    # The mask (a real frame always has a beat and a meter slot set) keeps the backward reading from starting in
    # the zero padding after a short melody; a forward reading never reaches the padding before a real frame.
    masking = [keras.layers.Masking(0.0)] if bidirectional else []
    model = keras.Sequential(
        [
            keras.Input((None, NUM_FEATURES), name="frames"),
            *masking,
            keras.layers.Dense(units, activation="tanh", name="project"),
            Bidirectional(recurrent, name="bidirectional") if bidirectional else recurrent,
            keras.layers.Dense(NUM_CLASSES, name="chords"),
        ],
        name="harmonizer",
    )
    config = {"units": units, "bidirectional": bool(bidirectional), "qualities": list(QUALITIES)}
    return Harmonizer(model, {**config, "num_features": NUM_FEATURES})


def save_harmonizer(path: str | os.PathLike, harmonizer: Harmonizer, metadata: dict | None = None) -> Path:
    """Writes `harmonizer` as one bundle file whose header says ``task: harmonize`` (see `bundle.save_task_bundle`)."""
    fresh = build_harmonizer(harmonizer.config["units"], harmonizer.config["bidirectional"])
    fresh.model.set_weights(harmonizer.model.get_weights())  # without the optimizer: a few hundred KB
    meta = {**harmonizer.metadata, **(metadata or {})}
    return bundles.save_task_bundle(path, fresh.model, TASK, harmonizer.config, meta)


def load_harmonizer(path: str | os.PathLike | None = None) -> Harmonizer:
    """Loads a harmonizer bundle in Keras safe mode (None: the one shipped in `melodyrnn/pretrained/`).

    Raises:
        BundleError: missing, corrupt or unsafe file; a melody model's bundle; one of another chord vocabulary.
    """
    if path is None:
        if not DEFAULT_HARMONIZER_PATH.is_file():
            raise BundleError(f"no harmonizer is bundled with this install ({DEFAULT_HARMONIZER_PATH}); pass a path")
        path = DEFAULT_HARMONIZER_PATH
    model, config, metadata = bundles.load_task_bundle(path, TASK)
    if config.get("qualities") != list(QUALITIES) or config.get("num_features") != NUM_FEATURES:
        raise BundleError(f"{path} is a harmonizer of another vocabulary or features ({config}); retrain it")
    if tuple(model.output_shape)[-1] != NUM_CLASSES or tuple(model.input_shape)[-1] != NUM_FEATURES:
        raise BundleError(f"{path} is corrupt: its model does not map {NUM_FEATURES} features to {NUM_CLASSES} chords")
    return Harmonizer(model, config, metadata, str(path))


# --------------------------------------------------------------------------------------------------
# Harmonizing


def _read_melodies(source) -> tuple[list[Melody], bool]:
    """The melodies of `source` (a Melody, or a MIDI/MusicXML/ABC path) and whether it was a single Melody."""
    if isinstance(source, Melody):
        return [source], True
    if not isinstance(source, (str, os.PathLike)):
        raise MelodyRNNError(f"`melody_or_path` must be a Melody or a file path, got {type(source).__name__}")
    from melodyrnn.extraction import ExtractionConfig, midi_to_melodies, score_file_to_melodies
    from melodyrnn.scores import SCORE_SUFFIXES

    extraction = ExtractionConfig(chords="none")  # the chords are about to be replaced
    if Path(source).suffix.lower() in SCORE_SUFFIXES:
        return score_file_to_melodies(source, extraction=extraction), False
    return midi_to_melodies(source, extraction=extraction), False


def _choose(logits: np.ndarray, allowed: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """One class per row of float `(rows, NUM_CLASSES)` logits: argmax at temperature 0, else a draw."""
    logits = np.where(allowed, logits.astype(np.float64), -np.inf)
    if temperature == 0:
        return logits.argmax(axis=-1)
    scaled = (logits - logits.max(axis=-1, keepdims=True)) / temperature
    probs = np.exp(scaled)
    probs /= probs.sum(axis=-1, keepdims=True)
    return np.array([rng.choice(NUM_CLASSES, p=p) for p in probs])


def _groups(melody: Melody, starts: np.ndarray, per: str) -> np.ndarray:
    """int `(frames,)`: the chord slot of each beat: every beat, or each half bar (a bar of an odd number of beats,
    3/4 say, is one slot)."""
    if per == "beat":
        return np.arange(starts.size)
    _, beats, per_bar, _ = _frames(melody)
    half = np.where(per_bar % 2 == 0, per_bar // 2, per_bar)
    new_slot = (beats == 0) | (beats == half)
    return np.cumsum(new_slot) - 1


def harmonize(
    melody_or_path,
    model=None,
    *,
    temperature: float = 0.0,
    key: str | None = None,
    vocabulary=None,
    per: str = "beat",
    seed: int | None = None,
):
    """Gives a melody chords: one per beat (or half bar) from a harmonizer that reads the whole melody.

    Args:
        melody_or_path: a `Melody`, or a MIDI / MusicXML / ABC file (every melody in it is harmonized).
        model: a `Harmonizer`, a harmonizer bundle's path, or None for the bundled one.
        temperature: 0 takes the likeliest chord of each slot; > 0 draws from the softmax at that temperature.
        key: only the diatonic chords of this key ("G major", "E minor"; see `allowed_classes`).
        vocabulary: only these qualities, a subset of `QUALITIES` (["maj", "min"] or "maj,min").
        per: "beat" (a beat is a dotted quarter in 6/8, 9/8, 12/8) or "half_bar" (the beats' log-probabilities
            summed over each half bar).
        seed: seed of the draws when `temperature` > 0.

    Returns:
        The melody with its `chords` replaced (``(step, label)`` changes, Harte labels of `QUALITIES` or ``N``),
        or for a file a list of them.

    Raises:
        MelodyRNNError: bad arguments, an empty melody; `MidiReadError`, `ScoreReadError`, `NoMelodyError` for a
            file; `BundleError` for a bad model file or a melody model passed as the harmonizer.

    Example:
        >>> melody = melodyrnn.harmonize("tune.mid", key="D major")[0]
        >>> melody.chords[:2]
        ((0, 'D:maj'), (8, 'A:7'))
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise MelodyRNNError(f"`temperature` must be a number >= 0, got {temperature!r}")
    if per not in _PER:
        raise MelodyRNNError(f"`per` must be one of {_PER}, got {per!r}")
    allowed = allowed_classes(key, vocabulary)
    if model is None or isinstance(model, (str, os.PathLike)):
        model = load_harmonizer(model)
    if not isinstance(model, Harmonizer):
        raise MelodyRNNError(f"`model` must be a Harmonizer or a harmonizer bundle's path, got {type(model).__name__}")
    melodies, single = _read_melodies(melody_or_path)
    if any(len(m) == 0 for m in melodies):
        raise MelodyRNNError("cannot harmonize a melody of 0 steps")
    frames = [melody_to_frames(m) for m in melodies]
    rng = np.random.default_rng(seed)
    done = []
    for melody, (_, starts), logits in zip(melodies, frames, model.logits([f for f, _ in frames])):
        slots = _groups(melody, starts, per)
        log_probs = keras.ops.convert_to_numpy(keras.ops.log_softmax(logits, axis=-1))
        pooled = np.zeros((slots.max() + 1, NUM_CLASSES))
        np.add.at(pooled, slots, log_probs)
        classes = _choose(pooled, allowed, float(temperature), rng)[slots]
        changes = [(int(starts[0]), class_to_label(int(classes[0])))]
        for start, c in zip(starts[1:].tolist(), classes[1:].tolist()):
            if class_to_label(c) != changes[-1][1]:
                changes.append((start, class_to_label(c)))
        done.append(replace(melody, chords=tuple(changes)))
    return done[0] if single else done


class _CallableModule(types.ModuleType):
    """Importing `melodyrnn.harmonize` makes the module an attribute of the package, hiding the lazily loaded
    function of the same name: the module, called, is that function, so `melodyrnn.harmonize(...)` always works."""

    def __call__(self, *args, **kwargs):
        return harmonize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
