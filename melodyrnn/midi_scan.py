"""A compiled pass over a MIDI file's raw bytes: the facts `midi_io`'s guards need and a fast parser hides.

Start at `scan_events`. It walks every event of every track chunk once, in compiled code, and returns the
notes paired and sorted, with the programs, track names and tempo/meter events. It returns None for any file
it cannot vouch for event by event (running status after a non-channel event, numbers longer than four bytes,
system messages, meta events mido would refuse, a note-off without its note-on, a note never switched off, a
re-struck or zero-length note, a tick or count past the caps, ...): `midi_io` then reads that file the slow,
exact way and repairs or refuses it there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from melodyrnn.compiled import jit

# Longest meta or sysex payload mido reads (mido.midifiles.midifiles.MAX_MESSAGE_LENGTH).
_MAX_MESSAGE_LENGTH = 1_000_000
_TRACK_NAME, _TEMPO, _TIME_SIGNATURE, _KEY_SIGNATURE, _SEQUENCE_NUMBER, _SMPTE = 0x03, 0x51, 0x58, 0x59, 0x00, 0x54
# Rows of the compiled scan's note table, of its tempo/meter table and of its per-channel table.
_START, _END, _PITCH, _VELOCITY, _CHANNEL = range(5)
_TICK, _TYPE, _VALUE, _SECOND_VALUE = range(4)
_PLAYED, _PROGRAM, _CHANGED = range(3)
# Notes starting together that one note-on may move up past; a longer chord is sorted when it is complete.
_SHIFTS = 32


@dataclass
class ScannedFile:
    """What a clean file holds, as arrays. Notes are sorted by (track, channel, start tick, pitch).

    Attributes:
        note_start_ticks, note_end_ticks: int64, shape (notes,).
        note_pitches, note_velocities: int64, shape (notes,).
        groups: int64, shape (groups,): ``track * 16 + channel`` of each (track, channel) that holds notes,
            ascending.
        group_firsts: int64, shape (groups + 1,): where each group's notes start, then the note count.
        group_programs: int64, shape (groups,): the program in force at each group's first note.
        track_names: one per track chunk: its first non-empty name, or "".
        map_events: ``(tick, "set_tempo", tempo)`` and ``(tick, "time_signature", numerator, denominator)``
            tuples in file order (track by track).
    """

    note_start_ticks: np.ndarray
    note_end_ticks: np.ndarray
    note_pitches: np.ndarray
    note_velocities: np.ndarray
    groups: np.ndarray
    group_firsts: np.ndarray
    group_programs: np.ndarray
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
    spans = np.array(track_spans, dtype=np.int64).reshape(-1, 2)
    caps = np.array([max_notes, max_map_events], dtype=np.int64)
    found = _scan(np.frombuffer(data, dtype=np.uint8), spans, float(max_ticks), caps)
    if found is None:
        return None
    ticks, played, groups, group_firsts, programs, names, map_table = found
    track_names = [data[at : at + length].decode("latin-1") for at, length in names.tolist()]
    map_events: list[tuple] = []
    for tick, meta_type, value, second in map_table.tolist():
        if meta_type == _TEMPO:
            map_events.append((tick, "set_tempo", value))
        else:
            map_events.append((tick, "time_signature", value, 2**second))
    return ScannedFile(
        ticks[0], ticks[1], played[0], played[1], groups, group_firsts, programs, track_names, map_events
    )


@jit
def _scan(b: np.ndarray, spans: np.ndarray, max_ticks: float, caps: np.ndarray) -> tuple | None:
    """The compiled scan: (start and end ticks (2, notes), pitches and velocities (2, notes), groups, group
    firsts, programs, names (tracks, 2), map events (events, 4)), or None. Every note needs two events of at
    least three bytes, every kept tempo or meter event seven bytes: the tables are sized by the file's length."""
    notes = np.empty((5, b.size // 6 + 1), dtype=np.int64)
    groups = np.empty(16 * spans.shape[0] + 1, dtype=np.int64)
    group_firsts = np.empty(groups.size + 1, dtype=np.int64)
    programs = np.empty(groups.size, dtype=np.int64)
    names = np.zeros((spans.shape[0], 2), dtype=np.int64)
    map_table = np.empty((b.size // 7 + 1, 4), dtype=np.int64)
    map_count = np.zeros(1, dtype=np.int64)
    channels = np.empty((3, 16), dtype=np.int64)
    open_notes = np.empty(16 * 128, dtype=np.int64)
    n = g = 0
    for track in range(spans.shape[0]):
        for c in range(16):  # loops, not fill(): they compile in a fraction of the time
            channels[_PLAYED, c] = channels[_PROGRAM, c] = channels[_CHANGED, c] = 0
        for key in range(16 * 128):
            open_notes[key] = -1
        first = n
        n = _scan_track(b, spans[track], track, max_ticks, caps, notes, n, names, map_table, map_count, channels,
                        open_notes)  # fmt: skip
        if n < 0:
            return None
        several = 0
        for channel in range(16):
            several += channels[_PLAYED, channel] > 0
        if several > 1:
            _group_by_channel(notes, first, n)
        for channel in range(16):  # one group per channel that holds notes, ascending
            if channels[_PLAYED, channel]:
                groups[g], group_firsts[g], programs[g] = track * 16 + channel, first, channels[_PROGRAM, channel]
                first += channels[_PLAYED, channel]
                g += 1
    group_firsts[g] = n
    # Pitches and velocities go into the score: a copy their size. The ticks are only compared and divided.
    played = np.empty((2, n), dtype=np.int64)
    for i in range(n):
        played[0, i], played[1, i] = notes[_PITCH, i], notes[_VELOCITY, i]
    firsts, maps = group_firsts[: g + 1].copy(), map_table[: map_count[0]].copy()
    return notes[:2, :n], played, groups[:g].copy(), firsts, programs[:g].copy(), names, maps


@jit
def _variable_int(b: np.ndarray, at: int, end: int) -> tuple[int, int]:
    """(value, bytes) of the variable-length number at `at`; 0 bytes when it is longer than four or runs past
    `end`, which the scan refuses."""
    value = 0
    for k in range(4):
        if at + k >= end:
            return 0, 0
        byte = b[at + k]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, k + 1
    return 0, 0


@jit
def _scan_track(
    b: np.ndarray,
    span: np.ndarray,
    track: int,
    max_ticks: float,
    caps: np.ndarray,
    notes: np.ndarray,
    n: int,
    names: np.ndarray,
    map_table: np.ndarray,
    map_count: np.ndarray,
    channels: np.ndarray,
    open_notes: np.ndarray,
) -> int:
    """Walks the events of the track chunk ``b[span[0]:span[1]]``, adding its notes to `notes` after the `n`
    there; returns the new count, or -1 as soon as an event is not vouched for. `channels` holds, per channel:
    its notes so far, the program before its first note-on, a program change after it (a later note-off then
    refuses the file: mido's reader takes the program at the first note-off, symusic splits the channel).
    `open_notes` maps ``channel * 128 + pitch`` to the sounding note."""
    pos, end, tick, running, sounding, first, unsorted = span[0], span[1], 0, -1, 0, n, False
    max_notes = min(caps[0], notes.shape[1])
    while pos < end:
        if b[pos] < 0x80:
            tick += b[pos]
            pos += 1
        elif pos + 1 < end and b[pos + 1] < 0x80:
            tick += (np.int64(b[pos] & 0x7F) << 7) | b[pos + 1]
            pos += 2
        else:
            delta, size = _variable_int(b, pos, end)
            tick += delta
            pos += size
            if size == 0:
                return -1
        if tick > max_ticks or pos >= end:
            return -1
        if unsorted and tick > notes[_START, n - 1]:
            _sort_run(notes, first, n, open_notes)
            unsorted = False
        status = b[pos]
        if status >= 0xF0:  # a meta event, a sysex (no running status on it), or bytes mido must see
            if status == 0xF0:
                running, pos = status, _sysex(b, pos + 1, end)
            else:
                pos = _meta(b, pos + 1, end, tick, track, caps, names, map_table, map_count) if status == 0xFF else -1
            if pos < 0:
                return -1
            continue
        if status >= 0x80:
            running, pos = status, pos + 1
        elif running < 0 or running >= 0xF0 or (running & 0xE0) == 0xC0:
            return -1  # running status with nothing, a sysex or a one-data-byte status to run on
        kind, channel = running & 0xF0, running & 0x0F
        one_data = (kind & 0xE0) == 0xC0
        if pos + (1 if one_data else 2) > end:
            return -1
        d1 = np.int64(b[pos])
        d2 = np.int64(0) if one_data else np.int64(b[pos + 1])
        if d1 > 127 or d2 > 127:
            return -1
        pos += 1 if one_data else 2
        if kind == 0xC0:
            if channels[_PLAYED, channel]:
                channels[_CHANGED, channel] = 1
            else:
                channels[_PROGRAM, channel] = d1
        elif kind == 0x90 and d2 > 0:
            key = channel * 128 + d1
            if n >= max_notes or open_notes[key] >= 0:
                return -1
            unsorted |= _start_note(notes, n, first, tick, d1, d2, channel, open_notes)
            channels[_PLAYED, channel] += 1
            n += 1
            sounding += 1
        elif kind == 0x80 or kind == 0x90:
            key = channel * 128 + d1
            on = open_notes[key]
            if on < 0 or tick <= notes[_START, on] or channels[_CHANGED, channel]:
                return -1
            notes[_END, on] = tick
            open_notes[key] = -1
            sounding -= 1
    if unsorted:
        _sort_run(notes, first, n, open_notes)
    return n if sounding == 0 else -1


@jit
def _start_note(
    notes: np.ndarray, n: int, first: int, tick: int, pitch: int, velocity: int, channel: int, open_notes: np.ndarray
) -> bool:
    """Adds note `n`, keeping the track's notes (from `first`) sorted by (start, pitch): up to `_SHIFTS` notes that
    start together move up past it. Those are all still sounding (a note must last a tick), so their entries in
    `open_notes` follow them. True when that many did (maybe more should have): `_sort_run` then sorts the chord
    once it is complete."""
    m = n
    while m > first and notes[_START, m - 1] == tick and notes[_PITCH, m - 1] > pitch and n - m < _SHIFTS:
        for row in range(5):
            notes[row, m] = notes[row, m - 1]
        open_notes[notes[_CHANNEL, m] * 128 + notes[_PITCH, m]] = m
        m -= 1
    notes[_START, m], notes[_PITCH, m], notes[_VELOCITY, m], notes[_CHANNEL, m] = tick, pitch, velocity, channel
    open_notes[channel * 128 + pitch] = m
    return n - m == _SHIFTS


@jit
def _sort_run(notes: np.ndarray, first: int, n: int, open_notes: np.ndarray) -> None:
    """Sorts by pitch the notes before `n` (from `first` on) that start with note ``n - 1``, all still sounding,
    by counting (a chord of hundreds of notes, the note-by-note insertion would take their square)."""
    lo = n - 1
    while lo > first and notes[_START, lo - 1] == notes[_START, n - 1]:
        lo -= 1
    _counting_sort(notes, lo, n, _PITCH, 128)
    for m in range(lo, n):
        open_notes[notes[_CHANNEL, m] * 128 + notes[_PITCH, m]] = m


@jit
def _meta(
    b: np.ndarray,
    at: int,
    end: int,
    tick: int,
    track: int,
    caps: np.ndarray,
    names: np.ndarray,
    map_table: np.ndarray,
    map_count: np.ndarray,
) -> int:
    """The position after the meta event whose type byte is at `at`, or -1 for one mido would refuse (or that
    passes the cap on tempo and meter events). Keeps the track's first name and the tempo and meter events."""
    if at >= end:
        return -1
    meta_type = b[at]
    length, size = _variable_int(b, at + 1, end)
    payload = at + 1 + size
    if size == 0 or length > _MAX_MESSAGE_LENGTH or payload + length > end:
        return -1
    if meta_type == _SMPTE or (meta_type == _SEQUENCE_NUMBER and length == 1):
        return -1
    shortest = 0  # the shortest payload mido decodes without an exception
    if meta_type == 0x20:
        shortest = 1
    elif meta_type == _TEMPO:
        shortest = 3
    elif meta_type == _TIME_SIGNATURE:
        shortest = 4
    elif meta_type == _KEY_SIGNATURE:
        shortest = 2
    if length < shortest:
        return -1
    if meta_type == _KEY_SIGNATURE:
        key = np.int64(b[payload]) - (256 if b[payload] > 127 else 0)
        if key < -7 or key > 7 or b[payload + 1] > 1:
            return -1
    elif meta_type == _TEMPO or meta_type == _TIME_SIGNATURE:
        i = map_count[0]
        if i >= caps[1]:
            return -1
        map_table[i, _TICK], map_table[i, _TYPE] = tick, meta_type
        if meta_type == _TEMPO:
            map_table[i, _VALUE] = (np.int64(b[payload]) << 16) | (np.int64(b[payload + 1]) << 8) | b[payload + 2]
            map_table[i, _SECOND_VALUE] = 0
        else:
            map_table[i, _VALUE], map_table[i, _SECOND_VALUE] = b[payload], b[payload + 1]
        map_count[0] += 1
    elif meta_type == _TRACK_NAME and length > 0 and names[track, 1] == 0:
        names[track, 0], names[track, 1] = payload, length
    return payload + length


@jit
def _sysex(b: np.ndarray, at: int, end: int) -> int:
    """The position after the sysex event whose length is at `at`, or -1 when its payload (less a leading 0xF0
    and a trailing 0xF7) holds a byte above 127 or it is longer than mido reads."""
    length, size = _variable_int(b, at, end)
    lo = at + size
    hi = lo + length
    if size == 0 or length > _MAX_MESSAGE_LENGTH or hi > end:
        return -1
    after = hi
    if hi > lo and b[lo] == 0xF0:
        lo += 1
    if hi > lo and b[hi - 1] == 0xF7:
        hi -= 1
    for i in range(lo, hi):
        if b[i] > 127:
            return -1
    return after


@jit
def _group_by_channel(notes: np.ndarray, lo: int, hi: int) -> None:
    """Sorts notes ``lo:hi`` (one track's, sorted by (start, pitch)) stably by channel."""
    _counting_sort(notes, lo, hi, _CHANNEL, 16)


@jit
def _counting_sort(notes: np.ndarray, lo: int, hi: int, key_row: int, keys: int) -> None:
    """Sorts the columns ``lo:hi`` of the notes table stably by row `key_row`, whose values lie in [0, keys)."""
    count = np.zeros(keys + 1, dtype=np.int64)
    for i in range(lo, hi):
        count[notes[key_row, i] + 1] += 1
    for k in range(keys):
        count[k + 1] += count[k]
    ordered = np.empty((notes.shape[0], hi - lo), dtype=np.int64)
    for i in range(lo, hi):
        key = notes[key_row, i]
        for row in range(notes.shape[0]):
            ordered[row, count[key]] = notes[row, i]
        count[key] += 1
    for row in range(notes.shape[0]):
        for i in range(lo, hi):
            notes[row, i] = ordered[row, i - lo]
