"""The Generate tab's chords: the chord-progression field of the settings, and **Harmonize** on a take or on an
uploaded melody (MIDI, MusicXML, ABC), which gives every melody chords from the bundled harmonizer.

`chords_field` draws the field and how closely to follow it (the page passes both to `Sampler.generate`); `take_harmony`
draws a take's chord line and its Harmonize button; `upload_panel` harmonizes an upload and lists the results.
A harmonized melody's MIDI carries its chords (a chord track and a bass line) and a second player plays them.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import streamlit as st
from notation_view import BACKINGS, build_items, show_melody, show_score, take_zip
from piano_roll import piano_roll
from uploads import COLLECTION_SUFFIXES, max_upload_bytes, read_melody_upload

from melodyrnn.encoding import EncodingConfig, Melody
from melodyrnn.errors import MelodyRNNError
from melodyrnn.harmonize import Harmonizer, harmonize, load_harmonizer
from melodyrnn.sample_config import DEFAULT_CHORD_GUIDANCE, PRIMER_EXTRACTION

#: One chord per half bar (a whole bar of 3/4): a per-beat harmony reads as flicker on a page of 16-bar takes.
PER = "half_bar"
#: How a harmonized melody plays its chords when its take had no backing chosen.
DEFAULT_BACKING = "block"
#: Melodies of one uploaded file that are harmonized (a tune book may hold hundreds; each costs audio and a score).
MAX_UPLOAD_MELODIES = 4
# Uploads are read as primers are: no length or variety filter (a 4-bar tune is a melody to harmonize), and without
# the file's own chords, which the harmonizer replaces.
_UPLOAD_EXTRACTION = replace(PRIMER_EXTRACTION, chords="none")
CHORDS_HELP = (
    "Chords the melodies are written over, as musicians write them: `Am F C G` (a chord a bar, repeated), "
    "`Am F | C G` (two a bar), `Am:2 F:2` (beats). A chord-aware model follows them; any model's melodies carry "
    "them, and a backing plays them. Empty: no chords."
)


@st.cache_resource(show_spinner="Loading the harmonizer…")
def load_app_harmonizer() -> Harmonizer:
    """The harmonizer shipped with melodyrnn, loaded once per server process."""
    return load_harmonizer()


def chords_field(column: Any = st) -> dict:
    """The settings' chord-progression text field in `column`, with how strongly the melodies follow it; returns
    `Sampler.generate`'s ``chords`` (None when the field is empty) and ``chord_guidance``."""
    text = column.text_input("Chords", key="chords", placeholder="Am F C G", help=CHORDS_HELP)
    guidance = column.slider(
        "Follow the chords",
        0.0,
        4.0,
        DEFAULT_CHORD_GUIDANCE,
        0.25,
        key="chord_guidance",
        help="1: as the model learnt; higher: more chord tones on the beats; 0: the notes ignore the chords.",
    )
    return {"chords": text.strip() or None, "chord_guidance": float(guidance)}


def chord_line(melody: Melody, limit: int = 8) -> str:
    """The first `limit` chord changes of `melody` as Harte labels, one line ("A:min F:maj ... (12 changes)")."""
    labels = [label for _, label in melody.chords]
    more = f" … ({len(labels)} changes)" if len(labels) > limit else ""
    return " ".join(labels[:limit]) + more


def harmonize_items(items: list[dict], take_id: int, backing: str, key: str | None) -> list[dict]:
    """The take's melodies with the harmonizer's chords, rebuilt (files, audio with the backing, score); each
    item keeps the fields others added to it. Raises `MelodyRNNError` (a key no chord fits, say)."""
    harmonizer = load_app_harmonizer()
    melodies = [harmonize(item["melody"], harmonizer, key=key, per=PER) for item in items]
    backing = backing if backing != "none" else DEFAULT_BACKING
    rebuilt = build_items(melodies, take_id, items[0]["primer_steps"] if items else 0, backing, key)
    return [{**old, **new} for old, new in zip(items, rebuilt)]


