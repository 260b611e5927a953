"""The Generate tab's melodies as lead sheets: files in every format, audio with and without the backing, and the
engraved score (verovio renders the MusicXML to SVG in this process: nothing is fetched).

`build_items` turns a take's melodies into the dicts the page keeps; `take_zip` packs them; `show_melody` draws
one's players and downloads, `show_score` its score.
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import streamlit as st

from melodyrnn.audio import Rendered, render_midi, wav_to_ogg
from melodyrnn.backing import has_chords, melody_to_midi_with_backing
from melodyrnn.encoding import Melody, melody_to_midi
from melodyrnn.errors import MelodyRNNError
from melodyrnn.notation import melody_to_abc, melody_to_musicxml

BACKINGS = ("none", "block", "arpeggio", "waltz")
#: General MIDI programs a melody sounds good on (the number is what goes into the MIDI file).
INSTRUMENTS = {
    "Acoustic grand piano": 0,
    "Celesta": 8,
    "Music box": 10,
    "Vibraphone": 11,
    "Marimba": 12,
    "Accordion": 21,
    "Nylon guitar": 24,
    "Violin": 40,
    "Harp": 46,
    "String ensemble": 48,
    "Trumpet": 56,
    "Oboe": 68,
    "Clarinet": 71,
    "Flute": 73,
    "Recorder": 74,
    "Pan flute": 75,
    "Whistle": 78,
    "Ocarina": 79,
    "Square lead": 80,
    "Fiddle": 110,
}

# verovio's toolkit keeps its document between calls: one at a time.
_VEROVIO_LOCK = threading.Lock()
_TOOLKIT: Any = None


def score_svg(musicxml: str) -> str:
    """The MusicXML engraved by verovio as SVG (every page, one after another); a short note when verovio is
    missing or cannot read it."""
    global _TOOLKIT
    try:
        import verovio
    except ImportError:
        return "<p>Install verovio (<code>pip install verovio</code>) to see the score.</p>"
    with _VEROVIO_LOCK:
        if _TOOLKIT is None:
            _TOOLKIT = verovio.toolkit()
            _TOOLKIT.setOptions(
                {"pageWidth": 2100, "adjustPageHeight": True, "scale": 40, "footer": "none", "header": "none"}
            )
        if not _TOOLKIT.loadData(musicxml):
            return "<p>The score could not be engraved.</p>"
        return "".join(_TOOLKIT.renderToSVG(page) for page in range(1, _TOOLKIT.getPageCount() + 1))


def render_for_page(midi: bytes) -> tuple[Rendered, bytes, str]:
    """The rendering (its WAV is the download) and what the page's player streams: Ogg Vorbis, about ten times
    smaller than the WAV, so a page of takes stays quick; the WAV itself when `soundfile` is missing."""
    rendered = render_midi(midi)
    try:
        return rendered, wav_to_ogg(rendered.wav), "audio/ogg"
    except MelodyRNNError:
        return rendered, rendered.wav, "audio/wav"


def build_items(melodies: list[Melody], take_id: int, primer_steps: int, backing: str, key: str | None) -> list[dict]:
    """Each melody's files, audio and score: ``midi`` (with the backing when there is one), ``musicxml``,
    ``abc``, ``svg``, ``wav`` and the player's stream, and ``backed`` (a second rendering with the backing, or
    None when the melody has no chords or `backing` is "none")."""
    names = [f"take{take_id:02d}_melody{i:02d}" for i in range(1, len(melodies) + 1)]
    plain = [melody_to_midi(m) for m in melodies]
    backed = [
        melody_to_midi_with_backing(m, backing=backing) if backing != "none" and has_chords(m) else None
        for m in melodies
    ]
    jobs = plain + [b for b in backed if b is not None]
    # FluidSynth and the Vorbis encoder run outside the GIL: one thread per core brings the audio sooner.
    with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
        renders = iter(list(pool.map(render_for_page, jobs)))
    plain_renders = [next(renders) for _ in plain]
    items = []
    for name, melody, midi, backed_midi, (rendered, player, player_format) in zip(
        names, melodies, plain, backed, plain_renders
    ):
        musicxml = melody_to_musicxml(melody, title=name, key=key)
        items.append(
            {
                "name": name,
                "melody": melody,
                "midi": backed_midi or midi,
                "wav": rendered.wav,
                "player": player,
                "player_format": player_format,
                "backend": rendered.backend,
                "seconds": rendered.duration_seconds,
                "primer_steps": primer_steps,
                "musicxml": musicxml,
                "abc": melody_to_abc(melody, title=name, key=key),
                "svg": score_svg(musicxml),
                "backed": None if backed_midi is None else next(renders),
                "backing": backing,
            }
        )
    return items


def take_zip(items: list[dict]) -> bytes:
    """Every melody of a take as MIDI, WAV, MusicXML and ABC (and the WAV with its backing, when it has one)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in items:
            archive.writestr(f"{item['name']}.mid", item["midi"])
            archive.writestr(f"{item['name']}.wav", item["wav"])
            archive.writestr(f"{item['name']}.musicxml", item["musicxml"])
            archive.writestr(f"{item['name']}.abc", item["abc"])
            if item["backed"] is not None:
                archive.writestr(f"{item['name']}_with_backing.wav", item["backed"][0].wav)
    return buffer.getvalue()


_DOWNLOADS = (
    ("MIDI", "midi", "mid", "audio/midi"),
    ("WAV", "wav", "wav", "audio/wav"),
    ("MusicXML", "musicxml", "musicxml", "application/vnd.recordare.musicxml+xml"),
    ("ABC", "abc", "abc", "text/vnd.abc"),
)


def show_melody(item: dict) -> None:
    """One melody: its players (melody alone, and with the backing when it has chords) and its downloads."""
    st.markdown(f"`{item['name']}` · {item['seconds']:.1f} s")
    st.audio(item["player"], format=item["player_format"])
    if item["backed"] is not None:
        st.caption(f"With the {item['backing']} backing:")
        st.audio(item["backed"][1], format=item["backed"][2])
    elif item["backing"] != "none":
        st.caption("No backing: this melody has no chords.")
    for column, (label, field, suffix, mime) in zip(st.columns(len(_DOWNLOADS)), _DOWNLOADS):
        column.download_button(
            label,
            item[field],
            f"{item['name']}.{suffix}",
            mime,
            key=f"{suffix}_{item['name']}",
            on_click="ignore",
            icon=":material/download:",
        )


def show_score(item: dict) -> None:
    """The melody's engraved score, the page's width."""
    # st.html's sanitizer drops SVG; markdown keeps it, on one line so no indented line reads as a code block
    svg = item["svg"].replace("\n", "")
    st.markdown(
        f'<div class="melody-score" style="overflow-x:auto;background:white">{svg}</div>', unsafe_allow_html=True
    )
