"""MIDI → WAV: FluidSynth with a General MIDI SoundFont, or a pure-numpy synth when FluidSynth is missing.

Start at `midi_to_wav(midi_bytes)` (16-bit mono WAV bytes) or `render_midi`, which also says which backend
played. The FluidSynth path drives pyfluidsynth (`pip install pyfluidsynth` plus the system library,
Debian's `libfluidsynth3`) with the TimGM6mb.sf2 SoundFont that pretty_midi ships; the fallback is an
additive sine synth with an attack/decay/release envelope. Notes are read by `midi_io.read_midi`, so a bad
file raises the same `MidiReadError` as everywhere else.
"""

from __future__ import annotations

import importlib.util
import io
import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from melodyrnn.encoding import Melody, melody_to_midi
from melodyrnn.errors import MelodyRNNError
from melodyrnn.midi_io import Score, read_midi

__all__ = [
    "Rendered",
    "render_midi",
    "midi_to_wav",
    "melody_to_wav",
    "wav_to_ogg",
    "synth_backend",
    "default_soundfont",
    "BACKENDS",
]

Backend = Literal["auto", "fluidsynth", "numpy"]
BACKENDS = ("auto", "fluidsynth", "numpy")
#: Seconds of audio kept after the last note ends, so its release is not cut off.
TAIL_SECONDS = 0.75
_DRUM_CHANNEL = 9
_PEAK = 0.89  # about -1 dBFS: loud, never clipped


@dataclass(frozen=True)
class Rendered:
    """One rendering.

    Attributes:
        wav: a complete WAV file: 16-bit PCM, mono.
        backend: "fluidsynth" or "numpy", whichever played.
        sample_rate: samples per second.
        duration_seconds: length of the audio, the last note's end plus `TAIL_SECONDS`.
    """

    wav: bytes
    backend: str
    sample_rate: int
    duration_seconds: float


def default_soundfont() -> Path | None:
    """The General MIDI SoundFont shipped in pretty_midi's package folder (TimGM6mb.sf2), or None.

    Found without importing pretty_midi, which `midi_io` alone imports.
    """
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "TimGM6mb.sf2"
    return path if path.is_file() else None


def _load_fluidsynth():
    """The pyfluidsynth module, or None when the package or the system library is missing."""
    try:
        import fluidsynth  # noqa: PLC0415  (optional dependency)
    except (ImportError, OSError):  # no package, or no libfluidsynth behind it
        return None
    return fluidsynth if hasattr(fluidsynth, "Synth") else None  # a different package of the same name


def synth_backend(soundfont: str | os.PathLike | None = None) -> str:
    """The backend `render_midi(backend="auto")` would use: "fluidsynth" when pyfluidsynth, libfluidsynth and a
    SoundFont are all there, else "numpy"."""
    if _load_fluidsynth() is None:
        return "numpy"
    return "fluidsynth" if (soundfont is not None or default_soundfont() is not None) else "numpy"


# ----------------------------------------------------------------------------------------------------------
# Notes in seconds


def _score_events(score: Score) -> list[tuple[float, float, int, int, int, int, bool]]:
    """``(start_seconds, end_seconds, pitch, velocity, track_index, program, is_drum)`` for every note."""
    out = []
    for index, track in enumerate(score.tracks):
        if not track.notes:
            continue
        starts = score.quarters_to_seconds(np.array([n.start_quarters for n in track.notes]))
        ends = score.quarters_to_seconds(np.array([n.end_quarters for n in track.notes]))
        for note, start, end in zip(track.notes, starts, ends):
            out.append((float(start), float(end), note.pitch, note.velocity, index, track.program, track.is_drum))
    return out


def _to_wav(samples: np.ndarray, sample_rate: int) -> bytes:
    """float samples in [-1, 1], shape (frames,) → 16-bit mono WAV bytes."""
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buffer.getvalue()


