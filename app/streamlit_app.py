"""melodyrnn in the browser: generate, hear, see and download melodies, and train on your own MIDI files.

Run it with `streamlit run app/streamlit_app.py`. UI only: each action is one call into the library
(`Sampler.generate`, `melody_to_midi`, `audio.render_midi`, `prepare`, `train` in a background thread).
`MELODYRNN_MODEL` names the default model's bundle (else the one shipped in `melodyrnn/pretrained/`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper modules beside this file

from copies_view import mark_copies, show_copy  # noqa: E402
from harmony_panel import chords_field, take_harmony, upload_panel  # noqa: E402
from infill_panel import infill_panel  # noqa: E402
from notation_view import BACKINGS, INSTRUMENTS, build_items, show_melody, show_score, take_zip  # noqa: E402
from piano_roll import piano_roll  # noqa: E402
from scratch import Scratch, sweep  # noqa: E402
from training_job import APP_MODEL_CONFIG, APP_TRAIN_CONFIG, TrainingJob  # noqa: E402
from uploads import (  # noqa: E402
    COLLECTION_SUFFIXES,
    MAX_BUNDLE_MB,
    max_upload_bytes,
    read_melody_upload,
    save_bundle_upload,
    save_training_uploads,
    too_large,
)

from melodyrnn.baselines import format_baselines  # noqa: E402
from melodyrnn.bundle import DEFAULT_BUNDLE_PATH  # noqa: E402
from melodyrnn.dataset import prepare  # noqa: E402
from melodyrnn.errors import MelodyRNNError  # noqa: E402
from melodyrnn.run_folder import BEST, LATEST  # noqa: E402
from melodyrnn.sample_config import PRIMER_EXTRACTION, SampleConfig, primer_to_melody  # noqa: E402
from melodyrnn.sampling import Sampler  # noqa: E402
from melodyrnn.theory import KEY_TONIC_NAMES, SCALES  # noqa: E402

TIME_SIGNATURES = ["4/4", "3/4", "2/4", "6/8"]
# The page shows a few takes side by side, each a whole tune: more melodies and bars than the library's default.
APP_MELODIES, APP_BARS = 4, 16
SAMPLE_DEFAULTS = SampleConfig()
SOURCE_DEFAULT, SOURCE_UPLOAD, SOURCE_RUN = "Default model", "Upload a bundle", "Bundle from a run folder"
TRAINED_PREFIX = "Trained here: "


# ----------------------------------------------------------------------------------------------------------
# State


#: The Train tab's two starts: fine-tuning the page's default model (the default), or a new small model.
FINE_TUNE = "Fine-tune the default model"
FROM_SCRATCH = "A new model, from scratch"


def default_model_path() -> Path:
    """`MELODYRNN_MODEL` when set, else the bundle shipped with the package."""
    return Path(os.environ.get("MELODYRNN_MODEL") or DEFAULT_BUNDLE_PATH)


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def load_sampler(path: str, mtime_ns: int) -> Sampler:
    """One `Sampler` per bundle file and version (the mtime makes a re-written file load again)."""
    return Sampler(path)


@st.cache_resource
def sweep_at_start_up() -> list[Path]:
    """Once per server process: remove the scratch folders of sessions a previous, killed server left behind."""
    return sweep()


def session_dir() -> Path:
    """This session's scratch folder: made on first use (sweeping away the folders of sessions long gone), and
    removed with the session's state."""
    if "scratch" not in st.session_state:
        sweep()
        st.session_state.scratch = Scratch()
    return st.session_state.scratch.touch()


def init_state() -> None:
    st.session_state.setdefault("takes", [])  # one dict per Generate click, newest last
    st.session_state.setdefault("trained", {})  # option label → best bundle path
    st.session_state.setdefault("job", None)  # the TrainingJob, while there is one
    st.session_state.setdefault("prepared", None)  # {"cache", "report", "rejected", "saved"}
    st.session_state.setdefault("take_counter", 0)


def collect_finished_training() -> None:
    """Once a background run ends, its best bundle becomes a model choice, selected for the next Generate."""
    job: TrainingJob | None = st.session_state.job
    if job is None or not job.done or job.collected:
        return
    job.collected = True
    if job.best_bundle is not None:
        label = f"{TRAINED_PREFIX}{job.run_dir.name}"
        st.session_state.trained[label] = str(job.best_bundle)
        st.session_state.model_source = label


