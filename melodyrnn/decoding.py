"""The compiled TensorFlow decoding loops behind `Sampler`: `sample_loop`, `beam_loop` and their `Controls`.

Each loop builder returns a function of one dict of tensors `c` for `tf.function(jit_compile=True)`: it feeds the
primer through `model.step` (teacher forcing), then draws the remaining steps, carrying the model's state and
batched over melodies. `c` holds "primer" (int32 `(num_steps,)`), "primer_length", "allowed" (float32 `(vocab,)`:
0 or -inf), "temperature", "top_k", "top_p", "log_penalty", "max_repeats" (`NO_CAP` for none), "seed",
"steps_per_bar" and "conditions" (int32 `(num_steps, NUM_FIELDS)`: every step's meter and chord conditions, fed
to a conditioned model at the step it predicts, indexed by the loop counter; other models ignore them), "pickup"
(the chance an unprimed melody opens with silence) and with `Controls.guided` "guidance" (`ChordGuidance`'s
weight). Start at `sample_loop`; `decode` builds, caches and runs them for `Sampler` and the infill model.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from melodyrnn.conditioning import CHANGE, CHORD, MAX_CHANGE, POSITION
from melodyrnn.encoding import NO_EVENT_ID, NUM_SPECIAL, EncodingConfig
from melodyrnn.sample_config import SampleConfig

__all__ = ["NO_CAP", "ChordGuidance", "Controls", "beam_loop", "decode", "run_loop", "sample_loop"]

#: "No cap" for `max_repeats` inside the compiled loop: no run gets this long.
NO_CAP = 1 << 30


def _update_runs(last_id, run, token):
    """Tracks, per row, the id of the last NOTE_ON and how many times in a row it has been struck."""
    is_note = token >= NUM_SPECIAL
    run = tf.where(is_note, tf.where(tf.equal(token, last_id), run + 1, tf.ones_like(run)), run)
    return tf.where(is_note, token, last_id), run


class Controls:
    """The logit processing shared by both loops. Tensors come in as arguments so that changing a value (a
    temperature, a key) never retraces; only shapes and the static flags do."""

    def __init__(self, vocab_size: int, greedy: bool, filtered: bool, guided: bool = False):
        self.vocab_size, self.greedy, self.filtered, self.guided = vocab_size, greedy, filtered, guided

    def network(self, model, c):
        """What the loops call `step` on: the model, or with `guided` the model under `ChordGuidance`."""
        return ChordGuidance(model, c["guidance"]) if self.guided else model

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
        u = tf.random.stateless_uniform(
            shape, seed=tf.stack([c["seed"], t]), minval=np.finfo(np.float32).tiny, maxval=1.0
        )
        return -tf.math.log(-tf.math.log(u))

    def choose(self, logits, c, t):
        """One id per row: argmax when greedy, else an exact draw from softmax(filtered) by the Gumbel-max trick."""
        if self.greedy:
            return tf.argmax(logits, axis=-1, output_type=tf.int32)
        filtered = self.filter(logits, c)
        return tf.argmax(filtered + self.gumbel(tf.shape(filtered), c, t), axis=-1, output_type=tf.int32)


class ChordGuidance:
    """A chord-aware model that follows the chords more (or less) strongly than it learnt to: classifier-free
    guidance. Each step runs the model on every row twice in one batch, once with the chords given and once
    withheld (chord "N", no change ahead: what training showed the model for melodies without chords), and returns
    ``withheld + weight * (given - withheld)`` as the logits. Weight 1 is the model itself; above 1 the notes lean
    towards what the chords make more likely than the melody alone; 0 ignores the chords.

    It has the model's `initial_state`/`step` interface, so both loops use it unchanged; its state stacks the given
    rows over the withheld ones, and `reorder` gathers both halves when beam search picks parents.
    """

    def __init__(self, model, weight):
        self.model, self.weight = model, weight

    def initial_state(self, batch: int, steps_per_bar):
        return self.model.initial_state(2 * batch, steps_per_bar)

    def step(self, ids, state, conditions):
        field = tf.range(tf.shape(conditions)[1])[None, :]
        withheld = tf.where(field == CHORD, 0, tf.where(field == CHANGE, MAX_CHANGE, conditions))
        logits, state = self.model.step(tf.concat([ids, ids], 0), state, tf.concat([conditions, withheld], 0))
        given, free = tf.split(logits, 2)
        return free + self.weight * (given - free), state

    def reorder(self, state, parents):
        rows = tf.shape(parents)[0]
        return _reorder(self.model, state, tf.concat([parents, parents + rows], 0))


def _reorder(model, state, parents):
    """`state` with its rows taken from `parents` (beam search's survivors)."""
    if isinstance(model, ChordGuidance):
        return model.reorder(state, parents)
    return tf.nest.map_structure(lambda leaf: tf.gather(leaf, parents), state)


def _first_tokens(model, controls: Controls, batch: int, c):
    """With no primer, step 0 is silence (NO_EVENT) in the rows that open with a pickup, else a NOTE_ON drawn
    (under every control) from the model's prediction after one NO_EVENT input on a throwaway state; the real
    state then starts at step 0, so bar positions line up."""
    state = model.initial_state(batch, c["steps_per_bar"])
    logits, _ = model.step(tf.fill([batch], NO_EVENT_ID), state, _conditions_at(c, 0, batch))
    notes_only = tf.concat([tf.fill([NUM_SPECIAL], -math.inf), tf.zeros([controls.vocab_size - NUM_SPECIAL])], 0)
    no_note = tf.fill([batch], -1)
    note = controls.choose(
        controls.constrain(logits + notes_only[None], no_note, tf.zeros([batch], tf.int32), c), c, tf.constant(0)
    )
    # or silence, for a melody that opens with a pickup (c["pickup"]: the chance of one; greedy: if at least 0.5)
    if controls.greedy:
        silent = tf.fill([batch], c["pickup"] >= 0.5)
    else:
        silent = tf.random.stateless_uniform([batch], seed=tf.stack([c["seed"], tf.constant(-1)])) < c["pickup"]
    return tf.where(silent, tf.fill([batch], NO_EVENT_ID), note)


def _first_note_due(controls: Controls, logits, last_id, t, c, num_steps: int):
    """A melody that opened with a pickup has its first note by the last step of its first bar (as the data's
    melodies do; the model waits longer now and then) or of the melody: there, rows still silent (no NOTE_ON yet,
    `last_id` -1) may only draw a NOTE_ON."""
    following = tf.minimum(t + 1, num_steps - 1)
    due = (t + 1 >= num_steps) | tf.equal(c["conditions"][following, POSITION], 0)
    specials = tf.range(controls.vocab_size) < NUM_SPECIAL
    return tf.where((tf.equal(last_id, -1) & due)[:, None] & specials[None, :], -math.inf, logits)


def _conditions_at(c, t, batch: int):
    """int32 `(batch, NUM_FIELDS)`: the conditions of step `t`, the one the model predicts, for every row."""
    row = c["conditions"][t]
    return tf.broadcast_to(row[None], [batch, tf.shape(row)[0]])


def sample_loop(model, controls: Controls, batch: int, num_steps: int, has_primer: bool):
    """The sampling loop: `run(c)` returns int32 `(batch, num_steps)`, one id per step drawn by `controls.choose`
    (or fed from the primer); the network never re-runs over the prefix."""

    def run(c):
        net = controls.network(model, c)
        primer = c["primer"]
        first = tf.fill([batch], primer[0]) if has_primer else _first_tokens(net, controls, batch, c)
        last_id, runs = _update_runs(tf.fill([batch], -1), tf.zeros([batch], tf.int32), first)
        tokens = tf.TensorArray(tf.int32, size=num_steps).write(0, first)

        def body(t, ids, state, last_id, runs, tokens):
            logits, state = net.step(ids, state, _conditions_at(c, t, batch))
            constrained = controls.constrain(logits, last_id, runs, c)
            if not has_primer:
                constrained = _first_note_due(controls, constrained, last_id, t, c, num_steps)
            drawn = controls.choose(constrained, c, t)
            # teacher forcing through the primer: its steps are fed, never drawn
            ids = tf.where(t < c["primer_length"], tf.fill([batch], primer[t]), drawn)
            last_id, runs = _update_runs(last_id, runs, ids)
            return t + 1, ids, state, last_id, runs, tokens.write(t, ids)

        loop = (tf.constant(1), first, net.initial_state(batch, c["steps_per_bar"]), last_id, runs, tokens)
        *_, tokens = tf.while_loop(lambda t, *_: t < num_steps, body, loop, maximum_iterations=max(num_steps - 1, 0))
        return tf.transpose(tokens.stack())

    return run


def beam_loop(
    model, controls: Controls, num_melodies: int, beam_size: int, branch_factor: int, num_steps: int, has_primer: bool
):
    """Beam search: `run(c)` returns int32 `(num_melodies, num_steps)`, each melody's best of `beam_size`
    hypotheses by summed log-probability; the state is reordered with `tf.gather` as beams are chosen."""
    n, b, f = num_melodies, beam_size, branch_factor
    rows = n * b

    def run(c):
        net = controls.network(model, c)
        primer = c["primer"]
        if has_primer:
            first = tf.fill([rows], primer[0])
        else:  # one first note per melody, shared by its beams
            first = tf.repeat(tf.reshape(_first_tokens(net, controls, rows, c), [n, b])[:, 0], b)
        last_id, runs = _update_runs(tf.fill([rows], -1), tf.zeros([rows], tf.int32), first)
        steps = tf.range(num_steps)[None, :]
        history = tf.where(tf.equal(steps, 0), first[:, None], tf.zeros([rows, num_steps], tf.int32))
        # all beams start equal: only the first may expand, or the beam would fill with copies
        scores = tf.tile(tf.concat([[0.0], tf.fill([b - 1], -math.inf)], 0)[None], [n, 1])
        row_offsets = tf.repeat(tf.range(n) * b, b)

        def body(t, ids, state, last_id, runs, history, scores):
            logits, state = net.step(ids, state, _conditions_at(c, t, rows))
            constrained = controls.constrain(logits, last_id, runs, c)
            if not has_primer:
                constrained = _first_note_due(controls, constrained, last_id, t, c, num_steps)
            log_probs = tf.nn.log_softmax(constrained, axis=-1)
            if controls.greedy:
                picked, candidates = tf.math.top_k(constrained, k=f)
            else:  # Gumbel-top-k: f draws without replacement from the filtered distribution
                filtered = controls.filter(constrained, c)
                picked, candidates = tf.math.top_k(filtered + controls.gumbel(tf.shape(filtered), c, t), k=f)
            candidate_scores = tf.where(
                tf.math.is_finite(picked), tf.gather(log_probs, candidates, axis=1, batch_dims=1), -math.inf
            )
            totals = tf.reshape(tf.reshape(scores, [rows, 1]) + candidate_scores, [n, b * f])
            best, index = tf.math.top_k(totals, k=b)  # (n, b)
            parents = row_offsets + tf.reshape(index // f, [rows])
            chosen = tf.reshape(tf.gather(tf.reshape(candidates, [n, b * f]), index, axis=1, batch_dims=1), [rows])
            forced = t < c["primer_length"]
            parents = tf.where(forced, tf.range(rows), parents)
            ids = tf.where(forced, tf.fill([rows], primer[t]), chosen)
            scores = tf.where(forced, scores, best)
            state = _reorder(net, state, parents)
            last_id, runs = _update_runs(tf.gather(last_id, parents), tf.gather(runs, parents), ids)
            history = tf.where(tf.equal(steps, t), ids[:, None], tf.gather(history, parents))
            return t + 1, ids, state, last_id, runs, history, scores

        loop = (tf.constant(1), first, net.initial_state(rows, c["steps_per_bar"]), last_id, runs, history, scores)
        *_, history, scores = tf.while_loop(
            lambda t, *_: t < num_steps, body, loop, maximum_iterations=max(num_steps - 1, 0)
        )
        best_rows = tf.range(n) * b + tf.argmax(scores, axis=1, output_type=tf.int32)
        return tf.gather(history, best_rows)

    return run


# The dtype of each entry of the loops' tensor dict `c`.
_DTYPES = {"primer": tf.int32, "primer_length": tf.int32, "allowed": tf.float32, "temperature": tf.float32,
           "top_k": tf.int32, "top_p": tf.float32, "log_penalty": tf.float32, "max_repeats": tf.int32,
           "seed": tf.int32, "steps_per_bar": tf.int32, "conditions": tf.int32, "guidance": tf.float32,
           "pickup": tf.float32}  # fmt: skip


def run_loop(cache: dict, key: tuple, build: Callable[[], Callable], values: dict, jit_compile: bool) -> np.ndarray:
    """Runs the loop `build()` returns on `values` (numbers and numpy arrays, converted to the dtypes the loops
    take), compiled once per `key` and kept in `cache`. If XLA cannot compile it, warns and runs it without XLA.

    Returns:
        int32 `(melodies, steps)`: the token ids.
    """
    tensors: dict[str, Any] = {name: tf.constant(value, _DTYPES[name]) for name, value in values.items()}
    fn = cache.get(key)
    if fn is None:
        fn = cache[key] = tf.function(build(), jit_compile=jit_compile, autograph=False)
    try:
        return fn(tensors).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as err:
        if not jit_compile:
            raise
        warnings.warn(
            f"XLA could not compile the sampling loop ({str(err).splitlines()[0]}); running it without XLA, "
            "which is slower",
            RuntimeWarning,
            stacklevel=4,
        )
        fn = cache[key] = tf.function(build(), jit_compile=False, autograph=False)
        return fn(tensors).numpy()


def decode(
    cache: dict,
    model,
    config: SampleConfig,
    encoding: EncodingConfig,
    num_steps: int,
    request: dict,
    *,
    chords_given: bool,
    jit_compile: bool,
) -> np.ndarray:
    """The loop `config` asks for (sampling, or beam search), run on `request` with `config`'s controls.

    Args:
        cache: compiled loops by shape of request (see `run_loop`).
        model: anything with a melody model's `initial_state` and `step`; its `config.vocab_size` ids are drawn
            (ids past `encoding`'s vocabulary are never drawn).
        request: the request's own tensors: "primer" (the loop is primed when "primer_length" is above 0),
            "primer_length", "seed", "steps_per_bar", "conditions" and, unprimed, "pickup".
        chords_given: whether the model reads chords and some step has one: then `config.chord_guidance` other
            than 1 runs the model under `ChordGuidance`.

    Returns:
        int32 `(melodies, num_steps)`: the token ids.
    """
    vocab_size = model.config.vocab_size
    guided = chords_given and config.chord_guidance != 1
    controls = Controls(vocab_size, config.greedy, config.top_k > 0 or config.top_p < 1, guided)
    values = {
        "allowed": config.allowed_ids(encoding, vocab_size),
        "temperature": config.temperature or 1.0,
        "top_k": config.top_k,
        "top_p": config.top_p,
        "log_penalty": math.log(config.repetition_penalty),
        "max_repeats": NO_CAP if config.max_repeats is None else config.max_repeats,
        "guidance": config.chord_guidance,
        **request,
    }
    n, primed = config.num_melodies, bool(request["primer_length"] > 0)
    flags = (primed, controls.greedy, controls.filtered, guided)  # what a compiled loop depends on
    if config.uses_beam_search:
        b, f = config.beam_size, config.branch_factor
        key: tuple = ("beam", n, b, f, num_steps, *flags)
        build = lambda: beam_loop(model, controls, n, b, f, num_steps, primed)  # noqa: E731
    else:
        key = ("sample", n, num_steps, *flags)
        build = lambda: sample_loop(model, controls, n, num_steps, primed)  # noqa: E731
    return run_loop(cache, key, build, values, jit_compile)
