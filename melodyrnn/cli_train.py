"""The command line's training parts: `melodyrnn train` (its model, run and start flags) and `--melody-tracks`.

Parse and dispatch only; `melodyrnn.cli` adds `train` to its parser (and takes `--melody-tracks` for `prepare`).
"""

from __future__ import annotations

from pathlib import Path

from melodyrnn.cli_harmonize import add_task_flag, run_train_harmonizer
from melodyrnn.errors import MelodyRNNError

__all__ = ["MELODY_TRACKS_HELP", "add_train", "melody_tracks"]


MELODY_TRACKS_HELP = (
    "which tracks melodies come from: auto (the melody track(s), chosen per file), all (every non-drum track), "
    "a track name, or a track index (default: %(default)s)"
)


def melody_tracks(value: str) -> str | int:
    """`--melody-tracks`: a number is a track index, anything else a mode or a track name."""
    return int(value) if value.strip().isdigit() else value


def add_train(sub) -> None:
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
    run.add_argument("--schedule", choices=["constant", "cosine"], default=None, help="learning rate after warm-up")
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
        "--melody-tracks", type=melody_tracks, default=None, help=MELODY_TRACKS_HELP.replace("%(default)s", "auto")
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
    model.add_argument(
        "--condition-meter",
        action="store_const",
        const=True,
        default=None,
        help="the model reads where each step falls in the bar, and the meter (and follows --time-signature)",
    )
    model.add_argument(
        "--condition-chords",
        action="store_const",
        const=True,
        default=None,
        help="the model reads the chord at each step and how far the next change is (and follows --chords)",
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
        "condition_meter",
        "condition_chords",
    )
    model_config = {k: getattr(args, k) for k in model_keys if getattr(args, k) is not None}
    train_keys = (
        "epochs",
        "updates",
        "batch_size",
        "learning_rate",
        "warmup_updates",
        "freeze",
        "schedule",
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
    # --from with only condition flags is a warm start (melodyrnn.warm_start): the bundle, reading them too
    changed = set(model_config) - ({"condition_meter", "condition_chords"} if args.from_bundle else set())
    if changed and (args.resume or args.from_bundle):
        flags = ", ".join("--" + k.replace("_", "-") for k in sorted(changed))
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
