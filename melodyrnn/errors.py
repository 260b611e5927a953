"""The library's exception family.

Every failure a user can cause (a bad file, a bad argument, a bad bundle) raises a subclass of
`MelodyRNNError`, which is itself a `ValueError`, so callers can catch either.
"""

from __future__ import annotations


class MelodyRNNError(ValueError):
    """Base class of every error melodyrnn raises on bad input."""


class MidiReadError(MelodyRNNError):
    """A MIDI file (or bytes) could not be read: not MIDI, truncated, corrupt or pathological."""

    def __init__(self, source: object, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"cannot read MIDI {self.source}: {reason}")


class NoMelodyError(MelodyRNNError):
    """A readable MIDI file holds no melody that passes the extraction filters."""

    def __init__(self, source: object, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"no melody in {self.source}: {reason}")


class ScoreReadError(MelodyRNNError):
    """A MusicXML or ABC file (or one tune of an ABC tune book) could not be read: malformed, truncated or too big."""

    def __init__(self, source: object, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"cannot read score {self.source}: {reason}")


class MissingExtraError(MelodyRNNError):
    """An optional dependency is not installed; the message names the extra that brings it."""


class OutOfRangeError(MelodyRNNError):
    """A pitch lies outside the vocabulary's range."""


class BundleError(MelodyRNNError):
    """A model bundle is corrupt, truncated, foreign or unsafe."""


class DataError(MelodyRNNError):
    """A prepared data cache is missing, corrupt, or was made for another vocabulary."""


class ChordLabelError(MelodyRNNError):
    """A chord label is not Harte syntax (``C:maj``, ``A:min7``, ``G:7/3``, ``N``) or names an unknown quality."""


class NotationError(MelodyRNNError):
    """A melody cannot be written as notation (a value that needs tuplets), or a notation format is unknown."""


class InfillError(MelodyRNNError):
    """The bars asked for cannot be rewritten: a gap outside the melody or empty, or bar lines off the grid."""
