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


class OutOfRangeError(MelodyRNNError):
    """A pitch lies outside the vocabulary's range."""


class BundleError(MelodyRNNError):
    """A model bundle is corrupt, truncated, foreign or unsafe."""


class DataError(MelodyRNNError):
    """A prepared data cache is missing, corrupt, or was made for another vocabulary."""
