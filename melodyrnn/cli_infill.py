"""The command line's infill: `melodyrnn infill IN --bars 4-8 -n 4 -o OUT` (see `Sampler.infill`).

Parse and dispatch only; `melodyrnn.cli` adds it to its parser.
"""

from __future__ import annotations

from melodyrnn.errors import MelodyRNNError

__all__ = ["add_infill", "run_infill"]


def add_infill(sub) -> None:
    """Adds `melodyrnn infill IN --bars START-END -n N -o OUT` to the command line's subparsers."""
    p = sub.add_parser(
        "infill",
        help="rewrite some bars of a melody, keeping the others",
        description="Write N versions of a MIDI melody in which bars START <= bar < END (0-based) are new and "
        "every other step is kept exactly; the model weighs each new gap by what follows it.",
    )
    p.add_argument("input", help="MIDI file (its first melody is used)")
    p.add_argument("--bars", required=True, help="the gap START-END, 0-based, end exclusive (e.g. 4-8)")
    p.add_argument("-n", "--num-versions", type=int, default=1, help="versions to write (default: %(default)s)")
    p.add_argument("--candidates", type=int, help="a melody model's gaps drawn per version (default: 8)")
    p.add_argument("--model", default=None, help="infill or melody bundle (default: the bundled infill model)")
    p.add_argument(
        "--adapt",
        type=int,
        help="a melody model's gradient steps on the kept bars first, for a "
        "melody unlike its training data (0 = off, the default; 10 measured; ~15 ms a step)",
    )
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--key", help="key and scale for the new bars, e.g. 'D minor'")
    p.add_argument("--seed", type=int, default=None, help="for reproducible versions (default: a fresh one, printed)")
    p.add_argument("-o", "--output", default="infilled", help="folder for the files (default: %(default)s)")
    p.add_argument("--format", default="mid", help="mid, musicxml, abc, comma-separated (default: %(default)s)")
    p.set_defaults(func=run_infill)


def run_infill(args) -> int:
    """Runs `melodyrnn infill`; returns the exit status (errors reach `melodyrnn.cli.main`)."""
    import secrets

    from melodyrnn.extraction import midi_to_melodies
    from melodyrnn.infill_model import infill_model_for
    from melodyrnn.notation import parse_formats
    from melodyrnn.sample_config import PRIMER_EXTRACTION
    from melodyrnn.sampling import Sampler, write_melodies

    start, sep, end = args.bars.partition("-")
    if not (sep and start.strip().isdigit() and end.strip().isdigit()):
        raise MelodyRNNError(f"`--bars` must be START-END bar numbers such as 4-8, got {args.bars!r}")
    formats = parse_formats(args.format)
    sampler = infill_model_for(args.model) or Sampler(args.model)  # an infill bundle, or a melody model's
    melody = midi_to_melodies(args.input, sampler.encoding, PRIMER_EXTRACTION)[0]  # the first, however short
    seed = args.seed if args.seed is not None else secrets.randbits(31)
    options = {k: getattr(args, k) for k in ("candidates", "adapt", "temperature", "top_k", "top_p", "key")}
    options = {k: v for k, v in options.items() if v is not None}
    versions = sampler.infill(melody, int(start), int(end), args.num_versions, seed=seed, **options)
    for path in write_melodies(versions, args.output, prefix="infill", format=formats, key=args.key):
        print(f"{path}: bars {int(start)}-{int(end)} rewritten, {len(melody)} steps")
    print(f"seed {seed}")
    return 0
