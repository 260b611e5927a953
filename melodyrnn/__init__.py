"""melodyrnn: learn melodies from MIDI files and write new ones.

The data path: `read_midi` → `score_to_melodies` → `melody_to_tokens` → `prepare` / `PreparedData.dataset`,
and back with `tokens_to_melody` → `melody_to_midi`. See README.md for a first result in minutes.
"""

from melodyrnn.dataset import PreparedData, PrepareReport, prepare
from melodyrnn.encoding import (
    EncodingConfig,
    ExtractionConfig,
    Melody,
    melody_to_midi,
    melody_to_tokens,
    midi_to_melodies,
    note_name_to_pitch,
    pitch_to_note_name,
    score_to_melodies,
    tokens_to_melody,
)
from melodyrnn.errors import (
    BundleError,
    DataError,
    MelodyRNNError,
    MidiReadError,
    NoMelodyError,
    OutOfRangeError,
)
from melodyrnn.midi_io import MidiRepairWarning, Score, read_midi, score_to_midi

__version__ = "0.1.0"

__all__ = [
    "BundleError", "DataError", "EncodingConfig", "ExtractionConfig", "Melody", "MelodyRNNError",
    "MidiReadError", "MidiRepairWarning", "NoMelodyError", "OutOfRangeError", "PrepareReport", "PreparedData",
    "Score", "melody_to_midi", "melody_to_tokens", "midi_to_melodies", "note_name_to_pitch",
    "pitch_to_note_name", "prepare", "read_midi", "score_to_melodies", "score_to_midi", "tokens_to_melody",
]
