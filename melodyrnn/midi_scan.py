"""A vectorised pass over a MIDI file's raw bytes: the facts `midi_io`'s guards need and a fast parser hides.

Start at `scan_events`. It finds every event of every track chunk with numpy (no Python loop per event)
and returns them as arrays — ticks, statuses, data bytes — with the notes paired. It returns None for any
file it cannot vouch for event by event (running status after a non-channel event, numbers longer than
four bytes, system messages, meta events mido would refuse, a note-off without its note-on, a note never
switched off, a re-struck or zero-length note, a tick or count past the caps, ...): `midi_io` then reads
that file the slow, exact way and repairs or refuses it there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Longest meta or sysex payload mido reads (mido.midifiles.midifiles.MAX_MESSAGE_LENGTH).
_MAX_MESSAGE_LENGTH = 1_000_000
# The event finder jumps 2**_JUMP_DOUBLINGS events at a time in Python and fills in the rest with numpy.
_JUMP_DOUBLINGS = 6
_PAD = 16
# Meta types mido decodes, with the shortest payload that decodes without an exception.
_META_MIN_LENGTH = {0x20: 1, 0x51: 3, 0x58: 4, 0x59: 2}
_TRACK_NAME, _TEMPO, _TIME_SIGNATURE, _KEY_SIGNATURE, _SEQUENCE_NUMBER, _SMPTE = 0x03, 0x51, 0x58, 0x59, 0x00, 0x54


@dataclass
class ScannedFile:
    """What a clean file holds, as arrays. Notes are sorted by (track, channel, start tick, pitch).

    Attributes:
        note_group: int64, shape (notes,): ``track * 16 + channel`` of each note.
        note_start_ticks, note_end_ticks: int64, shape (notes,).
        note_pitches, note_velocities: int64, shape (notes,).
        group_programs: ``{track * 16 + channel: program}``, the program in force at the group's first note-off.
        track_names: one per track chunk: its first non-empty name, or "".
        map_events: ``(tick, "set_tempo", tempo)`` and ``(tick, "time_signature", numerator, denominator)``
            tuples in file order (track by track).
    """

    note_group: np.ndarray
    note_start_ticks: np.ndarray
    note_end_ticks: np.ndarray
    note_pitches: np.ndarray
    note_velocities: np.ndarray
    group_programs: dict[int, int]
    track_names: list[str]
    map_events: list[tuple]


def scan_events(
    data: bytes, track_spans: list[tuple[int, int]], *, max_ticks: float, max_notes: int, max_map_events: int
) -> ScannedFile | None:
    """Finds and checks every event of the track chunks of a standard MIDI file.

    Args:
        data: the whole file.
        track_spans: ``(start, end)`` byte offsets of each track chunk's body, in order.
        max_ticks: an event past this tick makes the file one to read the exact way (which refuses it).
        max_notes: more note-ons than this, likewise.
        max_map_events: more tempo and time-signature events than this, likewise.

    Returns:
        The file's notes, names, programs and tempo/meter events, or None when the file must be read the
        exact way.
    """
    b = np.frombuffer(data + bytes(_PAD), dtype=np.uint8)
    v = _VariableInts(b)
    positions, tracks = _find_events(b, v, track_spans)
    if positions is None or tracks is None:
        return None
    return _decode(b, v, positions, tracks, len(track_spans), max_ticks, max_notes, max_map_events)


class _VariableInts:
    """MIDI's variable-length numbers: the length of the one starting at every byte, the values on demand."""

    def __init__(self, b: np.ndarray):
        self.b = b
        high = (b >= 0x80).view(np.uint8)
        n = b.size - 3
        length = np.ones(b.size, dtype=np.uint8)  # the padding's zeros are one-byte numbers
        length[:n] += high[:n] * (1 + high[1 : n + 1] * (1 + high[2 : n + 2] * (1 + high[3 : n + 3])))
        #: uint8, shape (bytes,): bytes in the number starting there, 1-4, or 5 for a longer one (not MIDI).
        self.length = length

    def value(self, at: np.ndarray) -> np.ndarray:
        """int64 values of the numbers starting at positions `at` (the first four bytes of longer ones)."""
        b = self.b
        value = (b.take(at) & 0x7F).astype(np.int64)
        length = self.length.take(at)
        longer = (length > 1).nonzero()[0]  # most numbers (deltas, lengths) fit in one byte
        if longer.size:
            at, part, length = at[longer], value[longer], length[longer]
            for k in range(1, 4):  # byte k of the numbers that have one, fewer at each step
                more = (length > k).nonzero()[0]
                if not more.size:
                    break
                part[more] = (part[more] << 7) | (b.take(np.minimum(at[more] + k, b.size - 1)) & 0x7F)
            value[longer] = part
        return value


