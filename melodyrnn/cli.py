"""The `melodyrnn` command line: parse arguments and dispatch to the library, nothing else.

Each subcommand maps its flags one-to-one onto a config dataclass's fields. A user's bad input prints
one line to stderr and exits with status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from melodyrnn.errors import MelodyRNNError


def _add_prepare(sub) -> None:
    from melodyrnn.encoding import EncodingConfig, ExtractionConfig

    enc, ext = EncodingConfig(), ExtractionConfig()
    p = sub.add_parser("prepare", help="turn a folder of MIDI files into a training cache",
                       description="Walk DIR for .mid/.midi/.kar files, extract monophonic melodies, encode them "
                                   "and write a cache (.npz) plus a report (.report.json).")
    p.add_argument("dir", help="folder searched recursively for MIDI files")
    p.add_argument("-o", "--output", default="data.npz", help="cache file to write (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--strict", action="store_true", help="stop at the first file that cannot be used")
    p.add_argument("--validation-fraction", type=float, default=0.1, help="share of files held out (default: %(default)s)")
    p.add_argument("--steps-per-quarter", type=int, default=enc.steps_per_quarter)
    p.add_argument("--min-pitch", type=int, default=enc.min_pitch)
    p.add_argument("--max-pitch", type=int, default=enc.max_pitch)
    p.add_argument("--polyphony", choices=["highest", "drop"], default=ext.polyphony)
    p.add_argument("--gap-bars", type=float, default=ext.gap_bars)
    p.add_argument("--min-bars", type=float, default=ext.min_bars)
    p.add_argument("--min-unique-pitches", type=int, default=ext.min_unique_pitches)
    p.add_argument("--max-steps", type=int, default=ext.max_steps)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_run_prepare)


def _run_prepare(args) -> int:
    from melodyrnn.dataset import prepare
    from melodyrnn.encoding import EncodingConfig, ExtractionConfig

    config = EncodingConfig(args.steps_per_quarter, args.min_pitch, args.max_pitch)
    extraction = ExtractionConfig(args.polyphony, args.gap_bars, args.min_bars, args.min_unique_pitches, args.max_steps)
    data = prepare(args.dir, args.output, config=config, extraction=extraction,
                   validation_fraction=args.validation_fraction, workers=args.workers, strict=args.strict,
                   progress=False if args.no_progress else None)
    if args.json:
        print(json.dumps(data.report.to_dict(), indent=2))
    else:
        print(data.report.format())
        print(f"wrote {args.output} and {Path(args.output).with_suffix('').name}.report.json")
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


def build_parser() -> argparse.ArgumentParser:
    from melodyrnn import __version__

    parser = argparse.ArgumentParser(prog="melodyrnn", description="Learn melodies from MIDI files and write new ones.")
    parser.add_argument("--version", action="version", version=f"melodyrnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prepare(sub)
    _add_info(sub)
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


if __name__ == "__main__":
    sys.exit(main())
