"""Melody generation: `Sampler(bundle).generate(...)` and the one-liner `melodyrnn.generate(...)`.

Start at `Sampler.generate`. Every call runs ONE compiled `tf.function(jit_compile=True)` that feeds the primer
through `model.step` (teacher forcing) and then draws the remaining steps, carrying the model's state
(recurrent states, attention cache, lookback history) and batched over melodies; the network never re-runs over
the prefix. Controls act on the logits inside the loop, in this order: key/scale and pitch-range masks,
repetition penalty and cap → temperature (0 = argmax, exactly) → top-k → top-p → a seeded draw.
Beam search is a second compiled loop of the same shape that reorders the state with `tf.gather`.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import tensorflow as tf

from melodyrnn.bundle import Bundle, load
from melodyrnn.configs import Config, config_from_dict, is_int, is_real
from melodyrnn.encoding import (
    NO_EVENT_ID,
    NUM_SPECIAL,
    EncodingConfig,
    ExtractionConfig,
    Melody,
    melody_to_midi,
    melody_to_tokens,
    midi_to_melodies,
    tokens_to_melody,
)
from melodyrnn.errors import MelodyRNNError, OutOfRangeError
from melodyrnn.theory import (
    check_steps_per_bar,
    check_time_signature,
    key_pitch_classes,
    note_name_to_pitch,
    steps_per_bar,
)

__all__ = ["SampleConfig", "Sampler", "generate", "primer_to_melody", "write_melodies"]

#: A primer read from MIDI goes through the training extraction, with the length and variety filters off
#: (a primer may be one bar of one note).
PRIMER_EXTRACTION = ExtractionConfig(min_bars=0, min_unique_pitches=1)
_MAX_MELODIES = 4096
_NEVER = 1 << 30  # "no cap" for max_repeats inside the compiled loop


@dataclass(frozen=True)
class SampleConfig(Config):
    """Everything that controls one `Sampler.generate` call. Validated on construction.

    Attributes:
        num_melodies: melodies to generate, in one batch.
        num_steps: total length in steps, primer included; or
        bars: total length in bars of the output's time signature, primer included. Neither: `default_bars`.
        temperature: divides the logits; 0 takes the argmax (greedy), exactly.
        top_k: keep the k most likely events at each step; 0 keeps all.
        top_p: keep the smallest set of most likely events whose probability reaches top_p (nucleus); 1 keeps all.
        beam_size: hypotheses kept per melody; > 1 (or branch_factor > 1) runs beam search.
        branch_factor: candidate events each hypothesis expands into per step: the most likely ones when
            temperature is 0, otherwise drawn without replacement (after temperature, top-k, top-p).
        key: "D minor", "F# dorian", "Bb major", "A blues", ...: NOTE_ONs outside the scale are masked
            (scales: see `melodyrnn.theory.SCALES`).
        min_pitch, max_pitch: NOTE_ONs outside [min_pitch, max_pitch] are masked.
        repetition_penalty: >= 1 discourages striking the last note's pitch again: its probability is divided
            by ``repetition_penalty ** run``, run = how many times in a row that pitch has been struck.
        max_repeats: the most times in a row a pitch may be struck again right after itself (0: never repeat a
            pitch immediately); None: no cap. Rests and holds do not break a run.
        qpm, time_signature, program, velocity: written to the MIDI; None keeps the primer's (or 120 qpm, 4/4,
            program 0, velocity 100 without a primer). `time_signature` also sets the bar length for `bars`.
        seed: makes the melodies reproducible; None draws a fresh one.

    Raises:
        MelodyRNNError: any field out of range, e.g. "`temperature` must be >= 0, got -1".
    """

    num_melodies: int = 1
    num_steps: int | None = None
    bars: float | None = None
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    beam_size: int = 1
    branch_factor: int = 1
    key: str | None = None
    min_pitch: int | None = None
    max_pitch: int | None = None
    repetition_penalty: float = 1.0
    max_repeats: int | None = None
    qpm: float | None = None
    time_signature: tuple[int, int] | None = None
    program: int | None = None
    velocity: int | None = None
    seed: int | None = None

    what: ClassVar[str] = "sample config"
    #: Length of a melody when neither `bars` nor `num_steps` is given.
    default_bars: ClassVar[float] = 8

    def __post_init__(self):
        def check(ok: bool, name: str, expected: str):
            if not ok:
                raise MelodyRNNError(f"`{name}` must be {expected}, got {getattr(self, name)!r}")

        check(is_int(self.num_melodies) and 1 <= self.num_melodies <= _MAX_MELODIES, "num_melodies",
              f"an integer in [1, {_MAX_MELODIES}]")
        check(self.num_steps is None or (is_int(self.num_steps) and self.num_steps >= 1), "num_steps",
              "a positive integer or None")
        check(self.bars is None or (is_real(self.bars) and self.bars > 0), "bars", "a number > 0 or None")
        if self.num_steps is not None and self.bars is not None:
            raise MelodyRNNError(f"give `bars` or `num_steps`, not both (got bars={self.bars!r}, "
                                 f"num_steps={self.num_steps!r})")
        check(is_real(self.temperature) and self.temperature >= 0, "temperature", ">= 0")
        check(is_int(self.top_k) and self.top_k >= 0, "top_k", "an integer >= 0 (0 = off)")
        check(is_real(self.top_p) and 0 < self.top_p <= 1, "top_p", "in (0, 1]")
        check(is_int(self.beam_size) and 1 <= self.beam_size <= 256, "beam_size", "an integer in [1, 256]")
        check(is_int(self.branch_factor) and 1 <= self.branch_factor <= 256, "branch_factor",
              "an integer in [1, 256]")
        if self.key is not None:
            key_pitch_classes(self.key)  # raises on an unknown tonic or scale
        for name in ("min_pitch", "max_pitch"):
            value = getattr(self, name)
            check(value is None or (is_int(value) and 0 <= value <= 127), name, "an integer in [0, 127] or None")
        if self.min_pitch is not None and self.max_pitch is not None and self.min_pitch > self.max_pitch:
            raise MelodyRNNError(f"`min_pitch` must be <= `max_pitch`, got {self.min_pitch} > {self.max_pitch}")
        check(is_real(self.repetition_penalty) and self.repetition_penalty > 0, "repetition_penalty", "> 0")
        check(self.max_repeats is None or (is_int(self.max_repeats) and self.max_repeats >= 0), "max_repeats",
              "an integer >= 0 or None")
        check(self.qpm is None or (is_real(self.qpm) and 0 < self.qpm <= 1000), "qpm", "in (0, 1000] or None")
        if self.time_signature is not None:
            object.__setattr__(self, "time_signature", check_time_signature(self.time_signature))
        check(self.program is None or (is_int(self.program) and 0 <= self.program <= 127), "program",
              "an integer in [0, 127] or None")
        check(self.velocity is None or (is_int(self.velocity) and 1 <= self.velocity <= 127), "velocity",
              "an integer in [1, 127] or None")
        check(self.seed is None or (is_int(self.seed) and self.seed >= 0), "seed", "an integer >= 0 or None")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def uses_beam_search(self) -> bool:
        return self.beam_size > 1 or self.branch_factor > 1


# ----------------------------------------------------------------------------------------------------------
# Primers


def _pitches_to_melody(pitches: Sequence[int], encoding: EncodingConfig) -> Melody:
    spq = encoding.steps_per_quarter
    return Melody.from_notes([(p, i * spq, (i + 1) * spq) for i, p in enumerate(pitches)],
                             steps_per_quarter=spq, source="primer")


def primer_to_melody(primer, encoding: EncodingConfig = EncodingConfig()) -> Melody | None:
    """Turns any accepted primer into a `Melody`.

    Args:
        primer: None; a `Melody`; MIDI pitches (`[62, 65, 69]`); note names ("D4 F4 A4", "C#5,E5" or a list of
            names), each note one beat long; or a MIDI file (a path, or its bytes), whose first melody is taken,
            extracted by the training code (`midi_to_melodies`) with `PRIMER_EXTRACTION`'s filters.
        encoding: the bundle's encoding (its grid and pitch range).

    Returns:
        The primer melody, or None for no primer.

    Raises:
        MelodyRNNError: a bad note name, a pitch outside 0-127, an empty primer, or a melody on another grid.
        MidiReadError, NoMelodyError: the MIDI file cannot be read or holds no melody.
    """
    return _read_primer(primer, encoding)[0]


def _read_primer(primer, encoding: EncodingConfig) -> tuple[Melody | None, bool]:
    """`primer_to_melody`, and whether the primer's time signature is its own (a Melody or a MIDI file), not
    the 4/4 that pitches and note names get by default."""
    if primer is None:
        return None, False
    own_meter = not isinstance(primer, (str, list, tuple, np.ndarray))
    if isinstance(primer, Melody):
        melody = primer
    elif isinstance(primer, (bytes, bytearray)):
        melody = midi_to_melodies(bytes(primer), encoding, PRIMER_EXTRACTION)[0]
    elif isinstance(primer, os.PathLike) or (
        isinstance(primer, str)
        and (os.path.isfile(primer) or primer.strip().lower().endswith((".mid", ".midi", ".kar")))
    ):
        melody, own_meter = midi_to_melodies(os.fspath(primer), encoding, PRIMER_EXTRACTION)[0], True
    elif isinstance(primer, str):
        names = [n for n in re.split(r"[\s,]+", primer.strip()) if n]
        melody = _pitches_to_melody([note_name_to_pitch(n) for n in names], encoding)
    elif isinstance(primer, (list, tuple, np.ndarray)):
        pitches = []
        for p in list(primer):
            if isinstance(p, str):
                pitches.append(note_name_to_pitch(p))
            elif isinstance(p, numbers.Integral) and not isinstance(p, bool) and 0 <= int(p) <= 127:
                pitches.append(int(p))
            else:
                raise MelodyRNNError(f"`primer` pitches must be MIDI numbers in [0, 127] or note names, got {p!r}")
        melody = _pitches_to_melody(pitches, encoding)
    else:
        raise MelodyRNNError("`primer` must be pitches, note names, a Melody, or a MIDI file path or bytes, "
                             f"got {type(primer).__name__}")
    if len(melody) == 0 or melody.pitches.size == 0:
        raise MelodyRNNError("`primer` must hold at least one note")
    if melody.steps_per_quarter != encoding.steps_per_quarter:
        raise MelodyRNNError(f"`primer` must be on the model's grid of {encoding.steps_per_quarter} steps per "
                             f"quarter, got {melody.steps_per_quarter}")
    return melody, own_meter


# ----------------------------------------------------------------------------------------------------------
# The compiled loops


def _update_runs(last_id, run, token):
    """Tracks, per row, the id of the last NOTE_ON and how many times in a row it has been struck."""
    is_note = token >= NUM_SPECIAL
    run = tf.where(is_note, tf.where(tf.equal(token, last_id), run + 1, tf.ones_like(run)), run)
    return tf.where(is_note, token, last_id), run


class _Controls:
    """The logit processing shared by both loops. Tensors come in as arguments so that changing a value (a
    temperature, a key) never retraces; only shapes and the static flags do."""

    def __init__(self, vocab_size: int, greedy: bool, filtered: bool):
        self.vocab_size, self.greedy, self.filtered = vocab_size, greedy, filtered

    def constrain(self, logits, last_id, run, c):
        """Masks (additive -inf) and the repetition penalty and cap: the distribution the model may draw from."""
        logits = logits + c["allowed"][None, :]
        last = tf.one_hot(last_id, self.vocab_size, on_value=True, off_value=False)  # last_id -1 → all False
        runs = tf.cast(run, logits.dtype)[:, None]
        logits = tf.where(last, logits - c["log_penalty"] * runs, logits)
        return tf.where(last & (run > c["max_repeats"])[:, None], -math.inf, logits)

    def filter(self, logits, c):
        """Temperature → top-k → top-p; disallowed ids become -inf. Not used when greedy."""
        logits = logits / c["temperature"]
        if not self.filtered:
            return logits
        ranked = tf.sort(logits, axis=-1, direction="DESCENDING")
        rank = tf.range(self.vocab_size)[None, :]
        k = tf.where(c["top_k"] > 0, tf.minimum(c["top_k"], self.vocab_size), self.vocab_size)
        in_top_k = rank < k
        # top-p over the top-k survivors, renormalized; the most likely id always stays
        probs = tf.nn.softmax(tf.where(in_top_k, ranked, -math.inf), axis=-1)
        keep = in_top_k & (tf.cumsum(probs, axis=-1, exclusive=True) < c["top_p"])
        kept = tf.reduce_sum(tf.cast(keep, tf.int32), axis=-1)
        threshold = tf.gather(ranked, tf.maximum(kept, 1) - 1, axis=1, batch_dims=1)
        return tf.where(logits < threshold[:, None], -math.inf, logits)

    def gumbel(self, shape, c, t):
        # a stateless draw keyed by (seed, step): the same seed gives the same melodies
        u = tf.random.stateless_uniform(shape, seed=tf.stack([c["seed"], t]), minval=np.finfo(np.float32).tiny,
                                        maxval=1.0)
        return -tf.math.log(-tf.math.log(u))

    def choose(self, logits, c, t):
        """One id per row: argmax when greedy, else an exact draw from softmax(filtered) by the Gumbel-max trick."""
        if self.greedy:
            return tf.argmax(logits, axis=-1, output_type=tf.int32)
        filtered = self.filter(logits, c)
        return tf.argmax(filtered + self.gumbel(tf.shape(filtered), c, t), axis=-1, output_type=tf.int32)


def _first_tokens(model, controls: _Controls, batch: int, c):
    """With no primer, step 0 is a NOTE_ON drawn (under every control) from the model's prediction after one
    NO_EVENT input on a throwaway state; the real state then starts at step 0, so bar positions line up."""
    logits, _ = model.step(tf.fill([batch], NO_EVENT_ID), model.initial_state(batch, c["steps_per_bar"]))
    notes_only = tf.concat([tf.fill([NUM_SPECIAL], -math.inf), tf.zeros([controls.vocab_size - NUM_SPECIAL])], 0)
    no_note = tf.fill([batch], -1)
    return controls.choose(controls.constrain(logits + notes_only[None], no_note, tf.zeros([batch], tf.int32), c),
                           c, tf.constant(0))


def _sample_loop(model, controls: _Controls, batch: int, num_steps: int, has_primer: bool):
    def run(c):
        primer = c["primer"]
        first = tf.fill([batch], primer[0]) if has_primer else _first_tokens(model, controls, batch, c)
        last_id, runs = _update_runs(tf.fill([batch], -1), tf.zeros([batch], tf.int32), first)
        tokens = tf.TensorArray(tf.int32, size=num_steps).write(0, first)

        def body(t, ids, state, last_id, runs, tokens):
            logits, state = model.step(ids, state)
            drawn = controls.choose(controls.constrain(logits, last_id, runs, c), c, t)
            # teacher forcing through the primer: its steps are fed, never drawn
            ids = tf.where(t < c["primer_length"], tf.fill([batch], primer[t]), drawn)
            last_id, runs = _update_runs(last_id, runs, ids)
            return t + 1, ids, state, last_id, runs, tokens.write(t, ids)

        loop = (tf.constant(1), first, model.initial_state(batch, c["steps_per_bar"]), last_id, runs, tokens)
        *_, tokens = tf.while_loop(lambda t, *_: t < num_steps, body, loop, maximum_iterations=max(num_steps - 1, 0))
        return tf.transpose(tokens.stack())

    return run


def _beam_loop(model, controls: _Controls, num_melodies: int, beam_size: int, branch_factor: int, num_steps: int,
               has_primer: bool):
    n, b, f = num_melodies, beam_size, branch_factor
    rows = n * b

    def run(c):
        primer = c["primer"]
        if has_primer:
            first = tf.fill([rows], primer[0])
        else:  # one first note per melody, shared by its beams
            first = tf.repeat(tf.reshape(_first_tokens(model, controls, rows, c), [n, b])[:, 0], b)
        last_id, runs = _update_runs(tf.fill([rows], -1), tf.zeros([rows], tf.int32), first)
        steps = tf.range(num_steps)[None, :]
        history = tf.where(tf.equal(steps, 0), first[:, None], tf.zeros([rows, num_steps], tf.int32))
        # all beams start equal: only the first may expand, or the beam would fill with copies
        scores = tf.tile(tf.concat([[0.0], tf.fill([b - 1], -math.inf)], 0)[None], [n, 1])
        row_offsets = tf.repeat(tf.range(n) * b, b)

        def body(t, ids, state, last_id, runs, history, scores):
            logits, state = model.step(ids, state)
            constrained = controls.constrain(logits, last_id, runs, c)
            log_probs = tf.nn.log_softmax(constrained, axis=-1)
            if controls.greedy:
                picked, candidates = tf.math.top_k(constrained, k=f)
            else:  # Gumbel-top-k: f draws without replacement from the filtered distribution
                filtered = controls.filter(constrained, c)
                picked, candidates = tf.math.top_k(filtered + controls.gumbel(tf.shape(filtered), c, t), k=f)
            candidate_scores = tf.where(tf.math.is_finite(picked),
                                        tf.gather(log_probs, candidates, axis=1, batch_dims=1), -math.inf)
            totals = tf.reshape(tf.reshape(scores, [rows, 1]) + candidate_scores, [n, b * f])
            best, index = tf.math.top_k(totals, k=b)  # (n, b)
            parents = row_offsets + tf.reshape(index // f, [rows])
            chosen = tf.reshape(tf.gather(tf.reshape(candidates, [n, b * f]), index, axis=1, batch_dims=1), [rows])
            forced = t < c["primer_length"]
            parents = tf.where(forced, tf.range(rows), parents)
            ids = tf.where(forced, tf.fill([rows], primer[t]), chosen)
            scores = tf.where(forced, scores, best)
            state = tf.nest.map_structure(lambda leaf: tf.gather(leaf, parents), state)
            last_id, runs = _update_runs(tf.gather(last_id, parents), tf.gather(runs, parents), ids)
            history = tf.where(tf.equal(steps, t), ids[:, None], tf.gather(history, parents))
            return t + 1, ids, state, last_id, runs, history, scores

        loop = (tf.constant(1), first, model.initial_state(rows, c["steps_per_bar"]), last_id, runs, history, scores)
        *_, history, scores = tf.while_loop(lambda t, *_: t < num_steps, body, loop,
                                            maximum_iterations=max(num_steps - 1, 0))
        best_rows = tf.range(n) * b + tf.argmax(scores, axis=1, output_type=tf.int32)
        return tf.gather(history, best_rows)

    return run


# ----------------------------------------------------------------------------------------------------------
# The sampler


class Sampler:
    """Generates melodies from a model bundle.

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
        self._compiled: dict[tuple, tf.types.experimental.GenericFunction] = {}

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
                `qpm`, `time_signature`, `program`, `velocity`, `seed`), with its defaults there; `top_k` or
                `top_p` None means off.

        Returns:
            `num_melodies` `Melody` objects, each `bars`/`steps` long (primer included), ready for
            `melody_to_midi`.

        Raises:
            MelodyRNNError: an unknown option or an invalid value (see `SampleConfig`), a primer longer than the
                requested length, a primer pitch outside the model's vocabulary, a key/range that leaves no
                pitch to play, or (a lookback model) a time signature whose bar is not a whole number of steps
                up to the model's `max_steps_per_bar`. A lookback model counts bars of `time_signature` or of the
                primer's own (a Melody or MIDI file); with neither, its `config.steps_per_bar`.
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
        enc = self.encoding
        primer_melody, own_meter = _read_primer(primer, enc)
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
        seed = config.seed if config.seed is not None else secrets.randbits(31)
        tensors = {
            "primer": tf.constant(primer_tokens),
            "primer_length": tf.constant(primer_length, tf.int32),
            "allowed": tf.constant(self._allowed(config)),
            "temperature": tf.constant(config.temperature or 1.0, tf.float32),
            "top_k": tf.constant(config.top_k, tf.int32),
            "top_p": tf.constant(config.top_p, tf.float32),
            "log_penalty": tf.constant(math.log(config.repetition_penalty), tf.float32),
            "max_repeats": tf.constant(_NEVER if config.max_repeats is None else config.max_repeats, tf.int32),
            "seed": tf.constant(seed % (1 << 31), tf.int32),
            "steps_per_bar": tf.constant(bar, tf.int32),
        }
        ids = self._run(config, num_steps, primer_length > 0, tensors)
        return [tokens_to_melody(row, enc, source="generated", **metadata) for row in ids]

    # -- helpers -----------------------------------------------------------------------------------------------

    def _output_metadata(self, config: SampleConfig, primer: Melody | None) -> dict:
        qpm = config.qpm
        tempos = ((0, float(qpm)),) if qpm is not None else (primer.tempos if primer is not None else ((0, 120.0),))
        ts = config.time_signature
        time_signatures = ((0, *ts),) if ts is not None else (
            primer.time_signatures if primer is not None else ((0, 4, 4),))
        program = config.program if config.program is not None else (primer.program if primer is not None else 0)
        velocity = config.velocity if config.velocity is not None else (
            primer.velocity if primer is not None else 100)
        return {"tempos": tempos, "time_signatures": time_signatures, "program": program, "velocity": velocity}

    def _num_steps(self, config: SampleConfig, steps_per_bar: float, primer: Melody | None) -> int:
        if config.num_steps is not None:
            num_steps = config.num_steps
        else:
            bars = config.bars if config.bars is not None else config.default_bars
            num_steps = max(1, int(round(bars * steps_per_bar)))
        if primer is not None and len(primer) > num_steps:
            raise MelodyRNNError(f"the requested length ({num_steps} steps) must be at least the primer's "
                                 f"({len(primer)} steps); ask for more `bars` or `steps`")
        return num_steps

    def _allowed(self, config: SampleConfig) -> np.ndarray:
        """float32 `(vocab,)`: 0 where an id may be drawn, -inf where the key or the range forbid it."""
        enc = self.encoding
        pitches = np.arange(enc.min_pitch, enc.max_pitch + 1)
        ok = np.ones(pitches.size, bool)
        if config.min_pitch is not None:
            ok &= pitches >= config.min_pitch
        if config.max_pitch is not None:
            ok &= pitches <= config.max_pitch
        if config.key is not None:
            ok &= np.isin(pitches % 12, sorted(key_pitch_classes(config.key)))
        if not ok.any():
            raise MelodyRNNError(
                f"no pitch of the model's range [{enc.min_pitch}, {enc.max_pitch}] satisfies key={config.key!r}, "
                f"min_pitch={config.min_pitch!r}, max_pitch={config.max_pitch!r}")
        allowed = np.zeros(enc.vocab_size, np.float32)
        allowed[NUM_SPECIAL:] = np.where(ok, 0.0, -np.inf)
        return allowed

    def _run(self, config: SampleConfig, num_steps: int, has_primer: bool, tensors: dict) -> np.ndarray:
        controls = _Controls(self.encoding.vocab_size, config.greedy, config.top_k > 0 or config.top_p < 1)
        key: tuple  # what the compiled loop depends on: one trace per distinct key
        if config.uses_beam_search:
            key = ("beam", config.num_melodies, config.beam_size, config.branch_factor, num_steps, has_primer,
                   controls.greedy, controls.filtered)
            build = lambda: _beam_loop(self.model, controls, config.num_melodies, config.beam_size,  # noqa: E731
                                       config.branch_factor, num_steps, has_primer)
        else:
            key = ("sample", config.num_melodies, num_steps, has_primer, controls.greedy, controls.filtered)
            build = lambda: _sample_loop(self.model, controls, config.num_melodies, num_steps, has_primer)  # noqa: E731
        fn = self._compiled.get(key)
        if fn is None:
            fn = self._compiled[key] = tf.function(build(), jit_compile=self.jit_compile, autograph=False)
        try:
            return fn(tensors).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as err:
            if not self.jit_compile:
                raise
            warnings.warn(f"XLA could not compile the sampling loop ({str(err).splitlines()[0]}); "
                          "running it without XLA, which is slower", RuntimeWarning, stacklevel=3)
            fn = self._compiled[key] = tf.function(build(), jit_compile=False, autograph=False)
            return fn(tensors).numpy()


