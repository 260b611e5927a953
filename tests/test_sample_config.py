"""What a user asks the sampler for, checked without TensorFlow: `SampleConfig`'s fields and the dict round trip,
and every primer form `primer_to_melody` accepts, with its errors."""

from __future__ import annotations

import subprocess
import sys

import mido
import numpy as np
import pytest
from conftest import midi_bytes, note_track

from melodyrnn.encoding import EncodingConfig, Melody
from melodyrnn.errors import MelodyRNNError
from melodyrnn.extraction import midi_to_melodies
from melodyrnn.sample_config import PRIMER_EXTRACTION, SampleConfig, primer_to_melody, read_primer

ENCODING = EncodingConfig(min_pitch=48, max_pitch=84)


def primer_file_bytes() -> bytes:
    """Five notes in 3/4 at 90 qpm, program 40, velocity 90: a primer with its own metadata."""
    conductor = [
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90), time=0),
        mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0),
    ]
    notes = [(62, 0, 1), (65, 1, 2), (69, 2, 3), (67, 3, 4.5), (65, 4.5, 6)]
    return midi_bytes([conductor, note_track(notes, program=40, velocity=90)])


def test_importing_it_leaves_tensorflow_unloaded():
    code = "import melodyrnn.sample_config, sys; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False", "False"]


# -- SampleConfig ------------------------------------------------------------------------------------------------


def test_sample_config_round_trips_through_a_dict():
    config = SampleConfig(
        num_melodies=4,
        bars=16,
        temperature=0.9,
        top_p=0.95,
        key="D minor",
        qpm=110,
        time_signature="3/4",
        program=73,
        seed=7,
    )
    assert config.time_signature == (3, 4)
    assert SampleConfig.from_dict(config.to_dict()) == config
    with pytest.raises(MelodyRNNError, match="unknown sample config fields"):
        SampleConfig.from_dict({"temperatur": 1.0})


def test_sample_config_modes():
    assert SampleConfig(temperature=0).greedy and not SampleConfig().greedy
    assert not SampleConfig().uses_beam_search
    assert SampleConfig(beam_size=2).uses_beam_search and SampleConfig(branch_factor=3).uses_beam_search


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"num_melodies": 0}, r"`num_melodies` must be an integer in \[1, 1024\], got 0"),
        ({"num_melodies": True}, r"`num_melodies` must be an integer"),
        ({"num_steps": 0}, r"`num_steps` must be an integer in \[1, 16384\] or None, got 0"),
        ({"num_steps": 100_000}, r"`num_steps` must be an integer in \[1, 16384\] or None, got 100000"),
        ({"num_melodies": 64, "beam_size": 256}, r"`num_melodies` × `beam_size` must be at most 1024 .* = 16384"),
        ({"bars": -1}, r"`bars` must be a number > 0 or None, got -1"),
        ({"bars": 2, "num_steps": 32}, r"give `bars` or `num_steps`, not both"),
        ({"temperature": -1}, r"`temperature` must be >= 0, got -1"),
        ({"top_p": 0.0}, r"`top_p` must be in \(0, 1\], got 0.0"),
        ({"branch_factor": 300}, r"`branch_factor` must be an integer in \[1, 256\], got 300"),
        ({"key": "H major"}, r"unknown tonic 'H'"),
        ({"min_pitch": 128}, r"`min_pitch` must be an integer in \[0, 127\] or None, got 128"),
        ({"min_pitch": 70, "max_pitch": 60}, r"`min_pitch` must be <= `max_pitch`, got 70 > 60"),
        ({"repetition_penalty": 0}, r"`repetition_penalty` must be > 0, got 0"),
        ({"qpm": 2000}, r"`qpm` must be in \[3.58, 1000\] \(MIDI holds nothing slower\) or None, got 2000"),
        ({"qpm": 3}, r"`qpm` must be in \[3.58, 1000\]"),
        ({"time_signature": "3-4"}, r"`time_signature` must look like '3/4'"),
        ({"program": 128}, r"`program` must be an integer in \[0, 127\] or None, got 128"),
        ({"velocity": 0}, r"`velocity` must be an integer in \[1, 127\] or None, got 0"),
        ({"seed": -1}, r"`seed` must be an integer >= 0 or None, got -1"),
        ({"pickup": 1.5}, r"`pickup` must be in \[0, 1\] or None, got 1.5"),
        ({"chord_guidance": -0.5}, r"`chord_guidance` must be a number in \[0, 10\], got -0.5"),
        ({"chord_guidance": "strong"}, r"`chord_guidance` must be a number in \[0, 10\], got 'strong'"),
    ],
)
def test_sample_config_rejects_bad_fields(fields, match):
    with pytest.raises(MelodyRNNError, match=match):
        SampleConfig(**fields)


# -- primers -------------------------------------------------------------------------------------------------------


def test_primer_forms_agree():
    spq = ENCODING.steps_per_quarter
    expected = Melody.from_notes([(62, 0, spq), (65, spq, 2 * spq), (69, 2 * spq, 3 * spq)], steps_per_quarter=spq)
    for primer in ("D4 F4 A4", "D4,F4, A4", [62, 65, 69], ("D4", "F4", "A4"), np.array([62, 65, 69]), [62, "F4", 69]):
        melody, own_meter = read_primer(primer, ENCODING)
        np.testing.assert_array_equal(melody.events, expected.events)
        assert not own_meter  # pitches and names get the default 4/4
    assert primer_to_melody(None, ENCODING) is None
    assert read_primer(expected, ENCODING) == (expected, True)


def test_primer_from_midi_uses_the_training_extraction(tmp_path):
    data = primer_file_bytes()
    assert primer_to_melody(data, ENCODING) == midi_to_melodies(data, ENCODING, PRIMER_EXTRACTION)[0]
    path = tmp_path / "primer.mid"
    path.write_bytes(data)
    melody, own_meter = read_primer(str(path), ENCODING)
    assert own_meter and melody == primer_to_melody(data, ENCODING) and melody.time_signature == (3, 4)
    assert read_primer(path, ENCODING)[0] == melody


@pytest.mark.parametrize(
    "primer, match",
    [
        ("C4 X9", r"unknown note name 'X9'"),
        ([60, 128], r"`primer` pitches must be MIDI numbers in \[0, 127\] or note names, got 128"),
        ([60, True], r"`primer` pitches must be MIDI numbers"),
        ([], r"`primer` must hold at least one note"),
        ("  ", r"`primer` must hold at least one note"),
        (3.5, r"`primer` must be pitches, note names, a Melody, or a MIDI file path or bytes, got float"),
        (Melody.from_notes([(60, 0, 8)], steps_per_quarter=8), r"`primer` must be on the model's grid of 4 steps"),
    ],
)
def test_bad_primers_raise_clear_errors(primer, match):
    with pytest.raises(MelodyRNNError, match=match):
        primer_to_melody(primer, ENCODING)
