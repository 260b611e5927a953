"""MIDI in and out: the only module that touches symusic and mido (pretty_midi is used by `audio`).

Start at `read_midi` (a path or bytes → `Score`) and `score_to_midi` (a `Score` → bytes). A `Score` keeps
note positions in quarter notes — what quantization needs, whatever the tempo — and carries the tempo
and time-signature maps, so seconds are always derivable (`Score.quarters_to_seconds`). Reading has two
paths with one outcome: symusic's C++ parser, for files `midi_scan` vouches for event by event, and mido's
message loop for the rest, which repairs or refuses them.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from melodyrnn.errors import MidiReadError
from melodyrnn.midi_match import same_notes
from melodyrnn.midi_scan import ScannedFile, scan_events
from melodyrnn.midi_score import DEFAULT_QPM, DRUM_CHANNEL, Note, NoteArrays, Score, Track
from melodyrnn.theory import DENOMINATORS, MAX_NUMERATOR, is_usable_time_signature

#: Files larger than this are refused before parsing; real melody files are kilobytes.
MAX_FILE_BYTES = 16 * 1024 * 1024
# MIDI stores a tempo as microseconds per quarter note in 24 bits.
_MAX_TEMPO = 0xFFFFFF
#: The slowest tempo a MIDI file can hold, about 3.58 quarter notes per minute.
MIN_QPM = 60_000_000 / _MAX_TEMPO
#: Pieces longer than this (in quarter notes: ~14 hours at 120 qpm) are refused as pathological.
MAX_QUARTERS = 100_000.0
#: Files with more notes (a few hours of dense piano) are refused: it bounds the work one file can cost.
MAX_NOTES = 500_000
#: Files with more tempo and time-signature changes than this are refused for the same reason.
MAX_MAP_EVENTS = 50_000


# The same few meters come file after file; typed, so a bool or a float never shares an int's cached answer.
_usable_meter = functools.lru_cache(maxsize=1024, typed=True)(is_usable_time_signature)


class MidiRepairWarning(UserWarning):
    """A recoverable oddity in a MIDI file was repaired while reading it."""


def _count_complete_chunks(data: bytes) -> tuple[int, bool]:
    """Counts the complete chunks after the header; says whether the data ends inside a chunk."""
    pos, count = 14, 0
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        if pos + 8 + length > len(data):
            return count, True
        count += 1
        pos += 8 + length
    return count, pos != len(data)


def _checked_header(data: bytes, source: str, repairs: list[str]) -> tuple[bytes, int, int]:
    """The data to parse (unwrapped, header repaired), its file type and track count; raises on what no reader
    could read."""
    if len(data) == 0:
        raise MidiReadError(source, "the file is empty")
    if not data.startswith(b"MThd"):
        if data[:4] == b"RIFF" and b"MThd" in data[:64]:
            # RIFF-wrapped MIDI (.rmi): the standard file sits inside the 'data' chunk.
            data = data[data.index(b"MThd") :]
            repairs.append("unwrapped a RIFF (.rmi) container")
        else:
            raise MidiReadError(source, "not a MIDI file (no 'MThd' header)")
    if len(data) < 14:
        raise MidiReadError(source, "truncated header")
    file_type, n_tracks, division = struct.unpack(">HHH", data[8:14])
    if division & 0x8000:
        raise MidiReadError(source, "SMPTE time division is not supported")
    if division == 0:
        raise MidiReadError(source, "ticks per quarter note is 0")
    complete, ends_inside = _count_complete_chunks(data)
    if ends_inside:
        raise MidiReadError(source, "the file is truncated or corrupt (a chunk runs past its end)")
    if complete == 0:
        raise MidiReadError(source, "the file has a header but no tracks")
    if complete < n_tracks:
        # Repair: read the tracks that are there rather than failing on the missing ones.
        repairs.append(f"header announces {n_tracks} tracks but the file holds {complete}")
        data = data[:10] + struct.pack(">H", complete) + data[12:]
        n_tracks = complete
    return data, file_type, n_tracks


def _parse_with_mido(data: bytes, source: str, repairs: list[str]) -> Any:
    import mido

    try:
        return mido.MidiFile(file=io.BytesIO(data))
    except ValueError as err:
        if "data byte" not in str(err):
            raise MidiReadError(source, str(err) or type(err).__name__) from err
    except Exception as err:  # mido raises OSError, EOFError, KeyError, IndexError...
        raise MidiReadError(source, str(err) or type(err).__name__) from err
    try:
        midi = mido.MidiFile(file=io.BytesIO(data), clip=True)
    except Exception as err:
        raise MidiReadError(source, str(err) or type(err).__name__) from err
    repairs.append("clipped data bytes above 127")
    return midi


def read_midi(
    source: str | os.PathLike | bytes,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_quarters: float = MAX_QUARTERS,
    name: str | None = None,
) -> Score:
    """Reads a MIDI file from a path or from bytes.

    Recoverable oddities are repaired, listed in `Score.repairs` and warned about with
    `MidiRepairWarning`: a header announcing more tracks than exist, notes never switched off (closed at
    the end of their track), zero-length notes (dropped), note-offs without a note-on (ignored), a
    repeated note-on (closes the sounding note first), zero tempos (ignored). A type-2 file is read as if
    all its patterns started together. Everything else raises.

    Files that need none of that (most) are parsed by symusic and their notes checked against a scan of
    the raw bytes; the others go through mido's slower message loop. Both give the same `Score`.

    Args:
        source: a path, or the file's bytes.
        max_file_bytes: larger files are refused before parsing.
        max_quarters: pieces whose events reach past this many quarter notes are refused.
        name: how to name bytes in messages (defaults to "<bytes>").

    Returns:
        The parsed `Score`.

    Raises:
        MidiReadError: the data is not MIDI, is empty, truncated, corrupt, too large or absurdly long.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "<bytes>"
    else:
        label = name or os.fspath(source)
        try:
            size = os.path.getsize(source)
            if size > max_file_bytes:
                raise MidiReadError(label, f"file is {size} bytes, over the {max_file_bytes}-byte limit")
            with open(source, "rb") as f:
                data = f.read()
        except OSError as err:
            raise MidiReadError(label, err.strerror or str(err)) from err
    if len(data) > max_file_bytes:
        raise MidiReadError(label, f"file is {len(data)} bytes, over the {max_file_bytes}-byte limit")
    repairs: list[str] = []
    data, file_type, n_tracks = _checked_header(data, label, repairs)
    score = _read_fast(data, file_type, n_tracks, label, repairs, max_quarters)
    if score is None:  # the exact, slow reader: it repairs or refuses what the fast path will not vouch for
        midi = _parse_with_mido(data, label, repairs)
        score = _midi_to_score(midi, file_type, label, repairs, max_quarters)
    for line in repairs:
        warnings.warn(f"{label}: {line}", MidiRepairWarning, stacklevel=2)
    return score


