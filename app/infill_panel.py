"""The Generate tab's **Rewrite bars** panel: new versions of some bars of a melody, every other bar kept exactly
(`Sampler.infill`), each heard in context and seen on a piano roll, and **Keep** to add one as a take.

`infill_panel(sampler, model_label)` is the one entry point. A melody comes from a take of this session (generated
or harmonized from an upload) or from a MIDI, MusicXML or ABC file. Bars are counted from 1 in the page and both
ends are rewritten ("bars 5 to 8" is the library's `start_bar=4, end_bar=8`).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import streamlit as st
from copies_view import mark_copies
from notation_view import build_items, render_for_page, take_zip
from piano_roll import piano_roll, shade_steps
from uploads import COLLECTION_SUFFIXES, max_upload_bytes, read_melody_upload

from melodyrnn.encoding import Melody, melody_to_midi
from melodyrnn.errors import MelodyRNNError
from melodyrnn.gaps import bar_lines
from melodyrnn.sample_config import PRIMER_EXTRACTION
from melodyrnn.sampling import Sampler

FROM_SESSION, FROM_FILE = "A melody of this session", "A file"
MAX_VERSIONS = 4
GAP_COLOUR = "#2ca02c"
#: Adaptation steps when "Learn this melody's style first" is ticked (`Sampler.infill(adapt=...)`).
ADAPT_STEPS = 10
ADAPT_HELP = (
    f"The model first trains {ADAPT_STEPS} steps on the bars you keep, on both sides of the new ones (a fraction "
    "of a second more): new bars closer to a melody unlike the model's folk tunes."
)
BARS_HELP = "Bars count from 1, and both the first and the last bar given are rewritten: 5 to 8 is four bars."


@dataclass
class Source:
    """A melody to rewrite: its label in the page, and the take it came from (None for a file)."""

    label: str
    melody: Melody
    take: dict | None = None
    primer_steps: int = 0


def session_melodies() -> dict[str, Source]:
    """Every melody of the session's takes, and of its harmonized uploads, by label ("Take 3 · melody 2")."""
    found: dict[str, Source] = {}
    for take in st.session_state.get("takes", []):
        for i, item in enumerate(take["melodies"], 1):
            label = f"Take {take['id']} · melody {i}"
            found[label] = Source(label, item["melody"], take, item.get("primer_steps", 0))
    for entry in st.session_state.get("harmonized", []):
        for i, item in enumerate(entry.get("melodies", []), 1):
            label = f"Take {entry['id']} · {entry.get('file', 'upload')} melody {i}"
            found[label] = Source(label, item["melody"])
    return found


def choose_source(sampler: Sampler) -> Source | None:
    """The melody picker: a melody of the session, or the first melody of an uploaded file (read on the model's
    grid). None, with a note or an error in the page, when there is none."""
    where = st.radio("Melody", [FROM_SESSION, FROM_FILE], key="infill_source", horizontal=True)
    if where == FROM_SESSION:
        melodies = session_melodies()
        if not melodies:
            st.info("Generate some melodies first, or choose **A file**.")
            return None
        label = st.selectbox("Which one", list(melodies), key="infill_melody")
        return melodies[label]
    upload = st.file_uploader(
        "A melody: MIDI, MusicXML or ABC (its first melody is used)",
        type=[s.lstrip(".") for s in COLLECTION_SUFFIXES],
        max_upload_size=max(1, max_upload_bytes() >> 20),
        key="infill_file",
    )
    if upload is None:
        return None
    try:
        (melody, *_) = read_melody_upload(
            upload.name, upload.getvalue(), sampler.encoding, PRIMER_EXTRACTION, "the melody file"
        )
    except MelodyRNNError as err:
        st.error(f"Cannot use this file: {err}")
        return None
    return Source(f"`{upload.name}`", melody)


def check_bars(melody: Melody, first: int, last: int, encoding) -> str | None:
    """What is wrong with rewriting bars `first`..`last` (1-based, both included) of `melody`, in the page's
    words, or None. The library checks the rest (`InfillError`)."""
    if melody.steps_per_quarter != encoding.steps_per_quarter:
        return (
            f"this melody is on a grid of {melody.steps_per_quarter} steps per quarter note and the model on one "
            f"of {encoding.steps_per_quarter}: choose the model that wrote it"
        )
    if first > last:
        return f"the first bar ({first}) comes after the last ({last})"
    lines = bar_lines(melody)
    bars = len(lines) - 1
    if last > bars:
        return f"this melody has {bars} bars, so the last bar to rewrite can be at most {bars}, not {last}"
    if first > 1 and not (melody.events[: lines[first - 1]] >= 0).any():
        return f"bars 1 to {first - 1} hold no note: start at bar 1, or keep a bar with a note before the new ones"
    return None


