"""midi_match: symusic's pickled notes against the scan's, exactly, in whatever order symusic keeps them."""

from __future__ import annotations

import struct

import numpy as np
import symusic
from conftest import midi_bytes, note_track, scale_notes

from melodyrnn.midi_match import same_notes
from melodyrnn.midi_scan import scan_events


def test_symusic_notes_are_compared_with_the_scan_exactly():
    data = midi_bytes([note_track(scale_notes(2)), note_track(scale_notes(2, 48), channel=9)])
    spans = [(22, 22 + struct.unpack(">I", data[18:22])[0])]
    spans.append((spans[0][1] + 8, len(data)))
    scanned = scan_events(data, spans, max_ticks=1e9, max_notes=1000, max_map_events=10)
    assert scanned is not None and scanned.groups.tolist() == [0, 25]
    state = np.frombuffer(symusic.Score.from_midi(data).__getstate__(), dtype=np.uint8)
    assert same_notes(state, 480, scanned)
    assert not same_notes(state, 96, scanned)  # another resolution
    assert not same_notes(state[:-1], 480, scanned) and not same_notes(np.append(state, 0), 480, scanned)
    notes_at = 4 + 4 + 4 + 2 + 4  # ticks per quarter, track count, name length (0), program and drum flag, notes
    reversed_notes = state.copy()
    reversed_notes[notes_at : notes_at + 12 * 8] = state[notes_at : notes_at + 12 * 8].reshape(8, 12)[::-1].ravel()
    assert same_notes(reversed_notes, 480, scanned)  # in any order
    scanned.note_velocities[5] += 1
    assert not same_notes(state, 480, scanned) and not same_notes(reversed_notes, 480, scanned)
    scanned.note_velocities[5] -= 1
    scanned.groups[1] = 24  # channel 8: not the drum channel symusic saw
    assert not same_notes(state, 480, scanned)