_REPAIR_MESSAGES = {
    "zero_length": "dropped {} zero-length notes",
    "unmatched_off": "ignored {} note-offs without a note-on",
    "unclosed": "closed {} notes never switched off at the end of their track",
    "retriggered": "closed {} sounding notes re-struck before their note-off",
    "zero_tempo": "ignored {} zero tempo events",
    "bad_meter": "ignored {} unusable time signatures (numerator 0, or beyond the usable meters)",
}


@dataclass
class _FileState:
    """What reading one file gathers across its tracks: the tempo and meter maps (by tick) and repair counts."""

    label: str
    file_type: int
    ticks_per_quarter: int
    max_quarters: float
    tempos: dict[int, float] = field(default_factory=dict)
    meters: dict[int, tuple[int, int]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_REPAIR_MESSAGES, 0))
    notes: int = 0
    map_events: int = 0


def _midi_to_score(midi: Any, file_type: int, label: str, repairs: list[str], max_quarters: float) -> Score:
    """Turns a parsed mido file into a `Score`, appending a line to `repairs` per kind of oddity repaired."""
    tpq = midi.ticks_per_beat
    state = _FileState(label, file_type, tpq, max_quarters)
    if file_type == 2:
        repairs.append("type-2 file: its patterns are read as if they started together")
    tracks: list[Track] = []
    for track_index, mtrack in enumerate(midi.tracks):
        tracks += _read_track(mtrack, track_index, state)
    return _score_from_state(tracks, state, repairs)