def write_versions(sampler: Sampler, model_label: str, source: Source, request: dict) -> None:
    """Runs the infill `request` asks for (`first`, `last`: 1-based bars, both rewritten; `versions`,
    `temperature`, `seed`) and keeps the versions, with their audio, in `st.session_state.infill`; a bad request is
    an error in the page, and what was there stays."""
    first, last, temperature, seed = request["first"], request["last"], request["temperature"], request["seed"]
    started = time.perf_counter()
    try:
        problem = check_bars(source.melody, first, last, sampler.encoding)
        if problem:
            raise MelodyRNNError(problem)
        options = {"adapt": ADAPT_STEPS} if request.get("adapt") else {}
        versions = sampler.infill(
            source.melody, first - 1, last, request["versions"], temperature=temperature, seed=seed, **options
        )
    except MelodyRNNError as err:
        st.error(f"No new versions of bars {first}-{last}: {err}")
        return
    made = time.perf_counter()
    # FluidSynth and the Vorbis encoder run outside the GIL: one thread per core brings the audio sooner.
    with ThreadPoolExecutor(max_workers=min(len(versions), os.cpu_count() or 1)) as pool:
        renders = list(pool.map(render_for_page, [melody_to_midi(m) for m in versions]))
    rendered = [
        {"melody": melody, "rendering": rendering, "player": player, "player_format": player_format}
        for melody, (rendering, player, player_format) in zip(versions, renders)
    ]
    lines = bar_lines(source.melody)
    st.session_state.infill = {
        "source": source,
        "model": model_label,
        "sampler": sampler,
        "first": first,
        "last": last,
        "steps": (int(lines[first - 1]), int(lines[last])),
        "temperature": temperature,
        "seed": seed,
        "versions": rendered,
        "kept": {},
        "seconds": (made - started, time.perf_counter() - made),
    }


def keep(result: dict, index: int) -> int:
    """Adds version `index` of `result` as a new take (files, audio, score, originality); returns its id."""
    source: Source = result["source"]
    melody = result["versions"][index]["melody"]
    origin = dict(source.take["settings"]) if source.take is not None else {}
    settings = {
        "primer": None,
        "top_k": 0,
        "top_p": 1.0,
        "key": None,
        "backing": "none",
        "chords": None,
        "instrument": f"General MIDI program {melody.program}",
        **origin,
        "bars": int(melody.num_bars) if melody.num_bars == int(melody.num_bars) else round(melody.num_bars, 2),
        "qpm": float(melody.qpm),
        "time_signature": "{}/{}".format(*melody.time_signature),
        "temperature": result["temperature"],
        "seed": result["seed"],
    }
    st.session_state.take_counter += 1
    take_id = st.session_state.take_counter
    started = time.perf_counter()
    primer_steps = min(source.primer_steps, result["steps"][0])
    items = build_items([melody], take_id, primer_steps, settings["backing"], settings["key"])
    mark_copies(items, result["sampler"])
    st.session_state.takes.append(
        {
            "id": take_id,
            "model": f"{result['model']} · bars {result['first']}-{result['last']} of {source.label} rewritten",
            "settings": settings,
            "melodies": items,
            "zip": take_zip(items),
            "generate_seconds": result["seconds"][0],
            "render_seconds": time.perf_counter() - started,
            "infill": {"from": source.label, "bars": (result["first"], result["last"]), "version": index + 1},
        }
    )
    return take_id


def show_versions(result: dict) -> None:
    """Each version: its player (the whole melody, so the new bars are heard in context), **Keep**, and its
    piano roll with the rewritten bars shaded."""
    spq = result["source"].melody.steps_per_quarter
    start, end = result["steps"]
    made, rendered = result["seconds"]
    st.markdown(
        f"**Bars {result['first']}-{result['last']} of {result['source'].label}**, rewritten · {result['model']} "
        f"· temperature {result['temperature']:g}, seed {result['seed']} · {made:.2f} s, audio {rendered:.2f} s"
    )
    for i, version in enumerate(result["versions"]):
        left, right = st.columns([2, 3], vertical_alignment="center")
        with left:
            st.markdown(f"Version {i + 1} · {version['rendering'].duration_seconds:.1f} s")
            st.audio(version["player"], format=version["player_format"])
            kept = result["kept"].get(i)
            if st.button(
                f"Kept as take {kept}" if kept else "Keep",
                key=f"infill_keep_{i}",
                disabled=kept is not None,
                icon=":material/bookmark_add:",
                help="Add this version to the session's melodies, as a take of its own.",
            ):
                with st.spinner("Keeping…"):
                    result["kept"][i] = keep(result, i)
                st.rerun()  # the button says which take it became
        with right:
            figure = piano_roll(version["melody"])
            shade_steps(figure, start, end, spq, GAP_COLOUR, "new bars")
            st.plotly_chart(figure, key=f"infill_roll_{i}", config={"displayModeBar": False})


def infill_panel(sampler: Sampler | None, model_label: str) -> None:
    """**Rewrite bars**: the melody, the bars, how many versions; then the versions of the last request."""
    result = st.session_state.get("infill")
    with st.expander("Rewrite bars of a melody (infill)", expanded=result is not None):
        if sampler is None:
            st.info("Choose a model first.")
            return
        source = choose_source(sampler)
        c1, c2, c3, c4, c5 = st.columns(5)
        request = {
            "first": int(c1.number_input("First bar", min_value=1, value=5, key="infill_first", help=BARS_HELP)),
            "last": int(c2.number_input("Last bar", min_value=1, value=8, key="infill_last", help=BARS_HELP)),
            "versions": int(c3.number_input("Versions", 1, MAX_VERSIONS, 2, key="infill_versions")),
            "temperature": float(c4.slider("Temperature", 0.0, 2.0, 1.0, 0.05, key="infill_temperature")),
            "seed": int(c5.number_input("Seed", 0, 2**31 - 1, 0, key="infill_seed")),
            "adapt": st.checkbox("Learn this melody's style first", key="infill_adapt", help=ADAPT_HELP),
        }
        st.caption(f"{BARS_HELP} Every other bar comes back exactly as it was; the model hears the bars on both sides.")
        if st.button("Write new versions", key="infill_run", type="primary", disabled=source is None):
            assert source is not None
            with st.spinner("Writing new bars…"):
                write_versions(sampler, model_label, source, request)
        result = st.session_state.get("infill")
        if result is not None:
            show_versions(result)