def _find_events(
    b: np.ndarray, v: _VariableInts, track_spans: list[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """The byte offset and track of every event, in file order; (None, None) if a track does not parse.

    Every position gets the offset of the event that would follow if an event started there (running
    status is assumed to carry two data bytes, checked later); each track's chain of events is then
    followed from its first byte, 64 events per Python step.
    """
    sentinel = b.size - _PAD // 2
    status_at = np.minimum(np.arange(b.size, dtype=np.intp) + v.length, sentinel)
    status = b.take(status_at)  # take: a third faster than indexing for these gathers
    one_data = (status < 0x80) | ((status & 0xE0) == 0xC0)  # running status is checked later, when it is known
    nxt = status_at + np.where(one_data, 2, 3)
    special = (status >= 0xF0).nonzero()[0]
    length_at = np.minimum(status_at[special] + np.where(status[special] == 0xFF, 2, 1), sentinel)
    payload_end = length_at + v.length[length_at] + v.value(length_at)
    system = (status[special] != 0xFF) & (status[special] != 0xF0) & (status[special] != 0xF7)
    nxt[special] = np.where(system, sentinel, np.minimum(payload_end, sentinel))
    nxt = np.minimum(nxt, sentinel)
    ends = np.array([end for _, end in track_spans], dtype=np.intp)
    nxt[ends] = ends  # a track's end absorbs its chain, so a chain that runs past it is caught below
    nxt[sentinel:] = sentinel
    jumps = [nxt]
    for _ in range(_JUMP_DOUBLINGS):
        jumps.append(jumps[-1].take(jumps[-1]))
    jump = jumps[-1]
    walked: list[int] = []
    for start, end in track_spans:
        pos = start
        while pos != end:
            walked.append(pos)
            following = int(jump[pos])
            if following == pos or following > end:  # absorbed elsewhere, or ran past the chunk
                return None, None
            pos = following
    # Every event between two walked ones: each level of jumps doubles the positions known on the chains, and
    # interleaving each position with its jump keeps them in file order. Only a track's end repeats.
    found = np.array(walked, dtype=np.intp)
    for jump in reversed(jumps[:-1]):
        pairs = np.empty(2 * found.size, found.dtype)
        pairs[0::2], pairs[1::2] = found, jump.take(found)
        found = pairs
    track = np.searchsorted(ends, found, side="left")
    keep = found < ends[np.minimum(track, ends.size - 1)]  # drop the absorbing ends themselves
    return found[keep].astype(np.int64), track[keep]


def _decode(
    b: np.ndarray,
    v: _VariableInts,
    pos: np.ndarray,
    tracks: np.ndarray,
    n_tracks: int,
    max_ticks: float,
    max_notes: int,
    max_map_events: int,
) -> ScannedFile | None:
    """Decodes the events at `pos` and pairs the notes; None for anything the exact reader must see."""
    count = pos.size
    order = np.arange(count)
    if count and v.length[pos].max() > 4:
        return None
    status_at = pos + v.length[pos]
    status = b[status_at].astype(np.int64)
    if ((status >= 0xF1) & (status <= 0xFE)).any():
        return None  # system common/real-time bytes inside a file: mido's business
    # mido's running status: the last status byte other than 0xFF in the same track.
    explicit = (status >= 0x80) & (status != 0xFF)
    last = np.maximum.accumulate(np.where(explicit, order, -1)) if count else order
    first_of_track = np.searchsorted(tracks, np.arange(n_tracks))
    running = status < 0x80
    if (running & (last < first_of_track[tracks])).any():
        return None
    effective = np.where(running, status[np.maximum(last, 0)], status)
    kind = effective & 0xF0
    two_data = (kind >= 0x80) & (kind != 0xC0) & (kind != 0xD0) & (kind != 0xF0)
    if (running & ~two_data).any():
        return None
    channel_event = (effective >= 0x80) & (effective < 0xF0)
    data_at = status_at + np.where(running, 0, 1)
    d1, d2 = b[data_at].astype(np.int64), b[data_at + 1].astype(np.int64)
    if (channel_event & ((d1 > 127) | (two_data & (d2 > 127)))).any():
        return None
    deltas = v.value(pos)
    ticks = np.cumsum(deltas)
    if count:
        starts = first_of_track[tracks]
        ticks = ticks - (ticks[starts] - deltas[starts])
        if ticks.max() > max_ticks:
            return None
    note_on = channel_event & (kind == 0x90) & (d2 > 0)
    if np.count_nonzero(note_on) > max_notes:
        return None
    meta = _check_metas(b, v, status, status_at, max_map_events)
    if meta is None:
        return None
    note_off = channel_event & ((kind == 0x80) | ((kind == 0x90) & (d2 == 0)))
    groups = tracks * 16 + (effective & 0x0F)
    notes = _pair_notes((note_on | note_off).nonzero()[0], note_on, groups, d1, d2, ticks)
    if notes is None:
        return None
    programs = _group_programs(notes[0], notes[1], groups, channel_event & (kind == 0xC0), d1)
    if programs is None:
        return None
    names, map_events = _metas_to_values(b, meta, ticks, tracks, n_tracks)
    return ScannedFile(notes[2], notes[3], notes[4], notes[5], notes[6], programs, names, map_events)


def _check_metas(
    b: np.ndarray,
    v: _VariableInts,
    status: np.ndarray,
    status_at: np.ndarray,
    max_map_events: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(event index, meta type, payload offset, payload length) of every meta event; None if mido would refuse
    one, a sysex payload holds a byte above 127, or there are more tempo and meter changes than allowed."""
    meta_events = (status == 0xFF).nonzero()[0]
    length_at = status_at[meta_events] + 2
    types = b[status_at[meta_events] + 1].astype(np.int64)
    lengths = v.value(length_at)
    payload_at = length_at + v.length[length_at]
    if meta_events.size and (v.length[length_at].max() > 4 or lengths.max() > _MAX_MESSAGE_LENGTH):
        return None
    minimum = np.zeros_like(types)
    for meta_type, shortest in _META_MIN_LENGTH.items():
        minimum[types == meta_type] = shortest
    if (lengths < minimum).any() or (types == _SMPTE).any():
        return None
    if ((types == _SEQUENCE_NUMBER) & (lengths == 1)).any():
        return None
    for at in payload_at[types == _KEY_SIGNATURE].tolist():
        key = int(b[at]) - 256 * (b[at] > 127)
        if not (-7 <= key <= 7 and b[at + 1] in (0, 1)):
            return None
    if np.count_nonzero((types == _TEMPO) | (types == _TIME_SIGNATURE)) > max_map_events:
        return None
    for at in ((status == 0xF0) | (status == 0xF7)).nonzero()[0].tolist():
        length_pos = status_at[at] + 1
        length = int(v.value(np.array([length_pos]))[0])
        if v.length[length_pos] > 4 or length > _MAX_MESSAGE_LENGTH:
            return None
        start = length_pos + v.length[length_pos]
        payload = b[start : start + length]
        if payload.size and payload[0] == 0xF0:
            payload = payload[1:]
        if payload.size and payload[-1] == 0xF7:
            payload = payload[:-1]
        if payload.size and payload.max() > 127:
            return None
    return meta_events, types, payload_at, lengths


def sort_notes(groups: np.ndarray, start_ticks: np.ndarray, pitches: np.ndarray) -> np.ndarray:
    """The order that sorts notes by (group, start tick, pitch): int64 indices, shape (notes,).

    One composite key, sorted by timsort: notes that come in file order are nearly sorted already.
    """
    if start_ticks.size and (start_ticks.max() >= 1 << 32 or groups.max() >= 1 << 24 or start_ticks.min() < 0):
        return np.lexsort((pitches, start_ticks, groups))
    return np.argsort((groups << 39) | (start_ticks << 7) | pitches, kind="stable")


def _pair_notes(
    note_events: np.ndarray, note_on: np.ndarray, groups: np.ndarray, d1: np.ndarray, d2: np.ndarray, ticks: np.ndarray
) -> tuple | None:
    """Pairs each note-on with the next event of its (track, channel, pitch); None unless they strictly
    alternate on/off, start with an on, end with an off and every note lasts at least a tick."""
    key = groups[note_events] * 128 + d1[note_events]
    # A stable sort keeps each key's events in file order; numpy sorts 16-bit keys by radix, much faster.
    by_key = np.argsort(key.astype(np.uint16) if key.max(initial=0) < 1 << 16 else key, kind="stable")
    if by_key.size % 2:
        return None
    key, events = key[by_key], note_events[by_key]
    ons, offs = events[0::2], events[1::2]
    # Strict alternation, key by key: every consecutive pair shares its key, opens with an on, closes with an off.
    if (key[0::2] != key[1::2]).any() or not note_on[ons].all() or note_on[offs].any():
        return None
    if (ticks[offs] <= ticks[ons]).any():
        return None
    partner = np.empty(note_on.size, dtype=np.int64)
    partner[ons] = offs
    is_on = np.zeros(note_on.size, dtype=bool)
    is_on[ons] = True
    ons = is_on.nonzero()[0]  # file order (by track, then tick), without a sort
    offs = partner[ons]
    order = sort_notes(groups[ons], ticks[ons], d1[ons])
    ons, offs = ons[order], offs[order]
    group = groups[ons]
    return ons, offs, group, ticks[ons], ticks[offs], d1[ons], d2[ons]


def _group_programs(
    ons: np.ndarray, offs: np.ndarray, groups: np.ndarray, program_change: np.ndarray, d1: np.ndarray
) -> dict[int, int] | None:
    """The program in force at each (track, channel)'s first note; None when a program changes while the
    channel plays (mido's reader takes the program at the first note-off, symusic splits the channel)."""
    if not ons.size:
        return {}
    note_groups = groups[ons]  # sorted
    first = np.concatenate([[True], note_groups[1:] != note_groups[:-1]]).nonzero()[0]
    unique = note_groups[first]
    first_on = dict(zip(unique.tolist(), np.minimum.reduceat(ons, first).tolist()))
    last_off = dict(zip(unique.tolist(), np.maximum.reduceat(offs, first).tolist()))
    programs = dict.fromkeys(first_on, 0)
    changes = program_change.nonzero()[0]
    for event, group, program in zip(changes.tolist(), groups[changes].tolist(), d1[changes].tolist()):
        if group not in programs:
            continue
        if event < first_on[group]:
            programs[group] = program
        elif event < last_off[group]:
            return None
    return programs


def _metas_to_values(
    data_bytes: np.ndarray, metas: tuple, ticks: np.ndarray, tracks: np.ndarray, n_tracks: int
) -> tuple[list[str], list[tuple]]:
    """Track names (first non-empty per track, Latin-1 as mido decodes them) and the tempo/meter events."""
    events, types, payload_at, lengths = metas
    names = [""] * n_tracks
    map_events: list[tuple] = []
    for event, meta_type, at, length in zip(events.tolist(), types.tolist(), payload_at.tolist(), lengths.tolist()):
        if meta_type == _TRACK_NAME:
            track = int(tracks[event])
            if not names[track]:
                names[track] = data_bytes[at : at + length].tobytes().decode("latin-1")
        elif meta_type == _TEMPO:
            p = data_bytes[at : at + 3].tolist()
            map_events.append((int(ticks[event]), "set_tempo", (p[0] << 16) | (p[1] << 8) | p[2]))
        elif meta_type == _TIME_SIGNATURE:
            numerator, log2_denominator = data_bytes[at : at + 2].tolist()
            map_events.append((int(ticks[event]), "time_signature", numerator, 2**log2_denominator))
    return names, map_events