def _score_from_state(tracks: list[Track], state: _FileState, repairs: list[str]) -> Score:
    """The `Score` of tracks read and of the maps gathered in `state`; the repairs counted there join `repairs`."""
    tpq = state.ticks_per_quarter
    repairs.extend(_REPAIR_MESSAGES[k].format(v) for k, v in state.counts.items() if v)
    tempo_list = [(t / tpq, q) for t, q in sorted(state.tempos.items())]
    if not tempo_list or tempo_list[0][0] > 0:
        tempo_list.insert(0, (0.0, DEFAULT_QPM))
    meter_list = [(t / tpq, n, d) for t, (n, d) in sorted(state.meters.items())]
    if not meter_list or meter_list[0][0] > 0:
        meter_list.insert(0, (0.0, 4, 4))
    return Score(tracks, tempo_list, meter_list, tpq, state.label, repairs)


def _read_track(mtrack: Any, track_index: int, state: _FileState) -> list[Track]:
    """The notes of one MIDI track, one `Track` per channel that holds any; tempo and meter events go to `state`."""
    tpq, counts = state.ticks_per_quarter, state.counts
    max_ticks = state.max_quarters * tpq
    tick = 0
    track_name = ""
    programs = [0] * 16
    open_notes: dict[tuple[int, int], tuple[int, int]] = {}  # (channel, pitch) -> (start tick, velocity)
    per_channel: dict[int, list[tuple[int, int, int, int]]] = {}
    channel_program: dict[int, int] = {}

    def close(channel: int, pitch: int, end_tick: int) -> None:
        start_tick, velocity = open_notes.pop((channel, pitch))
        if end_tick <= start_tick:
            counts["zero_length"] += 1
            return
        per_channel.setdefault(channel, []).append((pitch, velocity, start_tick, end_tick))
        channel_program.setdefault(channel, programs[channel])

    for msg in mtrack:
        tick += msg.time
        if tick > max_ticks:
            raise MidiReadError(
                state.label, f"events reach {tick / tpq:.0f} quarter notes, over the {state.max_quarters:.0f} limit"
            )
        kind = msg.type
        if kind == "note_on" and msg.velocity > 0:
            state.notes += 1
            if state.notes > MAX_NOTES:
                raise MidiReadError(state.label, f"it holds more than {MAX_NOTES:,} notes")
            key = (msg.channel, msg.note)
            if key in open_notes:
                counts["retriggered"] += 1
                close(msg.channel, msg.note, tick)
            open_notes[key] = (tick, msg.velocity)
        elif kind == "note_off" or kind == "note_on":
            key = (msg.channel, msg.note)
            if key in open_notes:
                close(msg.channel, msg.note, tick)
            else:
                counts["unmatched_off"] += 1
        elif kind == "program_change":
            programs[msg.channel] = msg.program
        elif kind in ("set_tempo", "time_signature"):
            state.map_events += 1
            if state.map_events > MAX_MAP_EVENTS:
                raise MidiReadError(state.label, f"it holds more than {MAX_MAP_EVENTS:,} tempo and meter changes")
            values = (msg.tempo,) if kind == "set_tempo" else (msg.numerator, msg.denominator)
            _read_map_event((tick, kind, *values), state)
        elif kind == "track_name" and not track_name:
            track_name = msg.name
    for channel, pitch in list(open_notes):
        counts["unclosed"] += 1
        close(channel, pitch, tick)
    tracks = []
    for channel in sorted(per_channel):
        raw = sorted(per_channel[channel], key=lambda n: (n[2], n[0]))
        notes = [Note(p, v, s / tpq, e / tpq) for p, v, s, e in raw]
        name = track_name or f"track {track_index}"
        tracks.append(Track(notes, program=channel_program.get(channel, 0), is_drum=channel == DRUM_CHANNEL, name=name))
    return tracks