def _normalize(samples: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    # Below -60 dBFS there is no music to bring up, only a synth's stray sample: leave silence silent.
    return samples * (_PEAK / peak) if peak > 1e-3 else samples


# ----------------------------------------------------------------------------------------------------------
# Backends


def _render_fluidsynth(events, total_frames: int, sample_rate: int, soundfont: Path, fluidsynth) -> np.ndarray:
    # A synth of its own per call (loading the SoundFont costs ~40 ms): calls share nothing, so several can run in
    # threads at once, and pyfluidsynth's ctypes calls release the GIL while FluidSynth renders.
    synth = fluidsynth.Synth(samplerate=float(sample_rate))
    try:
        sfid = synth.sfload(str(soundfont))
        if sfid < 0:
            raise MelodyRNNError(f"`soundfont` could not be loaded by FluidSynth: {soundfont}")
        # One channel per track (drums on channel 10); tracks beyond 15 share channels round-robin.
        channels: dict[int, int] = {}
        melodic = [c for c in range(16) if c != _DRUM_CHANNEL]
        timeline = []
        for start, end, pitch, velocity, track, program, is_drum in events:
            if track not in channels:
                used = sum(c != _DRUM_CHANNEL for c in channels.values())
                channel = channels[track] = _DRUM_CHANNEL if is_drum else melodic[used % len(melodic)]
                synth.program_select(channel, sfid, 128 if is_drum else 0, program)
            channel = channels[track]
            # note-offs sort before note-ons at the same frame, so a repeated pitch is struck again
            timeline.append((int(round(start * sample_rate)), 1, channel, pitch, velocity))
            timeline.append((int(round(end * sample_rate)), 0, channel, pitch, 0))
        timeline.sort()
        chunks, frame = [], 0
        for at, is_on, channel, pitch, velocity in timeline:
            if at > frame:
                chunks.append(synth.get_samples(at - frame))
                frame = at
            if is_on:
                synth.noteon(channel, pitch, velocity)
            else:
                synth.noteoff(channel, pitch)
        if total_frames > frame:
            chunks.append(synth.get_samples(total_frames - frame))
    finally:
        synth.delete()
    stereo = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(2 * total_frames, np.float32)
    mono = stereo.reshape(-1, 2).mean(axis=1) / 32768.0
    return mono[:total_frames]


def _render_numpy(events, total_frames: int, sample_rate: int) -> np.ndarray:
    """An additive synth: a fundamental and three harmonics under a 10 ms attack, an exponential decay to a
    sustain level, and a 120 ms release; drums become short noise bursts."""
    out = np.zeros(total_frames, np.float32)
    harmonics = np.array([1.0, 2.0, 3.0, 4.0])
    weights = np.array([1.0, 0.5, 0.25, 0.12]) / 1.87
    attack, release = 0.01, 0.12
    rng = np.random.default_rng(0)
    for start, end, pitch, velocity, _, _, is_drum in events:
        first = int(round(start * sample_rate))
        if first >= total_frames:
            continue
        held = max(end - start, 0.02)
        length = min(int(round((held + release) * sample_rate)), total_frames - first)
        t = np.arange(length, dtype=np.float64) / sample_rate
        gain = 0.35 * (velocity / 127.0)
        if is_drum:
            tone = rng.standard_normal(length) * np.exp(-t / 0.05)
        else:
            frequency = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
            usable = harmonics * frequency < sample_rate / 2  # no aliasing above Nyquist
            tone = (np.sin(2 * np.pi * frequency * np.outer(t, harmonics[usable])) * weights[usable]).sum(axis=1)
            envelope = np.minimum(t / attack, 1.0) * (0.6 + 0.4 * np.exp(-t / 0.3))
            envelope *= np.clip((held + release - t) / release, 0.0, 1.0)  # linear release after the note ends
            tone *= envelope
        out[first : first + length] += (gain * tone).astype(np.float32)
    return out


# ----------------------------------------------------------------------------------------------------------
# Public


def render_midi(
    midi_bytes: bytes, sample_rate: int = 44100, soundfont: str | os.PathLike | None = None, backend: Backend = "auto"
) -> Rendered:
    """Renders a MIDI file to audio.

    Args:
        midi_bytes: the MIDI file's bytes (at most `midi_io.MAX_FILE_BYTES`).
        sample_rate: samples per second, in [8000, 192000].
        soundfont: a `.sf2` file for FluidSynth; None uses pretty_midi's General MIDI SoundFont.
        backend: "auto" (FluidSynth when available, else numpy), "fluidsynth" (raise when unavailable) or
            "numpy".

    Returns:
        A `Rendered`: the WAV bytes (16-bit mono, peak-normalized to -1 dBFS) and the backend that played.

    Raises:
        MidiReadError: `midi_bytes` is not a readable MIDI file.
        MelodyRNNError: a bad argument, a missing SoundFont, or backend="fluidsynth" without FluidSynth.

    Example:
        >>> rendered = render_midi(melody_to_midi(melody))
        >>> open("tune.wav", "wb").write(rendered.wav); rendered.backend
        'fluidsynth'
    """
    if backend not in BACKENDS:
        raise MelodyRNNError(f"`backend` must be one of {list(BACKENDS)}, got {backend!r}")
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or not 8000 <= sample_rate <= 192000:
        raise MelodyRNNError(f"`sample_rate` must be an integer in [8000, 192000], got {sample_rate!r}")
    if not isinstance(midi_bytes, (bytes, bytearray, memoryview)):
        raise MelodyRNNError(f"`midi_bytes` must be bytes, got {type(midi_bytes).__name__}")
    if soundfont is not None and not Path(soundfont).is_file():
        raise MelodyRNNError(f"`soundfont` must be an existing .sf2 file, got {os.fspath(soundfont)!r}")

    score = read_midi(bytes(midi_bytes))
    events = _score_events(score)
    end_seconds = max((end for _, end, *_ in events), default=0.0)
    total_frames = int(round((end_seconds + TAIL_SECONDS) * sample_rate))

    fluidsynth = None if backend == "numpy" else _load_fluidsynth()
    font = Path(soundfont) if soundfont is not None else default_soundfont()
    if backend == "fluidsynth" and (fluidsynth is None or font is None):
        missing = (
            "pyfluidsynth or the FluidSynth library (Debian: libfluidsynth3)"
            if fluidsynth is None
            else "a SoundFont (pretty_midi's TimGM6mb.sf2 was not found; pass `soundfont`)"
        )
        raise MelodyRNNError(f"backend='fluidsynth' needs {missing}; use backend='auto' to fall back to numpy")
    if fluidsynth is not None and font is not None:
        samples, used = _render_fluidsynth(events, total_frames, sample_rate, font, fluidsynth), "fluidsynth"
    else:
        samples, used = _render_numpy(events, total_frames, sample_rate), "numpy"
    return Rendered(
        wav=_to_wav(_normalize(samples), sample_rate),
        backend=used,
        sample_rate=sample_rate,
        duration_seconds=total_frames / sample_rate,
    )


def wav_to_ogg(wav: bytes, quality: float = 0.4) -> bytes:
    """WAV bytes → Ogg Vorbis bytes, about ten times smaller for music: what a web page should stream.

    Args:
        wav: a WAV file's bytes (as `Rendered.wav`).
        quality: Vorbis quality in [0, 1]; 0.4 is transparent for a General MIDI melody.

    Raises:
        MelodyRNNError: `soundfile` (libsndfile, in the `app` extra) is not installed, or `wav` is not a WAV file.
    """
    if not 0.0 <= quality <= 1.0:
        raise MelodyRNNError(f"`quality` must be in [0, 1], got {quality!r}")
    try:
        import soundfile
    except ImportError as err:  # also OSError when the wheel's libsndfile cannot load
        raise MelodyRNNError("Ogg output needs the `soundfile` package (pip install soundfile)") from err
    try:
        samples, sample_rate = soundfile.read(io.BytesIO(wav), dtype="float32")
        out = io.BytesIO()
        soundfile.write(out, samples, sample_rate, format="OGG", subtype="VORBIS", compression_level=1.0 - quality)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise MelodyRNNError(f"cannot encode `wav` as Ogg: {err}") from err
    return out.getvalue()


def midi_to_wav(
    midi_bytes: bytes, sample_rate: int = 44100, soundfont: str | os.PathLike | None = None, backend: Backend = "auto"
) -> bytes:
    """`render_midi(...).wav`: a MIDI file's bytes → 16-bit mono WAV bytes. Raises as `render_midi`."""
    return render_midi(midi_bytes, sample_rate, soundfont, backend).wav


def melody_to_wav(
    melody: Melody,
    sample_rate: int = 44100,
    soundfont: str | os.PathLike | None = None,
    backend: Backend = "auto",
    **overrides,
) -> bytes:
    """A melody → WAV bytes, through `melody_to_midi(melody, **overrides)` (``qpm``, ``program``, ...)."""
    if not isinstance(melody, Melody):
        raise MelodyRNNError(f"`melody` must be a Melody, got {type(melody).__name__}")
    return midi_to_wav(melody_to_midi(melody, **overrides), sample_rate, soundfont, backend)
