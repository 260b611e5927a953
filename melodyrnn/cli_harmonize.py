"""The command line's harmonizer parts: `melodyrnn harmonize IN -o OUT` and `melodyrnn train DATA --task harmonize`.

Parse and dispatch only; `melodyrnn.cli` adds these to its parser.
"""

from __future__ import annotations

from pathlib import Path

from melodyrnn.errors import MelodyRNNError

__all__ = ["add_harmonize", "add_task_flag", "run_train_harmonizer"]

TASKS = ("melody", "harmonize")


def add_harmonize(sub) -> None:
    p = sub.add_parser(
        "harmonize",
        help="give a melody chords (one per beat or half bar) and write it with a chord track",
        description="Read a MIDI, MusicXML or ABC file, give each of its melodies chords with the harmonizer "
        "(which reads the whole melody, both ways), and write each melody with its chords as a block-chord "
        "track. A file with several melodies gives OUT_1.mid, OUT_2.mid, ...",
    )
    p.add_argument("input", help="MIDI (.mid), MusicXML or ABC file")
    p.add_argument("-o", "--output", required=True, help="MIDI file to write")
    p.add_argument("--model", default=None, help="harmonizer bundle (default: the one bundled with melodyrnn)")
    p.add_argument("--temperature", type=float, default=0.0, help="0: the likeliest chords; > 0: drawn (default 0)")
    p.add_argument("--key", default=None, help="only the diatonic chords of this key, e.g. 'G major'")
    p.add_argument("--vocabulary", default=None, help="only these qualities, e.g. maj,min (of maj,min,7,min7,dim)")
    p.add_argument("--per", choices=["beat", "half_bar"], default="beat", help="one chord per (default: %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="seed of the draws with --temperature > 0")
    p.add_argument(
        "--format",
        default="mid",
        help="files per melody, comma-separated: mid, musicxml, abc (lead sheets with chords) (default: %(default)s)",
    )
    p.add_argument(
        "--backing",
        default="chords",
        choices=("chords", "block", "arpeggio", "waltz"),
        help="how the MIDI file plays the chords: a block-chord track, or a backing with a bass line (default: chords)",
    )
    p.set_defaults(func=run_harmonize)


def run_harmonize(args) -> int:
    from melodyrnn.encoding import melody_to_midi
    from melodyrnn.harmonize import harmonize
    from melodyrnn.notation import parse_formats, write_melody

    formats = parse_formats(args.format)  # a bad format fails before the model loads
    melodies = harmonize(
        args.input,
        args.model,
        temperature=args.temperature,
        key=args.key,
        vocabulary=args.vocabulary,
        per=args.per,
        seed=args.seed,
    )
    out = Path(args.output)
    if out.suffix.lower() not in (".mid", ".midi"):
        raise MelodyRNNError(f"`--output` must be a .mid file, got {args.output!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    for i, melody in enumerate(melodies, 1):
        path = out if len(melodies) == 1 else out.with_name(f"{out.stem}_{i}{out.suffix}")
        backing = "none" if args.backing == "chords" else args.backing
        others = [f for f in formats if f != "mid"]
        if others:
            write_melody(melody, path.with_suffix(""), others, backing=backing, title=path.stem, key=args.key)
        if "mid" in formats and backing == "none":
            melody_to_midi(melody, path, chords=True)
        elif "mid" in formats:
            write_melody(melody, path.with_suffix(""), ["mid"], backing=backing)
        changes = " ".join(label for _, label in melody.chords[:8])
        print(f"{path}: {len(melody.chords)} chord changes: {changes}{' ...' if len(melody.chords) > 8 else ''}")
    return 0


def add_task_flag(p) -> None:
    """`train`'s --task flag."""
    p.add_argument(
        "--task",
        choices=TASKS,
        default="melody",
        help="melody: a melody model; harmonize: a harmonizer, from a collection whose melodies have chords "
        "(uses --units, --updates, --batch-size, --learning-rate, --seed; default: %(default)s)",
    )


def run_train_harmonizer(args) -> int:
    """`melodyrnn train DATA --task harmonize -o RUN`: the flags a harmonizer has; others are refused."""
    from melodyrnn.harmonizer_training import train_harmonizer

    taken = ("units", "updates", "batch_size", "learning_rate", "seed")
    ignored = ("resume", "from_bundle", "from_scratch", "melody_tracks", "cell", "num_layers", "epochs", "freeze")
    given = [k for k in ignored if getattr(args, k, None) not in (None, False)]
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise MelodyRNNError(f"--task harmonize does not take {flags}")
    options = {k: getattr(args, k) for k in taken if getattr(args, k, None) is not None}
    harmonizer = train_harmonizer(args.data, args.output, progress=not args.no_progress, **options)
    meta = harmonizer.metadata
    print(
        f"harmonizer: {Path(args.output) / 'best.melodyrnn'} (update {meta.get('best_update')}: validation "
        f"NLL {meta.get('val_nll', float('nan')):.3f} per beat, accuracy {meta.get('val_accuracy', float('nan')):.3f})"
    )
    return 0