def _read_map_event(event: tuple, state: _FileState) -> None:
    """Enters ``(tick, "set_tempo", tempo)`` or ``(tick, "time_signature", numerator, denominator)`` into
    `state`'s maps, or counts it as ignored."""
    tick, kind, *values = event
    if kind == "set_tempo":
        if values[0] <= 0:
            state.counts["zero_tempo"] += 1
        elif state.file_type != 2 or not state.tempos:
            # MIDI stores whole microseconds per quarter; rounding recovers the intended qpm.
            state.tempos[tick] = round(60_000_000.0 / values[0], 3)
    elif not _usable_meter(*values):
        state.counts["bad_meter"] += 1  # a 0/4 bar has no length: bar lines would never advance
    elif state.file_type != 2 or not state.meters:
        state.meters[tick] = (values[0], values[1])


def _read_fast(
    data: bytes, file_type: int, n_tracks: int, label: str, repairs: list[str], max_quarters: float
) -> Score | None:
    """symusic's notes, checked against a scan of the raw bytes; None when the scan cannot vouch for the file
    (whatever would need a repair or a refusal), which the exact reader then reads."""
    if file_type not in (0, 1) or n_tracks >= 0x8000 or data[4:8] != b"\0\0\0\6":
        return None  # type 2, a count mido reads as negative, an odd header length: all for the exact reader
    spans, pos = [], 14
    for _ in range(n_tracks):
        (length,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        if data[pos : pos + 4] != b"MTrk":
            return None
        spans.append((pos + 8, pos + 8 + length))
        pos += 8 + length
    tpq = struct.unpack(">H", data[12:14])[0]
    caps = {"max_ticks": max_quarters * tpq, "max_notes": MAX_NOTES, "max_map_events": MAX_MAP_EVENTS}
    scanned = scan_events(data, spans, **caps)
    tracks = None if scanned is None else _symusic_tracks(data, scanned, tpq)
    if scanned is None or tracks is None:
        return None
    state = _FileState(label, file_type, tpq, max_quarters)
    for event in scanned.map_events:
        _read_map_event(event, state)
    return _score_from_state(tracks, state, repairs)


def _symusic_tracks(data: bytes, scanned: ScannedFile, tpq: int) -> list[Track] | None:
    """One `Track` per (track, channel) from symusic's parse; None unless its notes are exactly the scan's
    (the tracks are then built from the scan's arrays, which hold the same values)."""
    import symusic

    try:
        # symusic pickles a score as its C++ structures laid end to end: one buffer, checked in one compiled
        # pass, for a sixth of the cost of asking each track for numpy arrays.
        parsed: Any = symusic.Score.from_midi(data)
        state = np.frombuffer(parsed.__getstate__(), dtype=np.uint8)
    except Exception:  # symusic refuses something mido may read, or keeps its state otherwise: the exact reader
        return None
    if not same_notes(state, tpq, scanned):
        return None
    start_quarters, end_quarters = scanned.note_start_ticks / tpq, scanned.note_end_ticks / tpq
    pitches, velocities = scanned.note_pitches, scanned.note_velocities
    firsts = scanned.group_firsts.tolist()
    tracks = []
    for group, program, lo, hi in zip(scanned.groups.tolist(), scanned.group_programs.tolist(), firsts, firsts[1:]):
        name = scanned.track_names[group // 16] or f"track {group // 16}"
        arrays = NoteArrays(pitches[lo:hi], velocities[lo:hi], start_quarters[lo:hi], end_quarters[lo:hi])
        tracks.append(Track.from_arrays(arrays, program=program, is_drum=group % 16 == DRUM_CHANNEL, name=name))
    return tracks


def score_to_midi(score: Score, *, ticks_per_quarter: int | None = None) -> bytes:
    """Writes a `Score` as a type-1 standard MIDI file.

    Track 0 carries the tempo and time-signature maps; each `Track` gets a track of its own, on channel 9
    if it is a drum track and otherwise on its own channel (0, 1, ... skipping 9).

    Args:
        score: what to write. Positions are rounded to the nearest tick.
        ticks_per_quarter: resolution; defaults to the score's.

    Returns:
        The file's bytes.
    """
    import mido

    tpq = int(ticks_per_quarter or score.ticks_per_quarter)
    _check_writable(score, tpq)
    midi = mido.MidiFile(type=1, ticks_per_beat=tpq)

    def to_delta(events: list[tuple[int, int, Any]]) -> mido.MidiTrack:
        track = mido.MidiTrack()
        last = 0
        for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - last))
            last = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        return track

    conductor: list[tuple[int, int, Any]] = []
    for quarters, qpm in score.tempos:
        # the 24-bit field holds 3.58 to 60,000,000 qpm; a tempo read back and rounded may sit a hair outside
        tempo = min(_MAX_TEMPO, max(1, int(round(60_000_000.0 / qpm))))
        conductor.append((round(quarters * tpq), 0, mido.MetaMessage("set_tempo", tempo=tempo)))
    for quarters, numerator, denominator in score.time_signatures:
        msg = mido.MetaMessage("time_signature", numerator=numerator, denominator=denominator)
        conductor.append((round(quarters * tpq), 0, msg))
    midi.tracks.append(to_delta(conductor))

    free_channels = [c for c in range(16) if c != DRUM_CHANNEL]
    for i, track in enumerate(score.tracks):
        channel = DRUM_CHANNEL if track.is_drum else free_channels[i % len(free_channels)]
        # Track names are Latin-1 in MIDI; characters it cannot hold become '?' rather than failing the write.
        name = track.name.encode("latin-1", "replace").decode("latin-1")
        events: list[tuple[int, int, Any]] = [(0, 0, mido.MetaMessage("track_name", name=name))]
        events.append((0, 1, mido.Message("program_change", channel=channel, program=track.program)))
        for note in track.notes:
            start, end = round(note.start_quarters * tpq), round(note.end_quarters * tpq)
            if end <= start:
                continue
            # At equal ticks note-offs (order 2) go before note-ons (order 3), so repeated pitches re-strike.
            events.append((start, 3, mido.Message("note_on", channel=channel, note=note.pitch, velocity=note.velocity)))
            events.append((end, 2, mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)))
        midi.tracks.append(to_delta(events))
    buf = io.BytesIO()
    midi.save(file=buf)
    return buf.getvalue()


