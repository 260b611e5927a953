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

from melodyrnn.cli_harmonize import add_harmonize  # noqa: E402
from melodyrnn.cli_infill import add_infill  # noqa: E402
from melodyrnn.cli_train import MELODY_TRACKS_HELP, add_train, melody_tracks  # noqa: E402
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
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores, for many files)")
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
    p.add_argument("--melody-tracks", type=melody_tracks, default=ext.melody_tracks, help=MELODY_TRACKS_HELP)
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
    "chord_guidance",
    "pickup",
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
    p.add_argument(
        "--chord-guidance",
        type=float,
        help=f"how strongly a chord-aware model follows --chords: 1 = as trained, higher = more chord tones, "
        f"0 = ignore them (default: {defaults.chord_guidance:g})",
    )
    p.add_argument(
        "--pickup",
        type=float,
        metavar="CHANCE",
        help="the chance that a melody without a primer opens with a pickup (silence, then notes before the first "
        "bar line), 0-1 (default: as often as the model's training melodies did)",
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
        from melodyrnn.copies import format_copy, load_collection, originality

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
    add_train(sub)
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
