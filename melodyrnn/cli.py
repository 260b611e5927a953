"""The `melodyrnn` command line: parse arguments and dispatch to the library, nothing else.

Each subcommand maps its flags one-to-one onto a config dataclass's fields. A user's bad input prints
one line to stderr and exits with status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# TensorFlow's C++ start-up chatter (oneDNN notes, "no CUDA driver" on CPU machines) buries the command's own
# output; failures still reach the user as Python exceptions. Set before anything imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from melodyrnn.cli_harmonize import add_harmonize, add_task_flag, run_train_harmonizer  # noqa: E402
from melodyrnn.cli_infill import add_infill  # noqa: E402
from melodyrnn.errors import MelodyRNNError  # noqa: E402


def _add_prepare(sub) -> None:
    from melodyrnn.collection import VALIDATION_FRACTION
    from melodyrnn.encoding import EncodingConfig
    from melodyrnn.extraction import ExtractionConfig

    enc, ext = EncodingConfig(), ExtractionConfig()
    p = sub.add_parser(
        "prepare",
        help="turn a folder of MIDI files into a training cache",
        description="Walk DIR for .mid/.midi/.kar files (and .musicxml/.xml/.mxl/.abc scores, with the scores "
        "extra), extract monophonic melodies, encode them and write a cache (.npz) plus a report (.report.json).",
    )
    p.add_argument("dir", help="folder searched recursively for MIDI files and scores")
    p.add_argument("-o", "--output", default="data.npz", help="cache file to write (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--strict", action="store_true", help="stop at the first file that cannot be used")
    p.add_argument(
        "--validation-fraction",
        type=float,
        default=VALIDATION_FRACTION,
        help="share of files held out (default: %(default)s)",
    )
    p.add_argument("--steps-per-quarter", type=int, default=enc.steps_per_quarter)
    p.add_argument("--min-pitch", type=int, default=enc.min_pitch)
    p.add_argument("--max-pitch", type=int, default=enc.max_pitch)
    p.add_argument("--polyphony", choices=["highest", "drop"], default=ext.polyphony)
    p.add_argument("--gap-bars", type=float, default=ext.gap_bars)
    p.add_argument("--min-bars", type=float, default=ext.min_bars)
    p.add_argument("--min-unique-pitches", type=int, default=ext.min_unique_pitches)
    p.add_argument("--max-steps", type=int, default=ext.max_steps)
    p.add_argument("--melody-tracks", type=_melody_tracks, default=ext.melody_tracks, help=_MELODY_TRACKS_HELP)
    p.add_argument("--chords", choices=["auto", "none"], default=ext.chords, help="read each melody's chords or not")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_run_prepare)


def _run_prepare(args) -> int:
    from dataclasses import replace

    from melodyrnn.dataset import prepare
    from melodyrnn.encoding import EncodingConfig
    from melodyrnn.extraction import ExtractionConfig

    config = EncodingConfig(args.steps_per_quarter, args.min_pitch, args.max_pitch)
    extraction = ExtractionConfig(
        args.polyphony, args.gap_bars, args.min_bars, args.min_unique_pitches, args.max_steps, args.melody_tracks
    )
    extraction = replace(extraction, chords=args.chords)
    data = prepare(
        args.dir,
        args.output,
        config=config,
        extraction=extraction,
        validation_fraction=args.validation_fraction,
        workers=args.workers,
        strict=args.strict,
        progress=False if args.no_progress else None,
    )
    if args.json:
        print(json.dumps(data.report.to_dict(), indent=2))
    else:
        print(data.report.format())
        out = Path(args.output)
        print(f"wrote {out} and {out.with_name(out.stem + '.report.json')}")
    return 0


_MELODY_TRACKS_HELP = (
    "which tracks melodies come from: auto (the melody track(s), chosen per file), all (every non-drum track), "
    "a track name, or a track index (default: %(default)s)"
)


def _melody_tracks(value: str) -> str | int:
    """`--melody-tracks`: a number is a track index, anything else a mode or a track name."""
    return int(value) if value.strip().isdigit() else value


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="describe a prepared cache")
    p.add_argument("path", help="a .npz cache written by `melodyrnn prepare`")
    p.set_defaults(func=_run_info)


def _run_info(args) -> int:
    from melodyrnn.dataset import PreparedData

    data = PreparedData.load(args.path)
    print(f"prepared data: {args.path}")
    print(f"vocabulary: {data.config.vocab_size} ids ({data.config})")
    print(data.report.format())
    return 0


# `generate` flags that map one-to-one onto `SampleConfig` fields; absent flags leave the field's default.
_SAMPLE_FLAGS = (
    "bars",
    "temperature",
    "top_k",
    "top_p",
    "beam_size",
    "branch_factor",
    "key",
    "min_pitch",
    "max_pitch",
    "repetition_penalty",
    "max_repeats",
    "qpm",
    "time_signature",
    "program",
    "velocity",
    "chords",
)


def _add_generate(sub) -> None:
    from melodyrnn.sample_config import SampleConfig

    defaults = SampleConfig()
    p = sub.add_parser(
        "generate",
        help="write new melodies as MIDI files",
        description="Generate melodies with a model bundle (default: the bundled model), write one "
        "MIDI file per melody and print a line per melody. Unset options take "
        "melodyrnn.SampleConfig's defaults.",
    )
    p.add_argument("--model", default=None, help="bundle file (default: the model bundled with melodyrnn)")
    p.add_argument(
        "-n",
        "--num-melodies",
        type=int,
        default=defaults.num_melodies,
        help="melodies to generate (default: %(default)s)",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument(
        "--bars", type=float, help=f"length in bars, primer included (default: {SampleConfig.default_bars:g})"
    )
    length.add_argument("--steps", type=int, help="length in steps, primer included")
    p.add_argument(
        "--primer",
        default=None,
        help="note names ('D4 F4 A4', one beat each), MIDI pitches ('62 65 69') or a MIDI file",
    )
    p.add_argument("--temperature", type=float, help=f"0 = greedy (default: {defaults.temperature:g})")
    p.add_argument("--top-k", type=int, help="keep the k most likely events; 0 = off (the default)")
    p.add_argument("--top-p", type=float, help="nucleus sampling threshold in (0, 1]; 1 = off (the default)")
    p.add_argument("--beam-size", type=int, help=f"hypotheses per melody (default: {defaults.beam_size})")
    p.add_argument("--branch-factor", type=int, help=f"candidates per hypothesis (default: {defaults.branch_factor})")
    p.add_argument("--key", help="key and scale, e.g. 'D minor', 'F# dorian', 'A blues'")
    p.add_argument("--min-pitch", type=int)
    p.add_argument("--max-pitch", type=int)
    p.add_argument("--repetition-penalty", type=float, help=f"(default: {defaults.repetition_penalty:g}, off)")
    p.add_argument("--max-repeats", type=int, help="most immediate repeats of one pitch")
    p.add_argument("--qpm", type=float, help="tempo (default: the primer's, else 120)")
    p.add_argument("--time-signature", help="e.g. 3/4 (default: the primer's, else 4/4)")
    p.add_argument(
        "--chords",
        help="a chord progression: 'Am F C G' (a chord a bar, repeated), 'Am F | C G' (bars split), 'Am:2 F:2' "
        "(beats); chord-aware models follow it, and the files carry it",
    )
    p.add_argument("--program", type=int, help="General MIDI program 0-127")
    p.add_argument("--velocity", type=int)
    p.add_argument("--seed", type=int, default=None, help="for reproducible melodies (default: a fresh one, printed)")
    p.add_argument(
        "--check",
        metavar="DATA",
        default=None,
        help="a prepared cache or MIDI folder (e.g. the training data): print each melody's longest run of notes "
        "also found there, in any key",
    )
    p.add_argument("-o", "--output", default="generated", help="folder for the MIDI files (default: %(default)s)")
    p.add_argument(
        "--format",
        default="mid",
        help="files per melody, comma-separated: mid, musicxml, abc (lead sheets) (default: %(default)s)",
    )
    p.add_argument(
        "--backing",
        default="none",
        choices=("none", "block", "arpeggio", "waltz"),
        help="play the melodies' chords in the MIDI files: a second instrument and a bass line (default: none)",
    )
    p.set_defaults(func=_run_generate)


def _run_generate(args) -> int:
    import secrets

    from melodyrnn.backing import has_chords
    from melodyrnn.metrics import estimate_key
    from melodyrnn.notation import OUTPUT_FORMATS, parse_formats
    from melodyrnn.sampling import Sampler, write_melodies
    from melodyrnn.theory import pitch_to_note_name

    primer = args.primer
    if primer is not None and all(part.isdigit() for part in primer.replace(",", " ").split()):
        primer = [int(part) for part in primer.replace(",", " ").split()]
    seed = args.seed if args.seed is not None else secrets.randbits(31)
    options = {k: getattr(args, k) for k in _SAMPLE_FLAGS if getattr(args, k) is not None}
    formats = parse_formats(args.format)  # a bad format fails before the model loads
    reference = None
    if args.check is not None:  # read before generating: a bad path fails before anything is written
        from melodyrnn.originality import format_copy, load_collection, originality

        reference = load_collection(args.check)
    melodies = Sampler(args.model).generate(args.num_melodies, steps=args.steps, primer=primer, seed=seed, **options)
    if args.backing != "none" and not any(has_chords(m) for m in melodies):
        print(f"backing: the melodies have no chords, so they are written without a {args.backing} backing")
    written = write_melodies(melodies, args.output, format=formats, backing=args.backing, key=args.key)
    also = f" (and {', '.join(OUTPUT_FORMATS[f] for f in formats[1:])})" if len(formats) > 1 else ""
    for path, melody in zip(written, melodies):
        span = "-".join(map(pitch_to_note_name, melody.pitch_range)) if melody.pitch_range else "none"
        print(
            f"{path}{also}: {len(melody.notes())} notes, {melody.num_bars:g} bars, range {span}, "
            f"key estimate {estimate_key(melody)[0]}"
        )
    if reference is not None:
        for path, copy in zip(written, originality(melodies, reference)):
            print(f"{Path(path).name}: {format_copy(copy)}")
    print(f"seed {seed}")
    return 0


def _run_sample_metrics(args) -> int:
    """`evaluate --samples DIR [--reference DATA]`: musical metrics of the melodies in a folder of MIDI files.

    Reads `args.samples` (a folder, searched recursively) and, if `args.reference` is set, a prepared cache
    (.npz from `prepare`) or a folder of MIDI files to compare with; `args.json` prints JSON.
    """
    from melodyrnn.collection import MIDI_SUFFIXES, find_midi_files
    from melodyrnn.dataset import PreparedData
    from melodyrnn.errors import DataError
    from melodyrnn.extraction import midi_to_melodies
    from melodyrnn.metrics import format_metrics, musical_metrics
    from melodyrnn.sample_config import PRIMER_EXTRACTION

    def folder_melodies(folder):
        files = find_midi_files(folder, MIDI_SUFFIXES)  # not the MusicXML/ABC written beside them: same tunes
        melodies = []
        for path in files:
            try:
                melodies.extend(midi_to_melodies(path, extraction=PRIMER_EXTRACTION))
            except MelodyRNNError as err:
                print(f"skipped {path}: {err}", file=sys.stderr)
        if not melodies:
            raise DataError(f"no melodies in {folder} ({len(files)} MIDI files found)")
        return melodies

    reference = getattr(args, "reference", None)
    if reference is not None:
        reference = PreparedData.load(reference).melodies() if Path(reference).is_file() else folder_melodies(reference)
    metrics = musical_metrics(folder_melodies(args.samples), reference=reference)
    print(json.dumps(metrics, indent=2) if getattr(args, "json", False) else format_metrics(metrics))
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on a prepared cache or a folder of MIDI files",
        description="Train a melody model. RUN_DIR receives latest.melodyrnn and best.melodyrnn "
        "(written atomically every epoch), log.csv, train_state.json and tensorboard/. "
        "With no flags the run plans itself from the data and says why: a small collection whose "
        "encoding fits the bundled default model fine-tunes it, anything else trains a new model sized "
        "to the data; the budget counts updates (small data is repeated, freshly transposed), and the "
        "run takes at most ten minutes on a laptop CPU (early stopping may end it sooner).",
    )
    p.add_argument("data", help="a cache from `melodyrnn prepare` (.npz) or a folder of MIDI files")
    p.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="run folder")
    _add_model_flags(p)
    run = p.add_argument_group("training (default: melodyrnn.training.TrainConfig, or the run's own with --resume)")
    run.add_argument("--epochs", type=int, default=None, help="validation rounds in all (default: from --updates)")
    run.add_argument("--updates", type=int, default=None, help="optimizer updates in all (default: planned)")
    run.add_argument("--batch-size", type=int, default=None)
    run.add_argument("--learning-rate", type=float, default=None)
    run.add_argument("--warmup-updates", type=int, default=None, help="updates of linear learning-rate warm-up")
    run.add_argument("--freeze", type=int, default=None, help="lowest layers kept fixed (1 = the embedding, ...)")
    run.add_argument("--seq-len", type=int, default=None, help="steps per training window")
    run.add_argument("--patience", type=int, default=None, help="epochs without improvement before stopping; 0 = never")
    run.add_argument("--transpose", type=int, default=None, help="random transposition of windows, +- semitones")
    run.add_argument("--seed", type=int, default=None)
    run.add_argument(
        "--steps-per-epoch", type=int, default=None, help="updates between validations (default: one pass, >= 25)"
    )
    run.add_argument("--max-minutes", type=float, default=None, help="time budget of this session; 0 = none")
    run.add_argument(
        "--strategy",
        choices=["default", "mirrored", "multiworker"],
        default=None,
        help="mirrored: every local GPU; multiworker: the hosts in TF_CONFIG, each running this "
        "same command (only the chief writes RUN_DIR)",
    )
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from latest.melodyrnn")
    start.add_argument("--from", dest="from_bundle", metavar="BUNDLE", default=None, help="fine-tune this bundle")
    start.add_argument(
        "--from-scratch", action="store_true", help="train a new model even where the bundled one would be fine-tuned"
    )
    p.add_argument("--no-progress", action="store_true", help="one line per epoch instead of a progress bar")
    p.add_argument(
        "--melody-tracks", type=_melody_tracks, default=None, help=_MELODY_TRACKS_HELP.replace("%(default)s", "auto")
    )
    add_task_flag(p)
    p.set_defaults(func=_run_train)


def _add_model_flags(p) -> None:
    """`train`'s model flags: one per `ModelConfig` field; absent flags leave the field to the data's default."""
    model = p.add_argument_group("model (default: sized to the data; see melodyrnn.training.default_model_config)")
    model.add_argument("--cell", choices=["lstm", "gru", "rnn"], default=None)
    model.add_argument("--layers", type=int, default=None, dest="num_layers", help="recurrent layers")
    model.add_argument("--units", type=int, default=None, help="width of each recurrent layer")
    model.add_argument("--embedding-dim", type=int, default=None)
    model.add_argument("--dropout", type=float, default=None)
    model.add_argument(
        "--no-attention",
        action="store_const",
        const=False,
        default=None,
        dest="attention",
        help="leave out the self-attention layer",
    )
    model.add_argument("--attention-heads", type=int, default=None)
    model.add_argument("--attention-window", type=int, default=None, help="steps each step attends to")
    model.add_argument(
        "--no-relative-bias",
        action="store_const",
        const=False,
        default=None,
        dest="attention_relative_bias",
        help="attention without its learned bias per distance back",
    )
    model.add_argument(
        "--no-previous-key",
        action="store_const",
        const=False,
        default=None,
        dest="attention_previous_key",
        help="attention keys that see only their own step",
    )
    model.add_argument(
        "--layer-norm",
        action="store_const",
        const=True,
        default=None,
        help="layer normalization after each recurrent layer",
    )
    model.add_argument(
        "--residual",
        action="store_const",
        const=True,
        default=None,
        help="residual connections around the recurrent layers after the first",
    )
    model.add_argument(
        "--lookback",
        action="store_const",
        const=True,
        default=None,
        help="MelodyRNN's lookback features (events one and two bars back)",
    )


def _run_train(args) -> int:
    if args.task == "harmonize":
        return run_train_harmonizer(args)
    from melodyrnn.training import train

    model_keys = (
        "cell",
        "num_layers",
        "units",
        "embedding_dim",
        "dropout",
        "attention",
        "attention_heads",
        "attention_window",
        "attention_relative_bias",
        "attention_previous_key",
        "layer_norm",
        "residual",
        "lookback",
    )
    model_config = {k: getattr(args, k) for k in model_keys if getattr(args, k) is not None}
    train_keys = (
        "epochs",
        "updates",
        "batch_size",
        "learning_rate",
        "warmup_updates",
        "freeze",
        "seq_len",
        "patience",
        "transpose",
        "seed",
        "steps_per_epoch",
        "max_minutes",
        "strategy",
    )
    train_config = {k: getattr(args, k) for k in train_keys if getattr(args, k) is not None}
    for key in ("patience", "max_minutes"):  # 0 switches them off
        if train_config.get(key) == 0:
            train_config[key] = None
    if model_config and (args.resume or args.from_bundle):
        flags = ", ".join("--" + k.replace("_", "-") for k in model_config)
        raise MelodyRNNError(f"model flags ({flags}) cannot change the model of a resumed or fine-tuned run")
    if args.melody_tracks is not None and args.resume:
        raise MelodyRNNError("--melody-tracks cannot change the data of a resumed run")
    if args.melody_tracks is not None and not Path(args.data).is_dir():
        raise MelodyRNNError("--melody-tracks applies to a folder of MIDI files; a prepared cache keeps its own tracks")
    if args.melody_tracks is not None:
        # The run's cache, made with the chosen tracks; train() reuses a run folder's cache of the same folder.
        from melodyrnn.dataset import prepare
        from melodyrnn.extraction import ExtractionConfig

        extraction = ExtractionConfig(melody_tracks=args.melody_tracks)
        Path(args.output).mkdir(parents=True, exist_ok=True)
        prepare(args.data, Path(args.output) / "data.npz", extraction=extraction, progress=not args.no_progress)
    result = train(
        args.data,
        args.output,
        model_config or None,
        train_config or None,
        resume=args.resume,
        from_bundle=args.from_bundle,
        from_scratch=args.from_scratch,
        progress=not args.no_progress,
    )
    print(result.summary())
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a model on whole melodies (NLL per step, accuracy)",
        description="Score BUNDLE on every melody of DATA from its first step: NLL per step "
        "(nats), perplexity, accuracy and event accuracy. DATA is a prepared cache "
        "(its validation split by default) or a folder of MIDI files (every melody). "
        "With --samples, print musical metrics of a folder of generated melodies.",
    )
    p.add_argument("bundle", nargs="?", help="a bundle file (.melodyrnn)")
    p.add_argument("data", nargs="?", help="a cache from `melodyrnn prepare` (.npz) or a folder of MIDI files")
    p.add_argument(
        "--split",
        choices=["validation", "train", "all"],
        default="validation",
        help="which melodies of a cache (default: %(default)s)",
    )
    p.add_argument("--samples", default=None, metavar="DIR", help="musical metrics of the MIDI files in DIR")
    p.add_argument("--reference", default=None, metavar="DATA", help="with --samples: data to compare with")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    if args.samples is not None:
        return _run_sample_metrics(args)
    if args.bundle is None or args.data is None:
        raise MelodyRNNError("`evaluate` needs BUNDLE and DATA (or --samples DIR)")
    from melodyrnn.evaluation import evaluate, format_metrics

    metrics = evaluate(args.bundle, args.data, split=args.split)
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from melodyrnn import __version__

    parser = argparse.ArgumentParser(prog="melodyrnn", description="Learn melodies from MIDI files and write new ones.")
    parser.add_argument("--version", action="version", version=f"melodyrnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prepare(sub)
    _add_info(sub)
    _add_generate(sub)
    add_infill(sub)
    _add_train(sub)
    add_harmonize(sub)
    _add_evaluate(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `melodyrnn` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MelodyRNNError as err:
        print(f"melodyrnn {args.command}: error: {err}".splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"melodyrnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `melodyrnn prepare ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141
    except OSError as err:  # an output path that is a folder, read-only, or on a full disk
        where = f" `{err.filename}`" if err.filename else ""
        print(
            f"melodyrnn {args.command}: error: cannot use{where}: {err.strerror or err}".splitlines()[0],
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
