"""The backward-reader infill model: a melody model over [prefix][gap] told what comes after the gap by an encoder
that reads the bars after it backwards.

Start at `BackwardInfill` (`BackwardInfill(path).score_infill(melody, 4, 8)`), the exact log p(gap | both sides)
from one full call. `BackwardInfillNetwork` is the network: the project's `Bidirectional` around its `LSTM` reads
the suffix's events with their conditions; its output at the suffix's first step (whose backward half has read the
whole suffix) goes through a dense projection and is added, with the steps-left embedding of
`melodyrnn.infill_model.GAP_COLUMN`, to the decoder's input at every step that predicts a gap step. The projection
and the steps-left embedding start at zero, so `backward_warm_start` makes a network that predicts exactly what its
melody model did. `backward_inputs` lays out one gap; `melodyrnn.infill_training` trains it
(`InfillTrainConfig(layout="backward")`). It scores and has no sampler: it measured worse than the suffix-first
layout (`melodyrnn.infill_model`) and is kept to measure with (MODEL_CARD.md, "Infill model").
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
from keras import ops

from melodyrnn.bundle import load_task_bundle, save_task_bundle
from melodyrnn.conditioning import NUM_FIELDS, melody_conditions
from melodyrnn.encoding import EncodingConfig, Melody, melody_to_tokens
from melodyrnn.errors import BundleError, InfillError, MelodyRNNError
from melodyrnn.gaps import InfillScore, bar_lines, gap_steps
from melodyrnn.infill_model import AFTER_GAP, BEFORE_GAP, GAP_COLUMN, MAX_STEPS_LEFT, bundle_configs, context_layout
from melodyrnn.layers import LSTM, Bidirectional
from melodyrnn.model import MelodyModel, ModelConfig
from melodyrnn.warm_start import add_conditions

__all__ = [
    "BACKWARD_LAYOUT",
    "BACKWARD_TASK",
    "BackwardInfill",
    "BackwardInfillNetwork",
    "backward_inputs",
    "backward_warm_start",
    "load_backward",
    "save_backward",
]

#: The `task` a backward-reader infill bundle's bundle.json names.
BACKWARD_TASK = "infill_backward"
#: The layout such a bundle names; bundles of another layout are refused.
BACKWARD_LAYOUT = "decoder: prefix, gap; encoder: suffix read by a bidirectional LSTM; conditions with a gap column"
_GAP_IDS = 2 + MAX_STEPS_LEFT


def backward_inputs(tokens: np.ndarray, conditions: np.ndarray, lines: np.ndarray, start_bar: int, end_bar: int):
    """The backward-reader model's arrays for the gap of bars `[start_bar, end_bar)` of a melody.

    The context is `melodyrnn.infill_model`'s: at most 16 bars (320 steps) before the gap, 8 bars (160 steps) after.

    Args:
        tokens: int `(steps,)`, the melody's ids; conditions: int `(steps, NUM_FIELDS)`, its
            (`melodyrnn.conditioning.step_conditions`); lines: int `(bars + 1,)`, its bar lines.
        start_bar, end_bar: the gap, checked by the caller.

    Returns:
        `(sequence, rows, suffix, suffix_rows, gap_offset)`: int32 `(prefix + gap,)` ids [prefix][gap]; int32
        `(prefix + gap, NUM_FIELDS + 1)`, each step's conditions and its `GAP_COLUMN` (`BEFORE_GAP`, or
        `1 + min(steps left, MAX_STEPS_LEFT)` inside the gap); int32 `(suffix,)` ids and
        `(suffix, NUM_FIELDS)` conditions of the bars after the gap; where the gap starts in `sequence`.
    """
    prefix_start, start, end, suffix_end = context_layout(lines, start_bar, end_bar)
    rows = np.asarray(conditions, np.int32)
    where = np.concatenate([np.full(start - prefix_start, BEFORE_GAP),
                            1 + np.minimum(end - np.arange(start, end), MAX_STEPS_LEFT)])  # fmt: skip
    decoder_rows = np.concatenate([rows[prefix_start:end], where[:, None]], axis=1).astype(np.int32)
    sequence = np.asarray(tokens[prefix_start:end], np.int32)
    suffix = np.asarray(tokens[end:suffix_end], np.int32)
    return sequence, decoder_rows, suffix, rows[end:suffix_end], start - prefix_start


@keras.saving.register_keras_serializable(package="melodyrnn")
class BackwardInfillNetwork(MelodyModel):
    """A meter- and chord-aware `MelodyModel` over [prefix][gap] with a suffix encoder.

    Inputs are `{"ids": int (batch, steps), "conditions": int (batch, steps, NUM_FIELDS + 1), "suffix": int
    (batch, suffix steps), "suffix_conditions": int (batch, suffix steps, NUM_FIELDS), "suffix_length": int
    (batch,)}`: position i reads the conditions (and gap column) of the step it predicts, as `MelodyModel`
    expects; suffixes are right-padded to their longest (the padding is masked; length 0 gives a zero context).
    Output: logits `(batch, steps, vocab_size)`.

    Args:
        config: a `ModelConfig` with `condition_meter` and `condition_chords`, without lookback.
        encoder_units: the LSTM's units in each direction; the context has twice as many.

    Raises:
        MelodyRNNError: another config.
    """

    def __init__(self, config: ModelConfig | dict = ModelConfig(), encoder_units: int = 128, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        if c.lookback or not (c.condition_meter and c.condition_chords):
            raise MelodyRNNError("an infill network reads meter and chords and has no lookback")
        self.encoder_units = int(encoder_units)
        self.gap = keras.layers.Embedding(_GAP_IDS, c.embedding_dim, embeddings_initializer="zeros", name="gap")
        self.encoder = Bidirectional(LSTM(self.encoder_units, return_sequences=True), name="encoder")
        self.context = keras.layers.Dense(c.embedding_dim, kernel_initializer="zeros", name="context")

    def build(self, input_shape=None):
        self.gap.build((None,))
        super().build(input_shape)
        self.encoder.build((None, None, self._input_features()))
        self.context.build((None, 2 * self.encoder_units))

    def encode(self, suffix, suffix_conditions, suffix_length, training=None):
        """float `(batch, 2 * encoder_units)`: the encoder's output at each suffix's first step."""
        ids = ops.cast(suffix, "int32")
        x = super()._with_conditions(self.embedding(ids), ops.cast(suffix_conditions, "int32"), None)
        mask = ops.arange(ops.shape(ids)[1])[None, :] < ops.cast(suffix_length, "int32")[:, None]
        return self.encoder(x, mask=mask, training=training)[:, 0]

    def call(self, inputs, training=None):
        ids, conditions = ops.cast(inputs["ids"], "int32"), ops.cast(inputs["conditions"], "int32")
        context = self.context(self.encode(inputs["suffix"], inputs["suffix_conditions"], inputs["suffix_length"],
                                           training))  # fmt: skip
        where = conditions[..., GAP_COLUMN]
        x = self.embedding(ids)
        x = x + ops.cast(self.gap(where), x.dtype)
        # the suffix's context reaches only the steps that predict a gap step
        x = x + ops.where((where > AFTER_GAP)[..., None], context[:, None, :], ops.zeros_like(x))
        x = super()._with_conditions(x, conditions[..., :NUM_FIELDS], None)
        for i, rnn in enumerate(self.recurrent):
            x = self._after_recurrent(i, x, rnn(x, training=training), training)
            if i == 0 and self.attention is not None:
                x = self.attention(x, training=training)
        return self.logits(x)

    def step(self, token_ids, state: dict, conditions=None):
        raise MelodyRNNError("the backward-reader infill network scores gaps only (full calls); it has no sampler")

    def get_config(self):
        return {**super().get_config(), "encoder_units": self.encoder_units}


def backward_warm_start(model: MelodyModel, encoder_units: int = 128) -> BackwardInfillNetwork:
    """A backward-reader network made from a melody model: every weight of the melody model copied; the encoder
    at Keras's initialisation, the context projection and the steps-left embedding at zero.

    Args:
        model: a built, non-lookback `MelodyModel` (one without conditions first gains them, `add_conditions`).
        encoder_units: the encoder's units per direction.

    Returns:
        A built, uncompiled `BackwardInfillNetwork` that predicts exactly what `model` does, whatever the suffix.

    Raises:
        MelodyRNNError: not a `MelodyModel`, or a lookback model.
    """
    if not isinstance(model, MelodyModel):
        raise MelodyRNNError(f"`model` must be a melodyrnn MelodyModel, got {type(model).__name__}")
    if model.config.lookback:
        raise MelodyRNNError("an infill model must start from a model without lookback")
    if not (model.config.condition_meter and model.config.condition_chords):
        model = add_conditions(model, condition_meter=True, condition_chords=True)
    new = BackwardInfillNetwork(model.config, encoder_units, name="backward_infill_network")
    new.build()
    old = {w.path.split("/", 1)[1]: np.asarray(w.numpy()) for w in model.weights}
    for weight in new.weights:
        key = weight.path.split("/", 1)[1]
        if key.split("/", 1)[0] not in ("gap", "encoder", "context"):
            weight.assign(old[key])
    return new


def save_backward(path: str | os.PathLike, model: BackwardInfillNetwork, encoding: EncodingConfig, metadata):
    """Writes a backward-reader infill model as one bundle whose bundle.json says `"task": "infill_backward"`."""
    config = {"model_config": model.config.to_dict(), "encoding_config": encoding.to_dict(),
              "encoder_units": model.encoder_units, "layout": BACKWARD_LAYOUT}  # fmt: skip
    return save_task_bundle(path, model, BACKWARD_TASK, config, metadata)


def load_backward(path: str | os.PathLike) -> tuple[BackwardInfillNetwork, EncodingConfig, dict]:
    """Loads a backward-reader bundle (Keras safe mode, the checks of `load_task_bundle`): `(model, encoding,
    metadata)`.

    Raises:
        BundleError: a missing or unusable file, a bundle of another task or layout, or configs that disagree
            with the model.
    """
    model, config, metadata = load_task_bundle(path, BACKWARD_TASK)
    if config.get("layout") != BACKWARD_LAYOUT:
        raise BundleError(f"{path} is a backward-reader model of another layout ({config.get('layout')!r})")
    encoding, model_config = bundle_configs(path, config)
    if (
        not isinstance(model, BackwardInfillNetwork)
        or model.config != model_config
        or model.encoder_units != config.get("encoder_units")
        or model_config.vocab_size != encoding.vocab_size
    ):
        raise BundleError(f"{path} is corrupt: its model does not match its infill config")
    return model, encoding, metadata


class BackwardInfill:
    """Exact gap scores from a backward-reader infill bundle (`"task": "infill_backward"`).

    Args:
        path: the bundle.

    Raises:
        BundleError: as `load_backward`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.model, self.encoding, self.metadata = load_backward(self.path)

    def score_infill(self, melody: Melody, start_bar: int, end_bar: int) -> InfillScore:
        """The exact log-likelihood of the gap's steps given both sides, from one full call.

        Args:
            melody: the melody; start_bar, end_bar: the gap, bars `start_bar <= bar < end_bar`.

        Returns:
            An `InfillScore` whose `per_step` (float64 `(gap steps,)`, nats) already sees both sides.

        Raises:
            InfillError: a gap outside the melody, or one at its first step (nothing before it to predict from).
            MelodyRNNError: a pitch outside the encoding.
        """
        start, end = gap_steps(melody, start_bar, end_bar)
        if start == 0:
            raise InfillError("the backward-reader model needs at least one step before the gap")
        tokens = melody_to_tokens(melody, self.encoding)
        steps = melody_conditions(melody)
        sequence, rows, suffix, suffix_rows, gap_offset = backward_inputs(tokens, steps, bar_lines(melody),
                                                                          start_bar, end_bar)  # fmt: skip
        length = len(suffix)
        if not length:  # a gap at the melody's end: one masked step, a zero context
            suffix, suffix_rows = np.zeros(1, np.int32), np.zeros((1, NUM_FIELDS), np.int32)
        inputs = {"ids": sequence[None, :-1], "conditions": rows[None, 1:], "suffix": suffix[None],
                  "suffix_conditions": suffix_rows[None], "suffix_length": np.array([length])}  # fmt: skip
        tensors = {k: ops.convert_to_tensor(np.asarray(v, np.int32)) for k, v in inputs.items()}
        log_probs = np.asarray(ops.log_softmax(self.model(tensors, training=False), axis=-1))[0]
        per_step = log_probs[np.arange(gap_offset - 1, len(sequence) - 1), sequence[gap_offset:]]
        assert per_step.size == end - start
        return InfillScore(per_step.astype(np.float64))
