"""Writes the small real MIDI files in tests/data/ (run once; the files are committed).

Each file is one kind of input a real collection contains; tests/test_midi_io.py documents what
melodyrnn does with each.
"""

from pathlib import Path

import mido
from conftest import midi_bytes, note_track, scale_notes

HERE = Path(__file__).parent / "data"


def main() -> None:
    HERE.mkdir(exist_ok=True)
    tempo = [mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(96), time=0)]
    good = midi_bytes([tempo, note_track(scale_notes(8))])
    (HERE / "tune.mid").write_bytes(good)
    (HERE / "empty.mid").write_bytes(b"")
    (HERE / "corrupt.mid").write_bytes(good[:40] + bytes(range(256)) * 2)
    (HERE / "drums_only.mid").write_bytes(midi_bytes([tempo, note_track(scale_notes(8, 36), channel=9)]))
    chords = [(p, s, e) for p0, s, e in scale_notes(8) for p in (p0 - 12, p0 - 5, p0)]
    (HERE / "polyphonic.mid").write_bytes(midi_bytes([tempo, note_track(chords, program=0)]))
    # Tempo 90 → 140 at bar 5 and meter 4/4 → 3/4 at bar 5 (quarter 16).
    conductor = [
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90), time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(140), time=16 * 480),
        mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0),
    ]
    notes = scale_notes(4) + [(p, s + 16 - 0, e + 16) for p, s, e in scale_notes(4, 62, 3)][: 4 * 3]
    (HERE / "tempo_meter_changes.mid").write_bytes(midi_bytes([conductor, note_track(notes)]))
    (HERE / "not_midi.mid").write_bytes(b"This is a text file that someone renamed to .mid\n")


if __name__ == "__main__":
    main()