# ----------------------------------------------------------------------------------------------------------
# Generate


def choose_model() -> tuple[Sampler | None, str]:
    """The model picker. Returns the loaded sampler (None when there is none yet) and a label for it."""
    default = default_model_path()
    label = ""
    options = [SOURCE_DEFAULT, SOURCE_UPLOAD, SOURCE_RUN, *st.session_state.trained]
    if st.session_state.get("model_source") not in options:
        st.session_state.model_source = SOURCE_DEFAULT
    source = st.radio("Model", options, key="model_source", horizontal=True)
    path: Path | None = None
    if source == SOURCE_DEFAULT:
        if not default.is_file():
            st.warning(
                f"The default model is missing (expected at `{default}`). Upload a bundle, pick a run "
                "folder, or train a model in the **Train** tab."
            )
            return None, ""
        path = default
    elif source == SOURCE_UPLOAD:
        upload = st.file_uploader("Model bundle (.melodyrnn)", key="bundle_upload", max_upload_size=int(MAX_BUNDLE_MB))
        if upload is None:
            st.info("Upload a `.melodyrnn` bundle file, as written by `melodyrnn train`.")
            return None, ""
        problem = too_large(upload.size, int(MAX_BUNDLE_MB * 1024 * 1024))
        if problem:
            st.error(f"`{upload.name}` is {problem}.")
            return None, ""
        path = save_bundle_upload(upload.name, upload.getvalue(), session_dir() / "bundles")
        label = f"uploaded {upload.name}"
    elif source == SOURCE_RUN:
        folder = st.text_input(
            "Run folder",
            key="run_folder",
            placeholder="runs/folk",
            help=f"A folder written by `melodyrnn train`: its {BEST} is used.",
        )
        if not folder.strip():
            st.info("Type the path of a run folder on this machine.")
            return None, ""
        run = Path(folder.strip()).expanduser()
        path = next((p for p in (run / BEST, run / LATEST) if p.is_file()), None)
        if path is None:
            st.error(f"`{run}` holds no {BEST} or {LATEST}: it is not a training run folder.")
            return None, ""
    else:
        path = Path(st.session_state.trained[source])
    try:
        sampler = load_sampler(str(path), path.stat().st_mtime_ns)
    except MelodyRNNError as err:
        st.error(f"Cannot load this model: {err}")
        return None, ""
    config = sampler.bundle.model_config
    st.caption(
        f"`{path.name}`: {config.num_layers} × {config.units} {config.cell.upper()}"
        f"{' + attention' if config.attention else ''}, pitches {sampler.encoding.min_pitch}–"
        f"{sampler.encoding.max_pitch}, {sampler.encoding.steps_per_quarter} steps per quarter note"
    )
    return sampler, label or source


