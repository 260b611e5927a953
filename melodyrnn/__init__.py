"""melodyrnn: learn melodies from MIDI files and write new ones.

The data path: `read_midi` → `score_to_melodies` → `melody_to_tokens` → `prepare` / `PreparedData.dataset`,
and back with `tokens_to_melody` → `melody_to_midi`. See README.md for a first result in minutes.
"""

from melodyrnn.chords import score_to_chords
from melodyrnn.collection import PrepareReport
from melodyrnn.encoding import EncodingConfig, Melody, melody_to_midi, melody_to_tokens, tokens_to_melody
from melodyrnn.errors import (
    BundleError,
    ChordLabelError,
    DataError,
    InfillError,
    MelodyRNNError,
    MidiReadError,
    MissingExtraError,
    NoMelodyError,
    OutOfRangeError,
    ScoreReadError,
)
from melodyrnn.extraction import ExtractionConfig, midi_to_melodies, score_file_to_melodies, score_to_melodies
from melodyrnn.midi_io import MidiRepairWarning, Score, read_midi, score_to_midi
from melodyrnn.sample_config import SampleConfig, primer_to_melody
from melodyrnn.theory import key_pitch_classes, note_name_to_pitch, parse_key, pitch_to_note_name

__version__ = "0.1.0"

# Loaded on first use: the model half imports Keras and TensorFlow (seconds), and each layer of the package loads
# only what it needs (`import melodyrnn.model` never loads the data pipeline), so `import melodyrnn` and
# `melodyrnn prepare` stay fast and worker processes stay light.
_LAZY = {
    "prepare": "melodyrnn.dataset",
    "PreparedData": "melodyrnn.dataset",
    "load": "melodyrnn.bundle",
    "load_bundle": "melodyrnn.bundle",
    "save_bundle": "melodyrnn.bundle",
    "Bundle": "melodyrnn.bundle",
    "ModelConfig": "melodyrnn.model",
    "build_model": "melodyrnn.model",
    "MelodyModel": "melodyrnn.model",
    "Sampler": "melodyrnn.sampling",
    "generate": "melodyrnn.sampling",
    "train": "melodyrnn.training",
    "TrainConfig": "melodyrnn.training",
    "TrainResult": "melodyrnn.training",
    "evaluate": "melodyrnn.evaluation",
    "score_melody": "melodyrnn.evaluation",
    "originality": "melodyrnn.copies",
    "harmonize": "melodyrnn.harmonize",
    "Harmonizer": "melodyrnn.harmonize",
    "load_harmonizer": "melodyrnn.harmonize",
    "train_harmonizer": "melodyrnn.harmonizer_training",
    "infill": "melodyrnn.sampling",
    "score_infill": "melodyrnn.sampling",
    "vary": "melodyrnn.sampling",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'melodyrnn' has no attribute {name!r}")


__all__ = [
    "BundleError",
    "ChordLabelError",
    "DataError",
    "InfillError",
    "EncodingConfig",
    "ExtractionConfig",
    "Melody",
    "MelodyRNNError",
    "MidiReadError",
    "MidiRepairWarning",
    "MissingExtraError",
    "NoMelodyError",
    "OutOfRangeError",
    "PrepareReport",
    "SampleConfig",
    "Score",
    "ScoreReadError",
    "melody_to_midi",
    "melody_to_tokens",
    "midi_to_melodies",
    "note_name_to_pitch",
    "key_pitch_classes",
    "parse_key",
    "pitch_to_note_name",
    "primer_to_melody",
    "read_midi",
    "score_to_chords",
    "score_file_to_melodies",
    "score_to_melodies",
    "score_to_midi",
    "tokens_to_melody",
    *_LAZY,
]