def take_harmony(take: dict) -> None:
    """A take's chords (asked for or harmonized) and its **Harmonize** button, which replaces them with the
    harmonizer's."""
    settings = take["settings"]
    if take.get("harmonized"):
        first = take["melodies"][0]
        st.caption(
            f"Harmonized ({PER.replace('_', ' ')} chords, {first['backing']} backing: the MIDI files carry a chord "
            f"track and a bass line). First melody: {chord_line(first['melody'])}"
        )
    elif settings.get("chords"):
        st.caption(f"Chords asked for: {settings['chords']}")
    if st.button(
        "Harmonize",
        key=f"harmonize_{take['id']}",
        icon=":material/piano:",
        help="Give every melody of this take chords from the bundled harmonizer, which reads the whole melody.",
    ):
        try:
            with st.spinner("Harmonizing…"):
                backing, key = settings.get("backing", "none"), settings.get("key")
                take["melodies"] = harmonize_items(take["melodies"], take["id"], backing, key)
        except MelodyRNNError as err:
            st.error(f"Not harmonized: {err}")
            return
        take["zip"] = take_zip(take["melodies"])
        take["harmonized"] = True
        st.rerun()  # this take's caption and zip, drawn before the click was seen, are drawn again with the chords


def harmonize_upload(name: str, data: bytes, backing: str) -> None:
    """Harmonizes an upload's first `MAX_UPLOAD_MELODIES` melodies and keeps them in the session's `harmonized`
    list; a bad file is an error in the page, and what was there stays."""
    started = time.perf_counter()
    try:
        melodies = read_melody_upload(name, data, EncodingConfig(), _UPLOAD_EXTRACTION)
        st.session_state.take_counter += 1
        take_id = st.session_state.take_counter
        bare = [{"melody": m, "primer_steps": 0} for m in melodies[:MAX_UPLOAD_MELODIES]]  # what harmonizing reads
        items = harmonize_items(bare, take_id, backing, None)
    except MelodyRNNError as err:
        st.error(f"Not harmonized: {err}")
        return
    st.session_state.harmonized.append(
        {
            "id": take_id,
            "file": name,
            "found": len(melodies),
            "melodies": items,
            "zip": take_zip(items),
            "seconds": time.perf_counter() - started,
        }
    )


def upload_panel() -> None:
    """ "Harmonize a melody of yours": an uploader, a backing choice and a button, then every harmonized upload of
    the session, newest first."""
    st.session_state.setdefault("harmonized", [])
    done = st.session_state.harmonized
    with st.expander(f"Harmonize a melody of yours ({len(done)})" if done else "Harmonize a melody of yours"):
        upload = st.file_uploader(
            "A melody: MIDI, MusicXML or ABC",
            type=[s.lstrip(".") for s in COLLECTION_SUFFIXES],
            max_upload_size=max(1, max_upload_bytes() >> 20),
            key="harmonize_file",
            help=f"Its first {MAX_UPLOAD_MELODIES} melodies get chords; its own chords, if any, are replaced.",
        )
        left, right = st.columns([1, 3], vertical_alignment="bottom")
        backing = str(left.selectbox("Backing", [b for b in BACKINGS if b != "none"], key="harmonize_backing"))
        clicked = right.button("Harmonize this file", key="harmonize_upload", type="primary", disabled=upload is None)
        if clicked and upload is not None:
            with st.spinner("Harmonizing…"):
                harmonize_upload(upload.name, upload.getvalue(), backing)
        for entry in reversed(done):
            show_harmonized(entry)


def show_harmonized(entry: dict) -> None:
    """One harmonized upload: its melodies as a take's are shown (players, piano roll with the chords, score)."""
    with st.container(border=True):
        found = entry["found"]
        shown = f"{len(entry['melodies'])} of {found} melodies" if found > len(entry["melodies"]) else f"{found}"
        st.markdown(f"**Take {entry['id']}** · `{entry['file']}` harmonized · {shown}")
        st.caption(
            f"{PER.replace('_', ' ')} chords, {entry['melodies'][0]['backing']} backing, in "
            f"{entry['seconds']:.2f} s: the MIDI files carry a chord track and a bass line."
        )
        st.download_button(
            "Download all as .zip",
            entry["zip"],
            f"take{entry['id']:02d}.zip",
            "application/zip",
            key=f"zip_{entry['id']}",
            on_click="ignore",
            icon=":material/folder_zip:",
        )
        for item in entry["melodies"]:
            left, right = st.columns([2, 3], vertical_alignment="center")
            with left:
                show_melody(item)
                st.caption(chord_line(item["melody"]))
            with right:
                st.plotly_chart(
                    piano_roll(item["melody"]), key=f"roll_{item['name']}", config={"displayModeBar": False}
                )
            show_score(item)