# ----------------------------------------------------------------------------------------------------------
# Writing and the one-liner


def write_melodies(melodies: Sequence[Melody], output: str | os.PathLike, prefix: str = "melody") -> list[Path]:
    """Writes melodies as MIDI files and returns their paths.

    Args:
        output: a folder (created if needed), which receives `{prefix}_001.mid`, ...; or a path ending in
            ".mid"/".midi", used as is for one melody and as `name_001.mid`, ... for several.
    """
    output = Path(output)
    if output.suffix.lower() in (".mid", ".midi"):
        output.parent.mkdir(parents=True, exist_ok=True)
        paths = [output] if len(melodies) == 1 else [
            output.with_name(f"{output.stem}_{i + 1:03d}{output.suffix}") for i in range(len(melodies))]
    else:
        output.mkdir(parents=True, exist_ok=True)
        paths = [output / f"{prefix}_{i + 1:03d}.mid" for i in range(len(melodies))]
    for melody, path in zip(melodies, paths):
        melody_to_midi(melody, path)
    return paths


_DEFAULT_SAMPLERS: dict[str, Sampler] = {}


def generate(num_melodies: int = 1, *, output: str | os.PathLike | None = None,
             model: Bundle | str | os.PathLike | None = None, **kwargs) -> list[Melody]:
    """The one-liner: generate melodies with the default model (or `model`) and optionally write them.

    Args:
        num_melodies: how many.
        output: if given, a folder or a ".mid" path the melodies are written to (see `write_melodies`).
        model: a `Bundle` or bundle path; None uses the bundled default model (loaded once per process).
        **kwargs: `Sampler.generate`'s arguments (bars, primer, temperature, key, seed, ...).

    Returns:
        The melodies.

    Example:
        >>> melodyrnn.generate(4, bars=16, key="D minor", primer="D4 F4 A4", seed=7, output="out/")
    """
    if isinstance(model, Bundle):
        sampler = Sampler(model)
    else:
        cache_key = os.fspath(model) if model is not None else ""
        if cache_key not in _DEFAULT_SAMPLERS:
            _DEFAULT_SAMPLERS[cache_key] = Sampler(model)
        sampler = _DEFAULT_SAMPLERS[cache_key]
    melodies = sampler.generate(num_melodies, **kwargs)
    if output is not None:
        write_melodies(melodies, output)
    return melodies
