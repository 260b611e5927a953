"""Checks and saves the app's uploads: size limits, MIDI and score files (MusicXML, ABC) and zips of them, bundles.

The library reads and validates the files themselves (`prepare`, `load`, the extraction `read_melody_upload`
calls); this module only decides what may be written to the session's scratch folder, so a huge upload or a
hostile zip (paths that climb out of the folder, a zip bomb) is refused before anything is written, with a reason
a person can act on.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from melodyrnn.collection import COLLECTION_SUFFIXES
from melodyrnn.encoding import EncodingConfig, Melody
from melodyrnn.errors import MelodyRNNError
from melodyrnn.extraction import ExtractionConfig, midi_to_melodies, score_file_to_melodies
from melodyrnn.scores import SCORE_SUFFIXES

#: Default limit for one uploaded file (and for everything extracted from one zip), in megabytes.
DEFAULT_MAX_UPLOAD_MB = 32.0
#: The suffixes the training upload takes (beside zips), as a person reads them.
ACCEPTED = ", ".join(COLLECTION_SUFFIXES)
#: Limit for an uploaded model bundle, in megabytes (Streamlit's own default upload limit is the same).
MAX_BUNDLE_MB = 200.0


def max_upload_bytes() -> int:
    """The per-upload limit: `MELODYRNN_APP_MAX_UPLOAD_MB` megabytes when set, else `DEFAULT_MAX_UPLOAD_MB`."""
    try:
        megabytes = float(os.environ.get("MELODYRNN_APP_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB))
    except ValueError:
        megabytes = DEFAULT_MAX_UPLOAD_MB
    return int(max(megabytes, 0.0) * 1024 * 1024)


def describe_bytes(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.1f} kB" if n >= 1024 else f"{n} bytes"


def too_large(size: int, limit: int) -> str | None:
    """A message when `size` bytes exceed `limit`, else None."""
    if size > limit:
        return f"{describe_bytes(size)}, over the {describe_bytes(limit)} limit"
    return None


def read_melody_upload(
    name: str, data: bytes, encoding: EncodingConfig, extraction: ExtractionConfig, what: str = "the file"
) -> list[Melody]:
    """The melodies of one uploaded MIDI, MusicXML or ABC file (a primer, a melody to harmonize), read by the
    library on `encoding`'s grid with `extraction`'s filters.

    Raises:
        MelodyRNNError: the upload is over `max_upload_bytes()` ("`what` `name` is ..."); `MidiReadError`,
            `ScoreReadError`, `NoMelodyError` for a file that cannot be read or holds no melody.
    """
    problem = too_large(len(data), max_upload_bytes())
    if problem:
        raise MelodyRNNError(f"{what} `{name}` is {problem}")
    suffix = Path(name).suffix.lower()
    if suffix in SCORE_SUFFIXES:
        return score_file_to_melodies(data, encoding, extraction, suffix=suffix, name=name)
    return midi_to_melodies(data, encoding, extraction)


def _clean(name: str) -> str:
    """A flat file name that cannot climb out of a folder, close to the uploaded one (reports show it)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name.replace("\\", "/")).name).strip("._") or "file"


def _safe_name(name: str, folder: Path, taken: dict[str, int]) -> str:
    """`_clean(name)`, numbered when that name is taken in `folder` already.

    `taken` remembers the last number given to each name, so 100,000 members called `tune.mid` cost one
    existence check each, not a search from 2 every time (which made such a zip take hours).
    """
    base = _clean(name)
    stem, suffix = os.path.splitext(base)
    n = taken.get(base, 1)
    candidate = base if n == 1 else f"{stem}_{n}{suffix}"
    while (folder / candidate).exists():
        n += 1
        candidate = f"{stem}_{n}{suffix}"
    taken[base] = n
    return candidate


@dataclass
class SavedUploads:
    """What `save_training_uploads` wrote and what it refused.

    Attributes:
        folder: where the MIDI and score files were written.
        saved: the uploaded names of the files written (zip members as ``zip/member``).
        rejected: ``(name, reason)`` for every upload or zip member that was refused.
    """

    folder: Path
    saved: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    taken: dict[str, int] = field(default_factory=dict, repr=False)  # for `_safe_name`


def save_training_uploads(
    files: list[tuple[str, bytes]], folder: str | os.PathLike, limit: int | None = None
) -> SavedUploads:
    """Writes uploaded MIDI and score files (MusicXML, ABC), and those inside uploaded zips, into `folder` for
    `prepare` (which reads them and reports the bad ones).

    Args:
        files: ``(file name, content)`` per upload.
        folder: the target folder (created).
        limit: bytes allowed per upload, and in all for what one zip unpacks to; None: `max_upload_bytes()`.

    Returns:
        A `SavedUploads`. Nothing raises for a bad upload: each is listed in `rejected` with its reason.
    """
    limit = max_upload_bytes() if limit is None else limit
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = SavedUploads(folder)
    for name, data in files:
        problem = too_large(len(data), limit)
        if problem:
            out.rejected.append((name, f"the file is {problem}"))
            continue
        suffix = Path(name).suffix.lower()
        if suffix in COLLECTION_SUFFIXES:
            (folder / _safe_name(name, folder, out.taken)).write_bytes(data)
            out.saved.append(name)
        elif suffix == ".zip":
            _save_zip(name, data, folder, limit, out)
        else:
            out.rejected.append((name, f"not a MIDI file or a score ({ACCEPTED}), or a zip of them"))
    return out


def _save_zip(name: str, data: bytes, folder: Path, limit: int, out: SavedUploads) -> None:
    import io

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as err:
        out.rejected.append((name, f"not a readable zip file ({err})"))
        return
    midi = [m for m in members if Path(m.filename).suffix.lower() in COLLECTION_SUFFIXES]
    others = len(members) - len(midi)
    if not midi:
        what = (
            "is empty" if not members else f"holds no MIDI files or scores ({ACCEPTED}) among its {len(members)} files"
        )
        out.rejected.append((name, f"the zip {what}"))
        return
    if others:
        out.rejected.append((name, f"{others} file(s) in the zip are not MIDI files or scores and were left out"))
    total = 0
    with archive:
        for member in midi:
            label = f"{name}/{member.filename}"
            total += member.file_size  # the size the zip declares; read() checks it (a CRC/size mismatch raises)
            if total > limit:
                out.rejected.append(
                    (
                        label,
                        f"the zip unpacks to more than the {describe_bytes(limit)} limit; the rest of it was left out",
                    )
                )
                break
            try:
                content = archive.read(member)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as err:
                out.rejected.append((label, f"could not be unpacked ({err})"))
                continue
            (folder / _safe_name(member.filename, folder, out.taken)).write_bytes(content)
            out.saved.append(label)


def save_bundle_upload(name: str, data: bytes, folder: str | os.PathLike) -> Path:
    """Writes an uploaded bundle under a name derived from its content (the same upload is written once)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hashlib.sha256(data).hexdigest()[:16] / _clean(name)
    path.parent.mkdir(exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return path
