"""MusicXML and ABC in: each piece or tune of a file read into a `midi_io.Score`, through music21 (an optional extra).

Start at `read_scores` (a path or bytes → `ScoreFile`: a `Score` per piece or tune, and the tunes of a tune book that
could not be read, with their reasons). Parts become tracks; repeats are played out; chord symbols become Harte
labels. `melodyrnn.score_walk` holds the walking, tie, pickup and meter helpers.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from melodyrnn.archives import check_members
from melodyrnn.errors import MelodyRNNError, MissingExtraError, ScoreReadError
from melodyrnn.midi_io import MAX_NOTES, MAX_QUARTERS, Note, Score, Track
from melodyrnn.score_walk import pickup_origin, realign_bars, tempo_map, tied_notes, time_signature_map, walk

SCORE_SUFFIXES = (".musicxml", ".xml", ".mxl", ".abc")
#: Larger files (or .mxl scores, unpacked) are refused before parsing: music21 parses ABC at ~20 kB/s.
MAX_SCORE_BYTES = 4 * 1024 * 1024
#: Tunes past this many in one ABC file are left out (and reported).
MAX_TUNES = 5_000
#: A repeat played more times than this is not expanded (a hostile `times="100000"` would multiply the piece).
MAX_REPEAT_TIMES = 16
VELOCITY = 90
TICKS_PER_QUARTER = 480
INSTALL_HINT = 'pip install "melodyrnn[scores]"'


@dataclass
class ScoreFile:
    """What one MusicXML or ABC file holds.

    Attributes:
        scores: one `Score` per piece or tune, in file order; `Score.source` names the tune (``path X:3``).
        skipped: ``(tune, reason)`` for every tune of a tune book that could not be read.
    """

    scores: list[Score] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def require_music21() -> Any:
    """The music21 module; raises `MissingExtraError` with the install command when it is missing."""
    try:
        import music21
    except ImportError as err:
        raise MissingExtraError(f"reading MusicXML and ABC needs music21: {INSTALL_HINT}") from err
    return music21


def read_scores(
    source: str | os.PathLike | bytes,
    *,
    suffix: str | None = None,
    name: str | None = None,
    max_file_bytes: int = MAX_SCORE_BYTES,
) -> ScoreFile:
    """Reads a MusicXML (.musicxml, .xml, .mxl) or ABC (.abc) file, every tune of a tune book included.

    Args:
        source: a path, or the file's bytes (then `suffix` says its format).
        suffix: the format, as a file suffix; None takes the path's.
        name: what errors and `Score.source` call the file; None: the path, or "<bytes>".
        max_file_bytes: larger files (or an .mxl's unpacked score) are refused.

    Returns:
        A `ScoreFile`: a bad tune of a tune book is listed in `skipped`, never fatal for the others.

    Raises:
        ScoreReadError: the file cannot be read, is too big, or none of its tunes can be read.
        MissingExtraError: music21 is not installed.
        MelodyRNNError: `suffix` is not one of `SCORE_SUFFIXES`.
    """
    if isinstance(source, (bytes, bytearray)):
        label, data = name or "<bytes>", bytes(source)
        suffix = (suffix or "").lower()
    else:
        path = os.fspath(source)
        label, suffix = name or str(path), (suffix or Path(path).suffix).lower()
    if suffix not in SCORE_SUFFIXES:
        raise MelodyRNNError(f"`suffix` must be one of {', '.join(SCORE_SUFFIXES)}, got {suffix!r}")
    if not isinstance(source, (bytes, bytearray)):
        data = _read_bytes(str(path), label, max_file_bytes)
    if len(data) > max_file_bytes:
        raise ScoreReadError(label, f"the file holds {len(data):,} bytes (at most {max_file_bytes:,} allowed)")
    if not data.strip():
        raise ScoreReadError(label, "the file is empty")
    require_music21()
    if suffix == ".abc":
        pieces = _abc_pieces(_decode(data), label)
    else:
        xml = _unzip_mxl(data, label, max_file_bytes) if suffix == ".mxl" else data
        pieces = [(label, _parse_musicxml(xml, label))]
    out = ScoreFile()
    for tune_label, parsed in pieces:
        try:
            if isinstance(parsed, ScoreReadError):
                raise parsed
            out.scores.append(piece_to_score(parsed, tune_label))
        except ScoreReadError as err:
            out.skipped.append((tune_label, err.reason))
        except Exception as err:  # music21 raises many types on odd input; one tune must not stop the rest
            out.skipped.append((tune_label, _describe(err)))
    if not out.scores:
        reason = out.skipped[0][1] if out.skipped else "it holds no tune"
        if len(pieces) > 1:
            reason = f"none of its {len(pieces)} tunes can be read (the first: {reason})"
        raise ScoreReadError(label, reason)
    return out


def _read_bytes(path: str, label: str, max_file_bytes: int) -> bytes:
    try:
        size = os.path.getsize(path)
        if size > max_file_bytes:
            raise ScoreReadError(label, f"the file holds {size:,} bytes (at most {max_file_bytes:,} allowed)")
        with open(path, "rb") as f:
            return f.read(max_file_bytes + 1)
    except OSError as err:
        raise ScoreReadError(label, err.strerror or type(err).__name__) from err


def _describe(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"[:200]


# ---------------------------------------------------------------------------------------------------- parsing


def _abc_pieces(text: str, label: str) -> list[tuple[str, Any]]:
    """Each tune of an ABC text parsed on its own (a bad tune fails alone): ``(tune label, music21 score or
    the ScoreReadError that says why not)``."""
    from music21 import converter, stream

    if "\x00" in text or not re.search(r"(?m)^[XK]:", text):
        raise ScoreReadError(label, "not an ABC file (no X: or K: field)")
    tunes = split_abc(text)
    pieces: list[tuple[str, Any]] = []
    if len(tunes) > MAX_TUNES:
        left = f"{len(tunes) - MAX_TUNES} tunes past the first {MAX_TUNES:,} were left out"
        pieces.append((f"{label} (the rest)", ScoreReadError(label, left)))
        tunes = tunes[:MAX_TUNES]
    for tune in tunes:
        number = re.search(r"(?m)^X:\s*(\S*)", tune)
        tune_label = f"{label} X:{number.group(1)}" if number and len(tunes) > 1 else label
        try:
            parsed = converter.parseData(with_default_length(tune), format="abc")
        except Exception as err:
            pieces.append((tune_label, ScoreReadError(tune_label, _describe(err))))
            continue
        names = _voice_names(tune)
        found: list[Any] = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        for piece in found:
            if names and len(piece.parts) == len(names):
                for part, part_name in zip(piece.parts, names):
                    part.partName = part.partName or part_name
            pieces.append((tune_label, piece))
    return pieces


def split_abc(text: str) -> list[str]:
    """An ABC file → one text per tune, each with the file header (the lines before the first X:)."""
    chunks = re.split(r"(?m)^(?=X:)", text)
    header, tunes = chunks[0], chunks[1:]
    return [header + tune for tune in tunes] if tunes else [text]


def with_default_length(tune: str) -> str:
    """The tune with an L: field when it has none: music21 refuses notes without one, and the ABC standard's
    default is 1/16 under meters shorter than 3/4 and 1/8 otherwise."""
    key = re.search(r"(?m)^K:", tune)
    head = tune[: key.start()] if key else tune
    if re.search(r"(?m)^L:", head) or not key:
        return tune
    meter = re.search(r"(?m)^M:\s*(\d+)\s*/\s*(\d+)", head)
    short = meter is not None and int(meter.group(2)) > 0 and int(meter.group(1)) / int(meter.group(2)) < 0.75
    return f"{tune[: key.start()]}L:{'1/16' if short else '1/8'}\n{tune[key.start() :]}"


def _voice_names(tune: str) -> list[str]:
    """The names of an ABC tune's voices (V: fields), in order of first appearance."""
    names: dict[str, str] = {}
    for voice, rest in re.findall(r"(?m)^V:\s*(\S+)(.*)$", tune):
        given = re.search(r'(?:name|nm)\s*=\s*"([^"]*)"', rest)
        names.setdefault(voice, given.group(1) if given else "")
    return list(names.values())


def _unzip_mxl(data: bytes, label: str, max_file_bytes: int) -> bytes:
    """The score inside a compressed MusicXML (.mxl) file: the root file its container names."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            problem = check_members(archive, max_file_bytes)
            if problem:
                raise ScoreReadError(label, problem)
            names = archive.namelist()
            root = None
            if "META-INF/container.xml" in names:
                found = re.search(rb'full-path\s*=\s*"([^"]+)"', archive.read("META-INF/container.xml"))
                root = found.group(1).decode("utf-8", "replace") if found else None
            if root is None:
                scores = [n for n in names if n.lower().endswith((".xml", ".musicxml")) and "META-INF" not in n]
                root = scores[0] if scores else None
            if root is None or root not in names:
                raise ScoreReadError(label, "not a compressed MusicXML file (the zip names no score)")
            return archive.read(root)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as err:
        raise ScoreReadError(label, f"not a compressed MusicXML file ({err})") from err


def _parse_musicxml(data: bytes, label: str) -> Any:
    from music21 import converter

    if b"<!ENTITY" in data[:65536]:
        # Entity declarations are how XML bombs expand; MusicXML never needs them.
        raise ScoreReadError(label, "the XML declares entities, which MusicXML does not use")
    if b"<score-partwise" not in data:
        timewise = b"<score-timewise" in data
        reason = "timewise MusicXML is not supported" if timewise else "not a MusicXML file (no <score-partwise>)"
        raise ScoreReadError(label, reason)
    try:
        return converter.parseData(data, format="musicxml")
    except Exception as err:
        raise ScoreReadError(label, _describe(err)) from err


# ---------------------------------------------------------------------------------------------------- conversion


def piece_to_score(piece: Any, source: str) -> Score:
    """One music21 score (or part, or bare stream) → a `Score` with one track per part.

    Repeats are played out (else kept as written, with a repair note); grace notes are dropped, notes tied at the
    same pitch merged; a pickup is shifted and the meter re-stated where written bar lines leave its grid, so bar
    lines land where the score has them.

    Raises:
        ScoreReadError: the piece has no notes, or more notes or quarter notes than a MIDI file may hold.
    """
    repairs: list[str] = []
    parts = _expanded(list(getattr(piece, "parts", None) or [piece]), repairs)
    measured = next((p for p in parts if p.getElementsByClass("Measure")), parts[0])
    origin, _ = pickup_origin(measured)
    walks = [sorted(walk(part, -origin), key=lambda item: item[0]) for part in parts]
    facts: Counter = Counter()
    tracks, outside, count, end = [], 0, 0, 0.0
    for index, (part, walked) in enumerate(zip(parts, walks)):
        raw = tied_notes(walked, facts, top_of_chords=False)
        kept = sorted((n for n in raw if 0 <= n[0] <= 127), key=lambda n: (n[1], n[0]))
        outside, count, end = outside + len(raw) - len(kept), count + len(kept), max([end, *(n[2] for n in kept)])
        tracks.append(Track([Note(m, VELOCITY, s, e) for m, s, e in kept], *_part_identity(part, index)))
    if outside:
        repairs.append(f"dropped {outside} notes outside MIDI's pitch range")
    if count == 0:
        raise ScoreReadError(source, "the piece has no notes")
    if count > MAX_NOTES:
        raise ScoreReadError(source, f"the piece holds {count:,} notes (at most {MAX_NOTES:,} allowed)")
    if end > MAX_QUARTERS:
        raise ScoreReadError(source, f"the piece lasts {end:,.0f} quarter notes (at most {MAX_QUARTERS:,.0f})")
    meters = time_signature_map(walks[parts.index(measured)], facts)
    if facts["time_signatures_invalid"]:
        repairs.append(f"ignored {facts['time_signatures_invalid']} time signatures no bar can be laid on")
    bars = measured.getElementsByClass("Measure")
    realign_bars([(float(measured.elementOffset(m)) - origin, float(m.quarterLength)) for m in bars][1:], meters)
    everything = sorted((item for walked in walks for item in walked), key=lambda item: item[0])
    tempos = tempo_map(everything) or [(0.0, 120.0)]
    tempos[0] = (0.0, tempos[0][1])
    return Score(tracks, tempos, meters, TICKS_PER_QUARTER, source, repairs, chord_symbols(everything))


def _expanded(parts: list, repairs: list[str]) -> list:
    """The parts with their repeats played out, or as written (with a repair note) where that fails."""
    from music21 import bar, repeat

    marks = [m for p in parts for m in p.recurse().getElementsByClass((bar.Repeat, repeat.RepeatExpression))]
    if not marks:
        return parts
    times = max((int(getattr(m, "times", None) or 2) for m in marks), default=2)
    if times > MAX_REPEAT_TIMES:
        repairs.append(f"repeats kept in written order: one is played {times} times (at most {MAX_REPEAT_TIMES})")
        return parts
    try:
        played = [p.expandRepeats() if p.getElementsByClass("Measure") else p for p in parts]
    except Exception as err:  # music21 refuses inconsistent repeat marks in many ways
        repairs.append(f"repeats kept in written order: music21 could not expand them ({_describe(err)})")
        return parts
    lengths = {round(float(p.highestTime), 6) for p in played}
    if len(lengths) > 1 or max(lengths) > MAX_QUARTERS:
        repairs.append("repeats kept in written order: the parts' repeats do not line up")
        return parts
    return played


def _part_identity(part: Any, index: int) -> tuple[int, bool, str]:
    """A part's General MIDI program (0 where unknown), whether it is percussion, and its name."""
    from music21 import instrument

    found = part.getInstrument(returnDefault=False)
    name = str(part.partName or (found.partName if found else "") or (found.instrumentName if found else "") or "")
    name = name.strip()[:120] or f"part {index + 1}"
    is_drum = isinstance(found, instrument.UnpitchedPercussion) or (found is not None and found.midiChannel == 9)
    program = found.midiProgram if found is not None else None
    if program is None and not name.startswith("part "):
        try:  # a part named "Violin" or "Flute" without a MIDI program
            program = instrument.fromString(name).midiProgram
        except Exception:
            program = None
    return (int(program) if program is not None and 0 <= program <= 127 else 0), is_drum, name


# ---------------------------------------------------------------------------------------------------- chords

#: music21's chord kinds (MusicXML's <kind> values) → Harte shorthands or interval lists, as mir_eval reads them.
HARTE_KINDS = {
    "major": "maj", "minor": "min", "augmented": "aug", "diminished": "dim", "dominant-seventh": "7",
    "major-seventh": "maj7", "minor-seventh": "min7", "diminished-seventh": "dim7", "half-diminished-seventh": "hdim7",
    "minor-major-seventh": "minmaj7", "major-sixth": "maj6", "minor-sixth": "min6", "dominant-ninth": "9",
    "major-ninth": "maj9", "minor-ninth": "min9", "dominant-11th": "11", "minor-11th": "min11", "dominant-13th": "13",
    "major-13th": "maj13", "minor-13th": "min13", "suspended-second": "sus2", "suspended-fourth": "sus4",
    "suspended-fourth-seventh": "sus4(b7)", "augmented-seventh": "aug(b7)", "seventh-flat-five": "(3,b5,b7)",
    "power": "5", "pedal": "1",
}  # fmt: skip
#: Semitones above the root → Harte degree (bass notes, and chords of kinds not in HARTE_KINDS).
_DEGREES = ("1", "b2", "2", "b3", "3", "4", "b5", "5", "b6", "6", "b7", "7")
#: Altered chords named by the intervals they hold (semitones above the root, sorted, root left out).
_INTERVAL_KINDS = {
    (4, 7): "maj", (3, 7): "min", (3, 6): "dim", (4, 8): "aug", (4, 7, 10): "7", (4, 7, 11): "maj7",
    (3, 7, 10): "min7", (3, 6, 9): "dim7", (3, 6, 10): "hdim7", (3, 7, 11): "minmaj7", (2, 7): "sus2", (5, 7): "sus4",
    (): "1", (7,): "5",
}  # fmt: skip


def chord_symbol_to_harte(symbol: Any) -> str | None:
    """A music21 chord symbol → a Harte label (``"C:maj"``, ``"A:min7"``, ``"G:7/3"``, ``"N"`` for N.C.).

    Kinds outside `HARTE_KINDS` are spelt as their pitches' intervals (``"C:(3,b6,b7)"``); None without a root.
    """
    from music21 import harmony

    if isinstance(symbol, harmony.NoChord):
        return "N"
    root = symbol.root()
    if root is None:
        return None
    kind = HARTE_KINDS.get(getattr(symbol, "chordKind", None) or "")
    if kind is None or getattr(symbol, "chordStepModifications", None):  # "m7b5" keeps kind minor-seventh
        intervals = tuple(sorted({(p.pitchClass - root.pitchClass) % 12 for p in symbol.pitches} - {0}))
        kind = _INTERVAL_KINDS.get(intervals) or "(" + ",".join(_DEGREES[i] for i in intervals) + ")"
    label = f"{root.name.replace('-', 'b')}:{kind}"
    bass = symbol.bass()
    if bass is not None and bass.pitchClass != root.pitchClass:
        label += "/" + _DEGREES[(bass.pitchClass - root.pitchClass) % 12]
    return label


def chord_symbols(walked: list[tuple[float, Any]]) -> tuple[tuple[float, str], ...]:
    """``(quarters, Harte label)`` of every chord symbol, sorted; a later symbol at the same offset wins."""
    from music21 import harmony

    found: dict[float, str] = {}
    for offset, element in walked:
        if isinstance(element, harmony.Harmony):
            label = chord_symbol_to_harte(element)
            if label is not None:
                found[max(0.0, round(offset, 6))] = label
    return tuple(sorted(found.items()))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # older ABC files are Latin-1; every byte decodes
