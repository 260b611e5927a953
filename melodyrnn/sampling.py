"""Melody generation: `Sampler(bundle).generate(...)` and the one-liner `melodyrnn.generate(...)`.

Start at `Sampler.generate`: it checks the request (`SampleConfig`, the primer: `melodyrnn.sample_config`), turns
it into tensors and runs ONE compiled loop from `melodyrnn.decoding`, batched over melodies. Controls act on the
logits inside the loop, in this order: key/scale and pitch-range masks, repetition penalty and cap → temperature
(0 = argmax, exactly) → top-k → top-p → a seeded draw. Beam search is a second compiled loop of the same shape.
A `Sampler` also rewrites bars between kept ones (`infill`, `score_infill`, `vary`: `melodyrnn.gaps`); the
one-liners `melodyrnn.infill(...)`, `score_infill(...)` and `vary(...)` load the model first.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from melodyrnn.backing import check_backing, melody_to_midi_with_backing
from melodyrnn.bundle import Bundle, load
from melodyrnn.conditioning import step_conditions
from melodyrnn.configs import config_from_dict
from melodyrnn.decoding import decode
from melodyrnn.encoding import Melody, melody_to_tokens, tokens_to_melody
from melodyrnn.errors import MelodyRNNError, OutOfRangeError
from melodyrnn.gaps import DEFAULT_CANDIDATES, GapFilling, InfillScore
from melodyrnn.infill_model import infill_model_for
from melodyrnn.notation import parse_formats, write_melody
from melodyrnn.sample_config import MAX_STEPS, MAX_WORK, SampleConfig, progression_to_chords, read_primer
from melodyrnn.theory import check_steps_per_bar, steps_per_bar

__all__ = ["Sampler", "generate", "infill", "score_infill", "vary", "write_melodies"]


# ----------------------------------------------------------------------------------------------------------
# The sampler


class Sampler(GapFilling):
    """Generates melodies from a model bundle, and new bars between kept ones (`infill`, `score_infill`, `vary`,
    from `melodyrnn.gaps.GapFilling`).

    Args:
        bundle: a `Bundle`, a path to a bundle file, or None for the default model (`melodyrnn.load()`).
        jit_compile: compile the loop with XLA (the fast path). If XLA cannot compile it, the sampler warns and
            falls back to a plain `tf.function`.

    Raises:
        BundleError: the bundle cannot be loaded.

    Example:
        >>> sampler = Sampler("folk.melodyrnn")
        >>> melodies = sampler.generate(4, bars=16, temperature=0.9, top_p=0.95, key="D minor",
        ...                             primer="D4 F4 A4", qpm=110, program=73, seed=7)
        >>> melody_to_midi(melodies[0], "out.mid")
        >>> versions = sampler.infill(melodies[0], 4, 8, n=4, temperature=0.9, seed=1)  # new bars 4-7
    """

    def __init__(self, bundle: Bundle | str | os.PathLike | None = None, *, jit_compile: bool = True):
        if bundle is None or isinstance(bundle, (str, os.PathLike)):
            bundle = load(bundle, compile=False)
        if not isinstance(bundle, Bundle):
            raise MelodyRNNError(f"`bundle` must be a Bundle, a bundle path or None, got {type(bundle).__name__}")
        self.bundle = bundle
        self.model = bundle.model
        self.encoding = bundle.encoding
        self.jit_compile = jit_compile
        self._compiled: dict[tuple, Any] = {}  # one compiled loop per shape of request
        #: The share of the model's training melodies that open with a pickup (0 when its bundle does not say).
        self.pickup_share = float((bundle.metadata.get("data") or {}).get("pickup_share", 0.0))

    # -- public ------------------------------------------------------------------------------------------------

    def generate(self, num_melodies: int = 1, *, primer=None, steps: int | None = None, **options) -> list[Melody]:
        """Generates `num_melodies` melodies in one batch.

        Without a primer, step 0 is a NOTE_ON chosen under all the controls from the model's prediction after
        one NO_EVENT input on a throwaway state (the argmax NOTE_ON when greedy); the melody's own state then
        starts at step 0, so bar positions line up with what the model saw in training. Beam search ranks
        hypotheses by their summed log-probability under the constrained distribution (masks and repetition
        control, temperature 1); temperature/top-k/top-p only shape which branches are drawn.

        Args:
            num_melodies: how many, in one batch.
            primer: see `primer_to_melody`. Its events open every melody unchanged (even notes outside `key`);
                its tempo, time signature, program and velocity are kept unless overridden.
            steps: `SampleConfig.num_steps`.
            **options: any other `SampleConfig` field (`bars`, `temperature`, `top_k`, `top_p`, `key`,
                `min_pitch`, `max_pitch`, `repetition_penalty`, `max_repeats`, `beam_size`, `branch_factor`,
                `qpm`, `time_signature`, `program`, `velocity`, `seed`, `chords`, `chord_guidance`, `pickup`), with
                its defaults there; `top_k` or `top_p` None means off. A meter-aware model
                (`ModelConfig.condition_meter`) writes rhythm in `time_signature` (or the primer's); a chord-aware
                one follows `chords` ("Am F C G", "Am F | C G", "Am:2 F:2" or ``(beat, chord)`` pairs:
                `melodyrnn.sample_config.parse_progression`), as closely as `chord_guidance` says, and without
                them generates over "no chord". A model without chord conditioning ignores `chords` for its notes,
                but its melodies still carry them, so backing tracks and lead sheets can play and print them.

        Returns:
            `num_melodies` `Melody` objects, each `bars`/`steps` long (primer included), ready for
            `melody_to_midi`; their `chords` are the primer's own over its steps, then the progression asked for.

        Raises:
            MelodyRNNError: an unknown option or an invalid value (see `SampleConfig`), a primer longer than the
                requested length, a primer pitch outside the model's vocabulary, a key/range that leaves no
                pitch to play, a bad chord (`ChordLabelError`, named) or progression, or (a lookback model) a
                time signature whose bar is not a whole number of steps up to the model's `max_steps_per_bar`.
                A lookback model counts bars of `time_signature` or of the primer's own (a Melody or MIDI file);
                with neither, its `config.steps_per_bar`.
        """
        for off in ("top_k", "top_p"):
            if off in options and options[off] is None:
                del options[off]
        if steps is not None:
            options["num_steps"] = steps
        config = config_from_dict(SampleConfig, {"num_melodies": num_melodies, **options}, "sampling option")
        return self.generate_from_config(config, primer=primer)

    def generate_from_config(self, config: SampleConfig, primer=None) -> list[Melody]:
        """`generate` with a ready `SampleConfig`."""
        if not isinstance(config, SampleConfig):
            raise MelodyRNNError(f"`config` must be a SampleConfig, got {type(config).__name__}")
        if config.branch_factor > self.encoding.vocab_size:
            raise MelodyRNNError(
                f"`branch_factor` must be at most the model's vocabulary of {self.encoding.vocab_size} events, "
                f"got {config.branch_factor}"
            )
        enc = self.encoding
        primer_melody, own_meter = read_primer(primer, enc)
        metadata = self._output_metadata(config, primer_melody)
        bar_steps = steps_per_bar(enc.steps_per_quarter, *metadata["time_signatures"][0][1:])
        num_steps = self._num_steps(config, bar_steps, primer_melody)
        model_config = self.model.config
        # A lookback model counts bars of a time signature that was asked for or came with the primer, as
        # training counted each melody's; without one (4/4 by default) it counts its own, as for plain ids.
        bar = model_config.steps_per_bar
        if model_config.lookback and (config.time_signature is not None or own_meter):
            bar = int(check_steps_per_bar(bar_steps, model_config.max_steps_per_bar))
        primer_tokens = np.zeros(num_steps, np.int32)
        primer_length = 0
        if primer_melody is not None:
            try:
                tokens = melody_to_tokens(primer_melody, enc)
            except OutOfRangeError as err:
                raise OutOfRangeError(f"`primer`: {err}") from err
            primer_length = tokens.size
            primer_tokens[:primer_length] = tokens
        chords = self._chords(config, metadata["time_signatures"][0][1:], primer_melody, num_steps)
        seed = config.seed if config.seed is not None else secrets.randbits(31)
        request = {
            "primer": primer_tokens,
            "primer_length": primer_length,
            "seed": seed % (1 << 31),
            "steps_per_bar": bar,
            # every step's meter and chords, computed once here: the compiled loop indexes them by step
            "conditions": step_conditions(num_steps, enc.steps_per_quarter, metadata["time_signatures"], chords),
            # the chance of opening with a pickup; a melody of one step is its note
            "pickup": (self.pickup_share if config.pickup is None else config.pickup) if num_steps > 1 else 0.0,
        }
        chords_given = model_config.condition_chords and any(label != "N" for _, label in chords)
        ids = decode(
            self._compiled, self.model, config, enc, num_steps, request, chords_given=chords_given,
            jit_compile=self.jit_compile,
        )  # fmt: skip
        return [tokens_to_melody(row, enc, source="generated", chords=chords, **metadata) for row in ids]

    # -- helpers -----------------------------------------------------------------------------------------------

    def _output_metadata(self, config: SampleConfig, primer: Melody | None) -> dict:
        qpm = config.qpm
        tempos = ((0, float(qpm)),) if qpm is not None else (primer.tempos if primer is not None else ((0, 120.0),))
        ts = config.time_signature
        time_signatures = (
            ((0, *ts),) if ts is not None else (primer.time_signatures if primer is not None else ((0, 4, 4),))
        )
        program = config.program if config.program is not None else (primer.program if primer is not None else 0)
        velocity = config.velocity if config.velocity is not None else (primer.velocity if primer is not None else 100)
        return {"tempos": tempos, "time_signatures": time_signatures, "program": program, "velocity": velocity}

    def _chords(self, config: SampleConfig, meter, primer: Melody | None, num_steps: int) -> tuple:
        """The melodies' ``(step, label)`` chords: the primer's own over its steps (where it has any), then the
        progression asked for, laid from step 0 and restated where the primer ends."""
        spq = self.encoding.steps_per_quarter
        asked = progression_to_chords(config.chords, meter, spq, num_steps) if config.chords is not None else ()
        if primer is None or not primer.chords:
            return asked
        end = len(primer)
        later = [(s, label) for s, label in asked if s > end]
        at_end = [label for s, label in asked if s <= end][-1:]  # the asked chord in force where the primer ends
        tail = [(end, at_end[0])] if at_end and end < num_steps and at_end[0] != primer.chords[-1][1] else []
        return tuple(primer.chords) + tuple(tail) + tuple(later)

    def _num_steps(self, config: SampleConfig, steps_per_bar: float, primer: Melody | None) -> int:
        if config.num_steps is not None:
            num_steps = config.num_steps
        else:
            bars = config.bars if config.bars is not None else config.default_bars
            num_steps = max(1, int(round(bars * steps_per_bar)))
        rows = config.num_melodies * config.beam_size
        if num_steps > MAX_STEPS or rows * num_steps > MAX_WORK:
            raise MelodyRNNError(
                f"the request is too long: {num_steps:,} steps per melody (at most {MAX_STEPS:,}) for {rows} "
                f"melodies × beams (at most {MAX_WORK:,} steps in all per call); ask for fewer `bars` or melodies"
            )
        if primer is not None and len(primer) > num_steps:
            raise MelodyRNNError(
                f"the requested length ({num_steps} steps) must be at least the primer's "
                f"({len(primer)} steps); ask for more `bars` or `steps`"
            )
        return num_steps


# ----------------------------------------------------------------------------------------------------------
# Writing and the one-liner


def write_melodies(
    melodies: Sequence[Melody],
    output: str | os.PathLike,
    prefix: str = "melody",
    *,
    format: str | Sequence[str] = "mid",
    backing: str = "none",
    key: str | None = None,
) -> list[Path]:
    """Writes melodies as MIDI files (and MusicXML / ABC lead sheets) and returns their paths.

    Args:
        output: a folder (created if needed), which receives `{prefix}_001.mid`, ...; or a path ending in
            ".mid"/".midi", used as is for one melody and as `name_001.mid`, ... for several.
        format: "mid", "musicxml", "abc" or several ("mid,musicxml,abc"; see `melodyrnn.notation.parse_formats`):
            each melody gets one file per format, named alike but for the suffix.
        backing: "none", "block", "arpeggio" or "waltz": the MIDI file plays the melody's chords on a second
            instrument with a bass line (`melodyrnn.backing`); a melody without chords is written alone.
        key: the lead sheets' key ("D minor"); None estimates each melody's.

    Returns:
        One path per melody: its file of the first format.

    Raises:
        NotationError: an unknown format or backing, or a melody whose values need tuplets.
    """
    formats = parse_formats(format)
    check_backing(backing)
    output = Path(output)
    if output.suffix.lower() in (".mid", ".midi"):
        output.parent.mkdir(parents=True, exist_ok=True)
        paths = (
            [output]
            if len(melodies) == 1
            else [output.with_name(f"{output.stem}_{i + 1:03d}{output.suffix}") for i in range(len(melodies))]
        )
    else:
        output.mkdir(parents=True, exist_ok=True)
        paths = [output / f"{prefix}_{i + 1:03d}.mid" for i in range(len(melodies))]
    firsts = []
    for i, (melody, path) in enumerate(zip(melodies, paths)):
        others = [f for f in formats if f != "mid"]
        written = (
            write_melody(melody, path.with_suffix(""), others, title=f"{prefix.title()} {i + 1}", key=key)
            if others
            else []
        )
        if "mid" in formats:
            melody_to_midi_with_backing(melody, path, backing=backing)
            written.insert(formats.index("mid"), path)
        firsts.append(written[0])
    return firsts


_DEFAULT_SAMPLERS: dict[str, Sampler] = {}


def _sampler_for(model) -> Sampler:
    """A `Sampler` for `model`: a Sampler, a Bundle, a bundle path, or None (the bundled model); a path is loaded
    once per process."""
    if isinstance(model, Sampler):
        return model
    if isinstance(model, Bundle):
        return Sampler(model)
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise MelodyRNNError(f"`model` must be a Sampler, a Bundle, a bundle path or None, got {type(model).__name__}")
    cache_key = os.fspath(model) if model is not None else ""
    if cache_key not in _DEFAULT_SAMPLERS:
        _DEFAULT_SAMPLERS[cache_key] = Sampler(model)
    return _DEFAULT_SAMPLERS[cache_key]


def generate(
    num_melodies: int = 1,
    *,
    output: str | os.PathLike | None = None,
    model: Sampler | Bundle | str | os.PathLike | None = None,
    format: str | Sequence[str] = "mid",
    backing: str = "none",
    **kwargs,
) -> list[Melody]:
    """The one-liner: generate melodies with the default model (or `model`) and optionally write them.

    Args:
        num_melodies: how many.
        output: if given, a folder or a ".mid" path the melodies are written to (see `write_melodies`).
        format: the files written to `output`: "mid", "musicxml", "abc" or several ("mid,musicxml,abc").
        backing: "none", "block", "arpeggio" or "waltz": the chords' backing in the MIDI files (see
            `write_melodies`).
        model: a `Sampler`, a `Bundle` or a bundle path; None uses the bundled default model (a path loads once
            per process).
        **kwargs: `Sampler.generate`'s arguments (bars, primer, temperature, key, seed, ...).

    Returns:
        The melodies.

    Example:
        >>> melodyrnn.generate(4, bars=16, key="D minor", primer="D4 F4 A4", seed=7, output="out/")
    """
    sampler = _sampler_for(model)
    parse_formats(format)  # a bad format or backing fails before the model runs
    check_backing(backing)
    melodies = sampler.generate(num_melodies, **kwargs)
    if output is not None:
        write_melodies(melodies, output, format=format, backing=backing, key=kwargs.get("key"))
    return melodies


def infill(
    melody: Melody, start_bar: int, end_bar: int, n: int = 1, model=None, *, candidates=DEFAULT_CANDIDATES, **sampling
) -> list[Melody]:
    """`infill` on `model`: None (the shipped infill model, `melodyrnn.infill_model`; without one, the bundled
    melody model), an infill bundle's path, or a melody model (a `Sampler`, a `Bundle`, a bundle path), whose gaps
    are resampled by the suffix's likelihood (`Sampler.infill`).

    Example:
        >>> versions = melodyrnn.infill(melody, 4, 8, n=4, temperature=0.9, seed=1)  # bars 4-7 rewritten
    """
    return _gap_filler(model).infill(melody, start_bar, end_bar, n, candidates=candidates, **sampling)


def score_infill(
    melody: Melody,
    start_bar: int,
    end_bar: int,
    model=None,
    samples: int = DEFAULT_CANDIDATES,
    *,
    seed=None,
    adapt: int = 0,
) -> InfillScore:
    """`score_infill` on `model`, chosen as for `infill`: the infill model's score is exact, a melody model's an
    estimate (`Sampler.score_infill`, which can first adapt the model to the kept bars: `adapt`)."""
    return _gap_filler(model).score_infill(melody, start_bar, end_bar, samples, seed=seed, adapt=adapt)


def vary(melody: Melody, every: int | str = 2, n: int = 1, model=None, **options) -> list[Melody]:
    """`vary` on `model`, chosen as for `infill`."""
    return _gap_filler(model).vary(melody, every, n, **options)


def _gap_filler(model) -> GapFilling:
    """The trained infill model `model` names (None: the shipped one, if any), else a melody model's `Sampler`."""
    return infill_model_for(model) or _sampler_for(model)