def settings_form() -> dict | None:
    """The generation settings; returns them when Generate was clicked, else None."""
    with st.form("settings", border=True):
        c1, c2, c3, c4 = st.columns(4)
        num_melodies = c1.number_input("Melodies", 1, 16, APP_MELODIES, key="num_melodies")
        bars = c2.number_input("Length (bars)", 1, 64, APP_BARS, key="bars")
        qpm = c3.number_input("Tempo (quarter notes per minute)", 30, 300, 120, step=5, key="qpm")
        time_signature = c4.selectbox("Time signature", TIME_SIGNATURES, key="time_signature")
        c1, c2, c3, c4 = st.columns(4)
        temperature = c1.slider(
            "Temperature",
            0.0,
            2.0,
            SAMPLE_DEFAULTS.temperature,
            0.05,
            key="temperature",
            help="0 always takes the most likely event; higher is more adventurous.",
        )
        top_k = c2.number_input("Top-k (0 = off)", 0, 130, SAMPLE_DEFAULTS.top_k, key="top_k")
        top_p = c3.slider("Top-p", 0.05, 1.0, SAMPLE_DEFAULTS.top_p, 0.05, key="top_p", help="1 keeps every event.")
        seed = c4.number_input("Seed", 0, 2**31 - 1, 0, key="seed", help="The same seed gives the same melodies.")
        c1, c2, c3, c4 = st.columns(4)
        tonic = c1.selectbox("Key", ["Any", *KEY_TONIC_NAMES], key="tonic")
        scale = c2.selectbox("Scale", list(SCALES), key="scale", help="Used when a key is chosen.")
        instrument = c3.selectbox("Instrument", list(INSTRUMENTS), key="instrument")
        backing = c4.selectbox("Backing", BACKINGS, key="backing", help="Plays a melody's chords, when it has some.")
        c0, c1, c2 = st.columns([2, 2, 3])
        chord_options = chords_field(c0)
        primer_text = c1.text_input(
            "Primer notes",
            key="primer_text",
            placeholder="D4 F4 A4 D5",
            help="Note names, one beat each, that open every melody.",
        )
        primer_file = c2.file_uploader(
            "…or a primer file (MIDI, MusicXML or ABC)",
            type=[s.lstrip(".") for s in COLLECTION_SUFFIXES],
            max_upload_size=max(1, max_upload_bytes() >> 20),
            key="primer_file",
            help="Its first melody opens every melody.",
        )
        clicked = st.form_submit_button("Generate", type="primary", key="generate")
    if not clicked:
        return None
    return {
        "num_melodies": int(num_melodies),
        "bars": int(bars),
        "qpm": float(qpm),
        "time_signature": time_signature,
        "temperature": float(temperature),
        "top_k": int(top_k),
        "top_p": float(top_p),
        "seed": int(seed),
        "key": None if tonic == "Any" else f"{tonic} {scale}",
        "instrument": instrument,
        "backing": backing,
        "primer_text": primer_text.strip(),
        "primer_file": primer_file,
        **chord_options,
    }


def read_primer(settings: dict, encoding):
    """The primer to pass on: the file's first melody on `encoding`'s grid, the typed names, or None. Raises on an
    oversized or unreadable file."""
    upload = settings["primer_file"]
    if upload is not None:
        melodies = read_melody_upload(upload.name, upload.getvalue(), encoding, PRIMER_EXTRACTION, "the primer file")
        return melodies[0], f"file {upload.name}"
    if settings["primer_text"]:
        return settings["primer_text"], settings["primer_text"]
    return None, None


def generate(sampler: Sampler, model_label: str, settings: dict) -> None:
    """One click: generate, write MIDI, render audio, keep the take in the session."""
    started = time.perf_counter()
    try:
        primer, primer_label = read_primer(settings, sampler.encoding)
        primer_melody = primer_to_melody(primer, sampler.encoding)
        melodies = sampler.generate(
            settings["num_melodies"],
            bars=settings["bars"],
            primer=primer_melody,
            temperature=settings["temperature"],
            top_k=settings["top_k"],
            top_p=settings["top_p"],
            key=settings["key"],
            qpm=settings["qpm"],
            time_signature=settings["time_signature"],
            program=INSTRUMENTS[settings["instrument"]],
            seed=settings["seed"],
            chords=settings["chords"],
            chord_guidance=settings["chord_guidance"],
        )
    except MelodyRNNError as err:
        st.error(f"Nothing generated: {err}")
        return
    generated = time.perf_counter()
    st.session_state.take_counter += 1
    take_id = st.session_state.take_counter
    primer_steps = len(primer_melody) if primer_melody is not None else 0
    items = build_items(melodies, take_id, primer_steps, settings["backing"], settings["key"])
    mark_copies(items, sampler)  # each melody's longest run found in the model's training data, when known
    shown = {k: v for k, v in settings.items() if k not in ("primer_file", "primer_text")}
    shown["primer"] = primer_label
    st.session_state.takes.append(
        {
            "id": take_id,
            "model": model_label,
            "settings": shown,
            "melodies": items,
            "zip": take_zip(items),
            "generate_seconds": generated - started,
            "render_seconds": time.perf_counter() - generated,
        }
    )


