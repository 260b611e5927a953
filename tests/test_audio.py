"""melodyrnn.audio: FluidSynth and numpy renders, WAV format, durations, timing, errors."""

from __future__ import annotations

import io
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from melodyrnn import MelodyRNNError, MidiReadError
from melodyrnn.audio import (
    TAIL_SECONDS,
    default_soundfont,
    melody_to_wav,
    midi_to_wav,
    render_midi,
    synth_backend,
    wav_to_ogg,
)
from melodyrnn.encoding import Melody, melody_to_midi


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768.0, w.getframerate()


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2))) if x.size else 0.0


@pytest.fixture
def two_bars() -> bytes:
    """8 quarter notes at 120 qpm: notes from 0 to 4 seconds."""
    return melody_to_midi(Melody.from_notes([(60 + 2 * i, 4 * i, 4 * i + 4) for i in range(8)]), qpm=120)


@pytest.fixture
def late_a4() -> bytes:
    """One A4 (440 Hz) from 1 s to 2 s at 120 qpm, after two beats of rest."""
    return melody_to_midi(Melody.from_notes([(69, 8, 16)], num_steps=16), qpm=120)


def test_fluidsynth_is_available_with_pretty_midis_soundfont():
    # CI installs pyfluidsynth and libfluidsynth3; the SoundFont comes with pretty_midi.
    assert default_soundfont() is not None and default_soundfont().name == "TimGM6mb.sf2"
    assert synth_backend() == "fluidsynth"


@pytest.mark.parametrize("backend", ["fluidsynth", "numpy"])
def test_render_has_sound_for_the_notes_duration(two_bars, backend):
    rendered = render_midi(two_bars, sample_rate=22050, backend=backend)
    samples, rate = read_wav(rendered.wav)
    assert rendered.backend == backend and rate == 22050 == rendered.sample_rate
    assert samples.size / rate == pytest.approx(4.0 + TAIL_SECONDS, abs=1e-3)
    assert rendered.duration_seconds == pytest.approx(samples.size / rate)
    for second in range(4):  # every note sounds
        assert rms(samples[second * rate : (second + 1) * rate]) > 0.01
    assert np.abs(samples).max() == pytest.approx(0.89, abs=0.01)  # peak-normalized, not clipped


@pytest.mark.parametrize("backend", ["fluidsynth", "numpy"])
def test_silence_before_a_late_note_and_sound_during_it(late_a4, backend):
    samples, rate = read_wav(midi_to_wav(late_a4, sample_rate=16000, backend=backend))
    assert rms(samples[: int(0.95 * rate)]) < 1e-3
    assert rms(samples[int(1.05 * rate) : int(1.9 * rate)]) > 0.02


def test_numpy_synth_plays_the_right_pitch(late_a4):
    samples, rate = read_wav(midi_to_wav(late_a4, sample_rate=16000, backend="numpy"))
    note = samples[int(1.1 * rate) : int(1.9 * rate)]
    spectrum = np.abs(np.fft.rfft(note * np.hanning(note.size)))
    assert np.fft.rfftfreq(note.size, 1 / rate)[spectrum.argmax()] == pytest.approx(440.0, abs=3.0)


def test_fluidsynth_instrument_changes_the_sound():
    melody = Melody.from_notes([(72, 0, 8)])
    piano = melody_to_wav(melody, sample_rate=16000, backend="fluidsynth", program=0)
    flute = melody_to_wav(melody, sample_rate=16000, backend="fluidsynth", program=73)
    a, b = read_wav(piano)[0], read_wav(flute)[0]
    assert a.size == b.size and not np.allclose(a, b, atol=0.05)


def test_auto_backend_uses_fluidsynth_here(two_bars):
    assert render_midi(two_bars, sample_rate=16000).backend == "fluidsynth"


def test_midi_without_notes_is_a_short_silence():
    samples, rate = read_wav(melody_to_wav(Melody(events=np.full(16, -2)), sample_rate=16000))
    # FluidSynth dithers: +-1 LSB is all there may be
    assert samples.size == int(round(TAIL_SECONDS * rate)) and np.abs(samples).max() < 1e-3


def test_bad_midi_bytes_raise_midi_read_error():
    with pytest.raises(MidiReadError, match="not a MIDI file"):
        midi_to_wav(b"RIFF....WAVEfmt this is not MIDI")
    with pytest.raises(MidiReadError, match="the file is empty"):
        midi_to_wav(b"")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backend": "timidity"}, "`backend` must be one of"),
        ({"sample_rate": 100}, "`sample_rate` must be an integer in"),
        ({"soundfont": "/nonexistent/font.sf2"}, "`soundfont` must be an existing"),
    ],
)
def test_bad_arguments_raise(two_bars, kwargs, match):
    with pytest.raises(MelodyRNNError, match=match):
        render_midi(two_bars, **kwargs)


def test_melody_to_wav_needs_a_melody():
    with pytest.raises(MelodyRNNError, match="`melody` must be a Melody"):
        melody_to_wav([60, 62, 64])


def test_renders_in_threads_equal_renders_one_by_one():
    midis = [
        melody_to_midi(Melody.from_notes([(48 + 3 * k + i % 7, 2 * i, 2 * i + 2) for i in range(32)]), program=k * 9)
        for k in range(4)
    ]
    alone = [midi_to_wav(m, sample_rate=16000, backend="fluidsynth") for m in midis]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda m: midi_to_wav(m, sample_rate=16000, backend="fluidsynth"), midis))
    assert together == alone


def test_wav_to_ogg_is_small_and_decodes_to_the_same_length(tune_bytes):
    import soundfile

    rendered = render_midi(tune_bytes, backend="numpy")
    ogg = wav_to_ogg(rendered.wav)
    assert ogg[:4] == b"OggS" and len(ogg) * 10 < len(rendered.wav)
    samples, rate = soundfile.read(io.BytesIO(ogg), dtype="float32")
    assert rate == rendered.sample_rate and abs(len(samples) / rate - rendered.duration_seconds) < 0.01
    assert np.max(np.abs(samples)) > 0.5  # music, not silence
    with pytest.raises(MelodyRNNError, match="cannot encode `wav` as Ogg"):
        wav_to_ogg(b"RIFF not really a wav")
    with pytest.raises(MelodyRNNError, match=r"`quality` must be in \[0, 1\], got 2"):
        wav_to_ogg(rendered.wav, quality=2)