def _check_writable(score: Score, ticks_per_quarter: int) -> None:
    """Raises MelodyRNNError for values a MIDI file cannot hold, before mido fails less clearly."""
    from melodyrnn.errors import MelodyRNNError

    if not 1 <= ticks_per_quarter < 0x8000:
        raise MelodyRNNError(f"`ticks_per_quarter` must be in [1, 32767], got {ticks_per_quarter}")
    for quarters, qpm in score.tempos:
        if not MIN_QPM * 0.999 <= qpm <= 60_000_000 or quarters < 0:
            raise MelodyRNNError(
                f"tempo must be in [{MIN_QPM:.2f}, 60000000] qpm (what MIDI can hold) at a position >= 0, "
                f"got {qpm} qpm at {quarters}"
            )
    for quarters, numerator, denominator in score.time_signatures:
        if not is_usable_time_signature(numerator, denominator) or quarters < 0:
            raise MelodyRNNError(
                f"time signature must be n/d with n in [1, {MAX_NUMERATOR}] and d a power of two up "
                f"to {DENOMINATORS[-1]}, at a position >= 0, "
                f"got {numerator}/{denominator} at {quarters}"
            )
    for track in score.tracks:
        if not 0 <= track.program <= 127:
            raise MelodyRNNError(f"`program` must be in [0, 127], got {track.program}")
        for note in track.notes:
            if not (0 <= note.pitch <= 127 and 1 <= note.velocity <= 127) or note.start_quarters < 0:
                raise MelodyRNNError(f"notes need pitch in [0, 127], velocity in [1, 127] and start >= 0, got {note}")


def notes_to_score(
    notes: Sequence[Note],
    *,
    qpm: float = DEFAULT_QPM,
    time_signature: tuple[int, int] = (4, 4),
    program: int = 0,
    name: str = "melody",
) -> Score:
    """Builds a one-track `Score` from notes, for writing."""
    return Score(
        tracks=[Track(list(notes), program=program, name=name)],
        tempos=[(0.0, float(qpm))],
        time_signatures=[(0.0, *time_signature)],
    )