def show_take(take: dict) -> None:
    s = take["settings"]
    with st.container(border=True):
        st.markdown(f"**Take {take['id']}** · {take['model']} · {len(take['melodies'])} × {s['bars']} bars")
        primer = f", primer {s['primer']}" if s["primer"] else ""
        st.caption(
            f"temperature {s['temperature']:g}, top-k {s['top_k'] or 'off'}, top-p {s['top_p']:g}, "
            f"key {s['key'] or 'any'}, {s['qpm']:g} qpm, {s['time_signature']}, {s['instrument']}, "
            f"{s['backing']} backing, seed {s['seed']}{primer} · generated in {take['generate_seconds']:.2f} s, audio "
            f"({take['melodies'][0]['backend']}) in {take['render_seconds']:.2f} s"
        )
        st.download_button(
            "Download all as .zip",
            take["zip"],
            f"take{take['id']:02d}.zip",
            "application/zip",
            key=f"zip_{take['id']}",
            on_click="ignore",
            icon=":material/folder_zip:",
        )
        take_harmony(take)
        for item in take["melodies"]:
            left, right = st.columns([2, 3], vertical_alignment="center")
            with left:
                show_melody(item)
                show_copy(item)
            with right:
                st.plotly_chart(
                    piano_roll(item["melody"], item["primer_steps"]),
                    key=f"roll_{item['name']}",
                    config={"displayModeBar": False},
                )
            show_score(item)


def generate_tab() -> None:
    sampler, label = choose_model()
    settings = settings_form()
    if settings is not None:
        if sampler is None:
            st.error("Choose a model first: the default one is missing, or the chosen one could not be loaded.")
        else:
            with st.spinner("Generating…"):
                generate(sampler, label, settings)
    upload_panel()
    infill_panel(sampler, label)
    takes = st.session_state.takes
    if takes:
        head, clear = st.columns([4, 1], vertical_alignment="center")
        head.subheader(f"This session's melodies ({sum(len(t['melodies']) for t in takes)})")
        if clear.button("Clear melodies", key="clear"):
            st.session_state.takes = []
            st.rerun()
        for take in reversed(takes):
            show_take(take)


# ----------------------------------------------------------------------------------------------------------
# Train


def train_tab() -> None:
    job: TrainingJob | None = st.session_state.job
    busy = job is not None and job.running
    st.markdown(
        "Upload MIDI files (or a zip of them), check what was found, then train. A small collection learns "
        "best by fine-tuning the default model, which is what **Train** does unless you ask for a new model. "
        "Training runs in the background: the page stays usable, and **Stop** ends it after the "
        "current batch, keeping the best model so far."
    )
    # No `type=` filter: a stray file is listed with its reason below rather than refused without one.
    files = st.file_uploader(
        "MIDI files (.mid, .midi, .kar), scores (.musicxml, .xml, .mxl, .abc) or a zip of them",
        accept_multiple_files=True,
        max_upload_size=max(1, max_upload_bytes() >> 20),
        key="train_files",
        disabled=busy,
    )
    if st.button("Prepare the data", key="prepare", disabled=busy or not files):
        prepare_uploads(files)
    prepared = st.session_state.prepared
    if prepared is not None:
        for name, reason in prepared["rejected"]:
            st.warning(f"`{name}`: {reason}")
        if prepared.get("error"):
            headline, _, details = prepared["error"].partition("\n")
            st.error(headline)
            if details:
                st.code(details, language=None)
        if prepared.get("report"):
            st.success(f"{prepared['melodies']} melodies from {prepared['files']} files are ready to train on.")
            st.code(prepared["report"], language=None)

    with st.expander("Training settings", expanded=False):
        start = st.radio("Start from", [FINE_TUNE, FROM_SCRATCH], key="start", horizontal=True)
        c1, c2, c3, c4 = st.columns(4)
        minutes = c1.number_input(
            "Time budget (minutes)", 0.1, 120.0, APP_TRAIN_CONFIG["max_minutes"], 0.5, key="max_minutes"
        )
        scratch = start == FROM_SCRATCH
        epochs = c2.number_input("Epochs", 1, 200, APP_TRAIN_CONFIG["epochs"], key="epochs", disabled=not scratch)
        units = c3.number_input("Units", 8, 512, APP_MODEL_CONFIG["units"], 8, key="units", disabled=not scratch)
        layers = c4.number_input(
            "Recurrent layers", 1, 4, APP_MODEL_CONFIG["num_layers"], key="num_layers", disabled=not scratch
        )
    ready = prepared is not None and prepared.get("cache") is not None
    if st.button("Train", type="primary", key="train", disabled=busy or not ready):
        run_dir = session_dir() / f"run{len(st.session_state.trained) + 1:02d}_{time.strftime('%H%M%S')}"
        if scratch:
            model_config = {**APP_MODEL_CONFIG, "units": int(units), "num_layers": int(layers)}
            train_config = {**APP_TRAIN_CONFIG, "epochs": int(epochs), "max_minutes": float(minutes)}
            job = TrainingJob(prepared["cache"], run_dir, model_config, train_config)
        else:  # the budget, learning rate and warm-up that the library plans for fine-tuning small data
            job = TrainingJob(prepared["cache"], run_dir, None, {"max_minutes": float(minutes)}, default_model_path())
        st.session_state.job = job.start()
        st.rerun()
    job = st.session_state.job
    if job is not None:
        # Redrawn every second on its own while training runs, so progress moves and the rest of the page stays
        # put; static once training has ended.
        st.fragment(training_progress, run_every=1.0 if job.running else None)()


