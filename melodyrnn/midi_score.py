"""The `Score` a MIDI file is read into: tracks of notes, and the tempo and time-signature maps.

`Score` keeps note positions in quarter notes (what quantization needs, whatever the tempo); `Track` holds
its notes as `Note` objects or as `NoteArrays`, whichever it was given, and builds the other on first use.
`melodyrnn.midi_io` reads and writes them and re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

DRUM_CHANNEL = 9
DEFAULT_QPM = 120.0


@dataclass(frozen=True)
class Note:
    """One note. Positions are in quarter notes from the start of the piece."""

    pitch: int
    velocity: int
    start_quarters: float
    end_quarters: float


class NoteArrays(NamedTuple):
    """A track's notes as parallel arrays, each of shape (notes,)."""

    pitches: np.ndarray  # int64, MIDI pitch
    velocities: np.ndarray  # int64, MIDI velocity
    start_quarters: np.ndarray  # float64, quarter notes from the start of the piece
    end_quarters: np.ndarray  # float64


class Track:
    """The notes of one (MIDI track, channel) pair, sorted by start.

    The notes are held as a list of `Note` or as `NoteArrays` (what the reader makes: no Python object per
    note until `notes` is asked for); each form is built from the other on first use. Treat both as read-only.

    Attributes:
        notes: the notes as `Note` objects.
        arrays: the same notes as `NoteArrays`.
        program: General MIDI program (0-127).
        is_drum: whether the notes are on the drum channel.
        name: the MIDI track's name, or "track N".
    """

    __slots__ = ("_notes", "_arrays", "program", "is_drum", "name")

    def __init__(self, notes: Sequence[Note] = (), program: int = 0, is_drum: bool = False, name: str = ""):
        self._notes: list[Note] | None = list(notes)
        self._arrays: NoteArrays | None = None
        self.program, self.is_drum, self.name = program, is_drum, name

    @classmethod
    def from_arrays(cls, arrays: NoteArrays, *, program: int = 0, is_drum: bool = False, name: str = "") -> Track:
        """A track over notes given as arrays (sorted by start, then pitch)."""
        track = cls(program=program, is_drum=is_drum, name=name)
        track._notes, track._arrays = None, arrays
        return track

    @property
    def notes(self) -> list[Note]:
        if self._notes is None:
            a = self.arrays
            columns = (a.pitches.tolist(), a.velocities.tolist(), a.start_quarters.tolist(), a.end_quarters.tolist())
            self._notes = [Note(*values) for values in zip(*columns)]
        return self._notes

    @notes.setter
    def notes(self, notes: Sequence[Note]) -> None:
        self._notes, self._arrays = list(notes), None

    @property
    def arrays(self) -> NoteArrays:
        if self._arrays is None:
            notes = self.notes
            self._arrays = NoteArrays(
                np.array([n.pitch for n in notes], dtype=np.int64),
                np.array([n.velocity for n in notes], dtype=np.int64),
                np.array([n.start_quarters for n in notes], dtype=np.float64),
                np.array([n.end_quarters for n in notes], dtype=np.float64),
            )
        return self._arrays

    @property
    def num_notes(self) -> int:
        """How many notes, without building them."""
        return len(self._notes) if self._notes is not None else int(self.arrays.pitches.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Track):
            return NotImplemented
        same = (self.program, self.is_drum, self.name) == (other.program, other.is_drum, other.name)
        return same and self.notes == other.notes

    def __repr__(self) -> str:
        return f"Track({self.num_notes} notes, program={self.program}, is_drum={self.is_drum}, name={self.name!r})"


@dataclass
class Score:
    """A parsed MIDI file.

    Attributes:
        tracks: one `Track` per (track, channel) that holds notes.
        tempos: ``(quarters, qpm)`` pairs, sorted, the first at 0.
        time_signatures: ``(quarters, numerator, denominator)`` triples, sorted, the first at 0.
        ticks_per_quarter: the file's resolution.
        source: the path or a description of where the bytes came from.
        repairs: one line per oddity that was repaired while reading.
        chord_symbols: ``(quarters, Harte label)`` pairs, sorted, from the chord symbols a score writes
            (MusicXML, ABC); empty for MIDI, whose chords are read from the accompaniment instead.
    """

    tracks: list[Track]
    tempos: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, DEFAULT_QPM)])
    time_signatures: list[tuple[float, int, int]] = field(default_factory=lambda: [(0.0, 4, 4)])
    ticks_per_quarter: int = 480
    source: str = "<score>"
    repairs: list[str] = field(default_factory=list)
    chord_symbols: tuple[tuple[float, str], ...] = ()

    @property
    def end_quarters(self) -> float:
        """The end of the last note, in quarter notes."""
        return max((float(t.arrays.end_quarters.max()) for t in self.tracks if t.num_notes), default=0.0)

    def quarters_to_seconds(self, quarters: float | np.ndarray) -> np.ndarray:
        """Converts positions in quarter notes to seconds through the tempo map.

        Args:
            quarters: float or array of any shape, in quarter notes.

        Returns:
            float64 array of the same shape, in seconds.
        """
        q = np.asarray(quarters, dtype=np.float64)
        starts = np.array([t[0] for t in self.tempos])
        seconds_per_quarter = 60.0 / np.array([t[1] for t in self.tempos])
        # Seconds elapsed at the start of each tempo segment.
        offsets = np.concatenate([[0.0], np.cumsum(np.diff(starts) * seconds_per_quarter[:-1])])
        i = np.clip(np.searchsorted(starts, q, side="right") - 1, 0, None)
        return offsets[i] + (q - starts[i]) * seconds_per_quarter[i]


def concatenated_notes(tracks: Sequence[Track]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tracks' notes, one track after another, as the compiled readers of many tracks take them: pitches int64,
    starts and ends float64 in quarter notes, each (notes,); and (tracks + 1,) int64 where each track's notes begin,
    their total last."""
    arrays = [t.arrays for t in tracks]
    return (
        np.concatenate([a.pitches for a in arrays]).astype(np.int64, copy=False),
        np.concatenate([a.start_quarters for a in arrays]).astype(np.float64, copy=False),
        np.concatenate([a.end_quarters for a in arrays]).astype(np.float64, copy=False),
        np.cumsum([0, *(a.pitches.size for a in arrays)], dtype=np.int64),
    )
