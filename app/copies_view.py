"""Originality in the Generate tab: beside each melody, the longest run of its notes that the model's training data
also holds (`melodyrnn.copies`), so a melody that copies a tune says so.

`training_data_of(sampler)` says which collection a model learnt from, when the page knows it: the bundled model's
`training_data/` (or `MELODYRNN_MODEL_DATA` for the page's default model), a model trained in this page's prepared
upload. `copy_lines` checks melodies against it, read and hashed once per server process (`copy_index`).
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from melodyrnn.bundle import DEFAULT_BUNDLE_PATH
from melodyrnn.copies import CopyIndex, format_copy, originality
from melodyrnn.dataset import PreparedData, prepare
from melodyrnn.encoding import EncodingConfig, Melody
from melodyrnn.errors import MelodyRNNError
from melodyrnn.sampling import Sampler

#: The public-domain collection the bundled model learnt from, in a checkout of the repository.
TRAINING_DATA = Path(__file__).resolve().parents[1] / "training_data"
UNKNOWN = "Originality: unknown (the page does not know what this model learnt from)."


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def training_data_of(sampler: Sampler) -> str | None:
    """The collection (a prepared cache or a MIDI folder) `sampler`'s model learnt from, or None when unknown.

    Only collections the page itself vouches for: `MELODYRNN_MODEL_DATA` for the default model, `training_data/`
    for the bundled one, the prepared upload of a model trained in this session. An uploaded bundle's own record
    of its data is never followed (it could name any folder on the server).
    """
    path = sampler.bundle.path
    if not path:
        return None
    default = os.environ.get("MELODYRNN_MODEL") or DEFAULT_BUNDLE_PATH
    if os.environ.get("MELODYRNN_MODEL_DATA") and _same_file(path, default):
        return os.environ["MELODYRNN_MODEL_DATA"]
    if _same_file(path, DEFAULT_BUNDLE_PATH):
        return str(TRAINING_DATA) if TRAINING_DATA.is_dir() else None
    if any(_same_file(path, trained) for trained in st.session_state.get("trained", {}).values()):
        source = (sampler.bundle.metadata.get("data") or {}).get("source")  # the cache the page trained on
        return source if source and Path(source).exists() else None
    return None


@st.cache_resource(show_spinner="Reading the training data for the originality check (once)…", max_entries=4)
def copy_index(data: str, steps_per_quarter: int) -> CopyIndex:
    """`data` read on a grid of `steps_per_quarter` and hashed, once per server process (the bundled model's
    4,657 tunes: about 8-14 s to read, 1.5 s to hash, then well under a second a take)."""
    if Path(data).is_dir():  # in this process: worker processes would re-run the page's script
        prepared = prepare(
            data, None, config=EncodingConfig(steps_per_quarter), validation_fraction=0.0, workers=1, progress=False
        )
        return CopyIndex(prepared)
    return CopyIndex(PreparedData.load(data))


def copy_lines(melodies: list[Melody], sampler: Sampler) -> list[str]:
    """One line per melody: its longest run also found in the model's training data, or why that is unknown."""
    data = training_data_of(sampler)
    if data is None:
        return [UNKNOWN] * len(melodies)
    try:
        copies = originality(melodies, copy_index(data, sampler.encoding.steps_per_quarter))
    except MelodyRNNError as err:
        return [f"Originality: not checked ({err})."] * len(melodies)
    return [f"Originality, against the training data: {format_copy(copy)}." for copy in copies]


def mark_copies(items: list[dict], sampler: Sampler) -> None:
    """Adds each item's originality line (`copy`), from its `melody`."""
    for item, line in zip(items, copy_lines([item["melody"] for item in items], sampler)):
        item["copy"] = line


def show_copy(item: dict) -> None:
    """The item's originality line, when it has one."""
    if item.get("copy"):
        st.caption(item["copy"])