def prepare_uploads(files) -> None:
    """Uploads → a scratch folder → `prepare` → the report, kept in the session."""
    folder = Path(tempfile.mkdtemp(prefix="data-", dir=session_dir()))
    saved = save_training_uploads([(f.name, f.getvalue()) for f in files], folder / "midi")
    state: dict[str, Any] = {"rejected": saved.rejected, "cache": None, "report": None}
    if not saved.saved:
        state["error"] = "No MIDI files to prepare: upload MIDI files, scores (MusicXML, ABC) or a zip that holds some."
    else:
        try:
            with st.spinner(f"Reading {len(saved.saved)} MIDI files…"):
                data = prepare(folder / "midi", folder / "data.npz", workers=1, progress=False)
        except MelodyRNNError as err:
            state["error"] = f"No training data: {str(err).replace(str(folder / 'midi'), 'the upload')}"
        else:
            report = data.report
            state.update(
                cache=str(folder / "data.npz"),
                report=report.format(),
                melodies=report.melodies_kept,
                files=report.files_with_melodies,
            )
    st.session_state.prepared = state


def training_progress() -> None:
    """The progress bar, the Stop button and the epoch table of the session's training run."""
    job: TrainingJob | None = st.session_state.job
    if job is None:
        return
    p = job.progress()
    if job.running:
        text = f"epoch {max(p['epoch'], 1)} of {job.epochs}"
        if p["batches"]:
            text += f", batch {p['batch']} of {p['batches']}"
        if p["loss"] is not None:
            text += f", loss {p['loss']:.3f}"
        st.progress(p["fraction"], text=f"Training: {text} · {p['seconds']:.0f} s")
        if st.button("Stop", key="stop_training", disabled=job.stop_requested):
            job.stop()
        if job.stop_requested:
            st.info("Stopping after the current batch…")
    else:
        st.progress(1.0, text=f"Training finished in {p['seconds']:.0f} s")
        if job.error:
            st.error(f"Training stopped with an error: {job.error}")
        elif job.best_bundle is None:
            st.error("Training stopped before the first epoch finished, so there is no model to use.")
        else:
            how = "stopped by you" if job.stop_requested else (job.result.stopped if job.result else "done")
            st.success(
                f"Model trained ({how}, {len(p['history'])} epochs): it is now selected in the **Generate** tab."
            )
            result = job.result
            if result is not None and result.setup_lines():
                st.caption(" · ".join(result.setup_lines()))
            if result is not None and result.best_val_loss is not None and result.baselines:
                # the same comparison `melodyrnn train` prints: did training beat what was already there?
                st.caption(
                    f"Validation loss of the best epoch: {result.best_val_loss:.4f} nats/step; "
                    f"{format_baselines(result.baselines)}."
                )
        if not getattr(job, "collected", False):
            st.rerun(scope="app")  # the Generate tab learns of the new model
    if p["history"]:
        st.dataframe(p["history"], hide_index=True, height=min(38 + 35 * len(p["history"]), 260))


# ----------------------------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="melodyrnn", page_icon="🎼", layout="wide")
    sweep_at_start_up()
    init_state()
    collect_finished_training()
    st.title("melodyrnn")
    st.caption("Learn melodies from MIDI files and write new ones.")
    generate_area, train_area = st.tabs(["Generate", "Train"])
    with generate_area:
        generate_tab()
    with train_area:
        train_tab()


main()
