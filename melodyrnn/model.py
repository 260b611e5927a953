"""The network: `ModelConfig` → `build_model()` → `MelodyModel`, with the single-step call the sampler runs.

Start with `build_model(ModelConfig())` (embedding → LSTM → causal self-attention → LSTM → logits), then
`MelodyModel.initial_state` / `MelodyModel.step` for sampling one step at a time. The attention block lives in
attention.py, the lookback embedding in lookback.py, and the one-file saved model in bundle.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import keras
from keras import ops

from melodyrnn import conditioning as cond
from melodyrnn import layers as rnn_layers
from melodyrnn.attention import CausalSelfAttention
from melodyrnn.configs import Config, config_from_dict, is_int, is_real
from melodyrnn.errors import MelodyRNNError
from melodyrnn.lookback import LookbackEmbedding

__all__ = ["ConditionEmbedding", "ModelConfig", "MelodyModel", "build_model"]

_PACKAGE = "melodyrnn"  # bundles store the registered name "melodyrnn>MelodyModel": never change it
_CELLS = {"lstm": rnn_layers.LSTM, "gru": rnn_layers.GRU, "rnn": rnn_layers.SimpleRNN}


# ----------------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class ModelConfig(Config):
    """The shape of the network. Defaults are the shipped default model's (melodyrnn/pretrained/).

    Attributes:
        cell: recurrent cell, "lstm", "gru" or "rnn" (melodyrnn's own layers).
        num_layers: recurrent layers, >= 1.
        units: width of every recurrent layer (and of the attention block).
        embedding_dim: width of the token embedding.
        dropout: rate in [0, 1) after each recurrent layer and on the attention output (training only).
        layer_norm: layer normalization on the output of each recurrent layer.
        residual: add each recurrent layer's input to its output (layers after the first, whose input is
            already `units` wide).
        attention: one causal multi-head self-attention block (residual + layer norm) after the first
            recurrent layer.
        attention_heads: heads of that block.
        attention_key_dim: width per head; None means `units // attention_heads`.
        attention_window: past steps each step attends to, itself included; also the size of the sampler's
            key/value cache. The full-sequence call uses the same sliding window, so both agree.
        attention_relative_bias: a learned score bias per head for each distance back (relative attention).
        attention_previous_key: keys also see the step before, so attention can find where the current context
            happened before and bring back what followed it (see `CausalSelfAttention`).
        lookback: feed the events one and two bars back, whether the current event repeats them, and a
            binary counter of the position in the bar (MelodyRNN's lookback configuration), computed inside
            the model from the token ids. Pass the model `{"ids": ids, "bar": steps_per_bar}` to give each melody
            its own bar length; plain ids use `steps_per_bar`.
        steps_per_bar: the lookback's bar length, in steps, for plain ids (16 = 4/4 at 4 steps per quarter).
        max_steps_per_bar: the longest bar the lookback accepts, in steps (64 = 16/4 at 4 steps per quarter;
            folk collections hold 9/4 and 12/4 tunes); it sizes the history the sampler carries and the bits of
            the position counter, so it is part of the network's shape. At least `steps_per_bar`.
        vocab_size: number of token ids; take it from `EncodingConfig.vocab_size`.
        condition_meter: the model also reads, at every step, where the step it predicts falls in the bar, its
            metrical level and the meter (`melodyrnn.conditioning`); pass `{"ids": ..., "conditions": ...}`.
        condition_chords: the model also reads the chord sounding at the step it predicts (root, quality, its
            tones) and the steps to the next chord change; "no chord" has its own id, so it generates without.
        condition_dim: width of each conditioning embedding.

    Raises:
        MelodyRNNError: a field out of range or of the wrong type.
    """

    cell: str = "lstm"
    num_layers: int = 2
    units: int = 128
    embedding_dim: int = 64
    dropout: float = 0.1
    layer_norm: bool = False
    residual: bool = False
    attention: bool = True
    attention_heads: int = 4
    attention_key_dim: int | None = None
    attention_window: int = 512
    attention_relative_bias: bool = True
    attention_previous_key: bool = True
    lookback: bool = False
    steps_per_bar: int = 16
    max_steps_per_bar: int = 64
    vocab_size: int = 130
    condition_meter: bool = False
    condition_chords: bool = False
    condition_dim: int = 16

    what: ClassVar[str] = "model config"
    #: Upper bounds on the network's shape: far above any melody model worth training on one machine, and low
    #: enough that a hand-edited or hostile bundle cannot ask for gigabytes before its weights are checked.
    limits: ClassVar[dict[str, int]] = {
        "num_layers": 16,
        "units": 2048,
        "embedding_dim": 2048,
        "attention_heads": 64,
        "attention_key_dim": 1024,
        "attention_window": 8192,
        "vocab_size": 4096,
        "condition_dim": 1024,
    }

    def __post_init__(self):
        check = self._require

        def bounded(name: str, optional: bool = False):
            value, top = getattr(self, name), self.limits[name]
            check(
                (optional and value is None) or (is_int(value) and 1 <= value <= top),
                name,
                f"an integer in [1, {top}]" + (" or None" if optional else ""),
            )

        check(self.cell in _CELLS, "cell", f"one of {sorted(_CELLS)}")
        for name in ("num_layers", "units", "embedding_dim", "attention_heads", "attention_window", "condition_dim"):
            bounded(name)
        bounded("attention_key_dim", optional=True)
        check(is_real(self.dropout) and 0 <= self.dropout < 1, "dropout", "a float in [0, 1)")
        for name in (
            "layer_norm",
            "residual",
            "attention",
            "attention_relative_bias",
            "attention_previous_key",
            "lookback",
            "condition_meter",
            "condition_chords",
        ):
            check(isinstance(getattr(self, name), bool), name, "True or False")
        if self.attention and self.attention_key_dim is None and self.units < self.attention_heads:
            raise MelodyRNNError(
                f"`attention_heads` must be <= units={self.units} when `attention_key_dim` is None, "
                f"got {self.attention_heads!r}"
            )
        check(
            is_int(self.steps_per_bar) and 1 <= self.steps_per_bar <= 1024, "steps_per_bar", "an integer in [1, 1024]"
        )
        check(
            is_int(self.max_steps_per_bar)
            and 1 <= self.max_steps_per_bar <= 1024
            and (not is_int(self.steps_per_bar) or self.max_steps_per_bar >= self.steps_per_bar),
            "max_steps_per_bar",
            f"an integer in [steps_per_bar={self.steps_per_bar}, 1024]",
        )
        check(
            is_int(self.vocab_size) and 3 <= self.vocab_size <= self.limits["vocab_size"],
            "vocab_size",
            f"an integer in [3, {self.limits['vocab_size']}]",
        )

    @property
    def conditioned(self) -> bool:
        """Whether the model reads conditions (meter or chords) beside the ids."""
        return self.condition_meter or self.condition_chords

    @property
    def key_dim(self) -> int:
        """Width per attention head, `attention_key_dim` or `units // attention_heads`."""
        return self.attention_key_dim or max(1, self.units // self.attention_heads)

    @classmethod
    def from_dict(cls, d: Any) -> ModelConfig:
        """The inverse of `to_dict`; missing fields take their defaults, except that a dict with neither
        `attention_relative_bias` nor `attention_previous_key` (saved before they existed) gets both False.

        Raises:
            MelodyRNNError: `d` is not a dict, has unknown fields, or a field is invalid.
        """
        if isinstance(d, dict) and d.get("lookback") and "max_steps_per_bar" not in d:
            # lookback bundles saved before the field sized their counter from steps_per_bar
            d = {**d, "max_steps_per_bar": d.get("steps_per_bar", cls.steps_per_bar)}
        if isinstance(d, dict) and "attention_relative_bias" not in d and "attention_previous_key" not in d:
            # configs saved before these fields had plain content attention
            d = {**d, "attention_relative_bias": False, "attention_previous_key": False}
        return config_from_dict(cls, d)


# ----------------------------------------------------------------------------------------------------------
# Conditions


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConditionEmbedding(keras.layers.Layer):
    """Per-step conditions (`melodyrnn.conditioning.step_conditions`'s ids) → features added to the event's.

    With `meter`: the embeddings of the position in the bar, the metrical level and the meter, summed
    (`output_dim` features). With `chords`: the embeddings of the chord's root, its quality and the distance to
    the next change, summed, then the chord's 12 pitch classes as 0/1 (`output_dim + 12` features), so a chord
    seen in one key tells the model about the others. Chord id 0 (no chord) has a root and quality row of its own.

    Args:
        output_dim: width of each embedding.
        meter, chords: which conditions to read (at least one).

    Call args:
        conditions: int `(..., NUM_FIELDS)`.

    Returns:
        float `(..., features)`.
    """

    def __init__(self, output_dim: int = 16, meter: bool = True, chords: bool = False, **kwargs):
        super().__init__(**kwargs)
        if not (meter or chords):
            raise MelodyRNNError("`ConditionEmbedding` needs `meter` or `chords`")
        self.output_dim, self.meter, self.chords = int(output_dim), bool(meter), bool(chords)
        sizes: dict[str, int] = {}
        if self.meter:
            sizes.update(position=cond.MAX_POSITION, level=cond.NUM_LEVELS, meter=cond.NUM_METERS)
        if self.chords:
            sizes.update(root=13, quality=len(cond.QUALITIES) + 1, change=cond.MAX_CHANGE + 1)
        self.tables = {k: keras.layers.Embedding(n, self.output_dim, name=k) for k, n in sizes.items()}

    @property
    def features(self) -> int:
        return self.output_dim * (self.meter + self.chords) + 12 * self.chords

    def build(self, input_shape=None):
        for table in self.tables.values():
            table.build((None,))
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.features,)

    def call(self, conditions):
        c = ops.cast(conditions, "int32")
        t = self.tables
        parts = []
        if self.meter:
            position, level, meter = (c[..., i] for i in (cond.POSITION, cond.LEVEL, cond.METER))
            parts.append(t["position"](position) + t["level"](level) + t["meter"](meter))
        if self.chords:
            chord = c[..., cond.CHORD]
            known = ops.minimum(chord, 1)  # 0 for no chord: root and quality row 0
            root, quality = known * ((chord - 1) % 12 + 1), known * ((chord - 1) // 12 + 1)
            parts.append(t["root"](root) + t["quality"](quality) + t["change"](c[..., cond.CHANGE]))
            tones = ops.convert_to_tensor(cond.chord_tone_table(), dtype=self.compute_dtype)
            parts.append(ops.take(tones, chord, axis=0))
        return ops.concatenate(parts, axis=-1)

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim, "meter": self.meter, "chords": self.chords}


def _default_conditions(steps_per_bar: int, step):
    """int32 `(..., NUM_FIELDS)` for a model given no conditions: step(s) `step` of 4/4 bars of `steps_per_bar`
    steps, counted from the first input, with no chords."""
    position = step % steps_per_bar
    levels = ops.convert_to_tensor(cond.four_four_levels(steps_per_bar), "int32")
    fields = [ops.minimum(position, cond.MAX_POSITION - 1), ops.take(levels, position, axis=0)]
    fields += [ops.ones_like(position), ops.zeros_like(position), ops.full_like(position, cond.MAX_CHANGE)]
    return ops.stack(fields, axis=-1)


# ----------------------------------------------------------------------------------------------------------
# The model


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MelodyModel(keras.Model):
    """Next-event model: token ids `(batch, steps)` → logits `(batch, steps, vocab_size)`.

    Inputs are int ids `(batch, steps)`, or a dict `{"ids": int (batch, steps), "bar": int (batch,)}` that gives
    each row its steps per bar (rows must start on a bar line). Only the lookback embedding reads "bar"; plain
    ids mean `config.steps_per_bar`, counted from the first id. A conditioned model (`condition_meter`,
    `condition_chords`) also reads `"conditions"`, int `(batch, steps, NUM_FIELDS)`: at position t those of step
    t + 1, the step it predicts (`melodyrnn.conditioning.step_conditions(...)[1:]`); without them it assumes 4/4
    bars of `steps_per_bar` steps from the first id and no chords.

    Embedding (or `LookbackEmbedding`) → recurrent layers (each followed by dropout, and optionally a residual
    and a layer norm) with an optional `CausalSelfAttention` block after the first → Dense logits. The model
    carries its `ModelConfig` (`model.config`), which is saved with it.

    `initial_state` / `step` run the same network one step at a time for the sampler, with fixed-shape state.

    Args:
        config: a `ModelConfig` (or its dict).
    """

    def __init__(self, config: ModelConfig | dict = ModelConfig(), **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        if not isinstance(config, ModelConfig):
            raise MelodyRNNError(f"`config` must be a ModelConfig, got {type(config).__name__}")
        self.config = c = config
        if c.lookback:
            self.embedding = LookbackEmbedding(
                c.vocab_size, c.embedding_dim, c.steps_per_bar, c.max_steps_per_bar, name="lookback"
            )
        else:
            self.embedding = keras.layers.Embedding(c.vocab_size, c.embedding_dim, name="embedding")
        self.conditions = (
            ConditionEmbedding(c.condition_dim, c.condition_meter, c.condition_chords, name="conditions")
            if c.conditioned
            else None
        )
        cell = _CELLS[c.cell]
        self.recurrent = [cell(c.units, return_sequences=True, name=f"{c.cell}_{i}") for i in range(c.num_layers)]
        self.dropouts = [keras.layers.Dropout(c.dropout, name=f"dropout_{i}") for i in range(c.num_layers)]
        self.norms = (
            [keras.layers.LayerNormalization(epsilon=1e-5, name=f"norm_{i}") for i in range(c.num_layers)]
            if c.layer_norm
            else []
        )
        self.attention = (
            CausalSelfAttention(
                c.attention_heads,
                c.key_dim,
                window=c.attention_window,
                dropout=c.dropout,
                relative_bias=c.attention_relative_bias,
                previous_key=c.attention_previous_key,
                name="attention",
            )
            if c.attention
            else None
        )
        self.logits = keras.layers.Dense(c.vocab_size, name="logits")

    def _input_features(self) -> int:
        c = self.config
        events = self.embedding.features if c.lookback else c.embedding_dim
        return events + (self.conditions.features if self.conditions is not None else 0)

    def build(self, input_shape=None):
        c = self.config
        self.embedding.build((None, None))
        if self.conditions is not None:
            self.conditions.build()
        features = self._input_features()
        for i, rnn in enumerate(self.recurrent):
            rnn.build((None, None, features))
            features = c.units
            if self.norms:
                self.norms[i].build((None, None, c.units))
            if i == 0 and self.attention is not None:
                self.attention.build((None, None, c.units))
        self.logits.build((None, None, c.units))
        self.built = True

    def _after_recurrent(self, i, inputs, outputs, training=None):
        outputs = self.dropouts[i](outputs, training=training)
        if self.config.residual and i > 0:
            outputs = outputs + inputs
        if self.norms:
            outputs = self.norms[i](outputs)
        return outputs

    def _with_conditions(self, x, conditions, step):
        if self.conditions is None:
            return x
        if conditions is None:
            conditions = _default_conditions(self.config.steps_per_bar, step)
            conditions = ops.broadcast_to(conditions, tuple(ops.shape(x)[:-1]) + (cond.NUM_FIELDS,))
        return ops.concatenate([x, ops.cast(self.conditions(conditions), x.dtype)], axis=-1)

    def call(self, inputs, training=None):
        bar = conditions = None
        if isinstance(inputs, dict):
            inputs, bar, conditions = inputs["ids"], inputs.get("bar"), inputs.get("conditions")
        ids = ops.cast(inputs, "int32")
        x = self.embedding(ids, bar) if self.config.lookback else self.embedding(ids)
        x = self._with_conditions(x, conditions, ops.arange(1, ops.shape(ids)[1] + 1, dtype="int32")[None])
        for i, rnn in enumerate(self.recurrent):
            x = self._after_recurrent(i, x, rnn(x, training=training), training)
            if i == 0 and self.attention is not None:
                x = self.attention(x, training=training)
        return self.logits(x)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["ids"]
        return tuple(input_shape) + (self.config.vocab_size,)

    def initial_state(self, batch_size, steps_per_bar=None) -> dict:
        """The state before the first step, a dict of tensors each with a leading batch axis.

        Keys: `"rnn"`, a list (one per recurrent layer) of lists of float `(batch, units)` tensors; with
        attention `"attention"`, its key/value cache (see `CausalSelfAttention.initial_cache`); with lookback
        `"lookback"`, the recent ids and the bar length (see `LookbackEmbedding.initial_history`); conditioned,
        `"step"`, int32 `(batch,)` inputs seen (for steps given no conditions). Every leaf has a
        leading batch axis, so beam search can reorder a state with one gather per leaf.

        Args:
            batch_size: rows.
            steps_per_bar: the lookback's bar length: None (`config.steps_per_bar`), an int, or int `(batch,)`;
                other models ignore it.

        Raises:
            MelodyRNNError: a concrete `steps_per_bar` outside `[1, config.max_steps_per_bar]`.
        """
        if not self.built:
            self.build()
        state: dict[str, Any] = {"rnn": [list(rnn.get_initial_state(batch_size)) for rnn in self.recurrent]}
        if self.attention is not None:
            state["attention"] = self.attention.initial_cache(batch_size)
        if self.config.lookback:
            state["lookback"] = self.embedding.initial_history(batch_size, steps_per_bar)
        if self.conditions is not None:
            state["step"] = ops.zeros((batch_size,), "int32")
        return state

    def step(self, token_ids, state: dict, conditions=None):
        """One step: the logits for the next event, equal to that position of the full-sequence call.

        Args:
            token_ids: int `(batch,)`, this step's ids.
            state: from `initial_state` or the previous step.
            conditions: a conditioned model's int `(batch, NUM_FIELDS)`, those of the step predicted; None assumes
                4/4 and no chords, as `call` does. Other models ignore it.

        Returns:
            `(logits, new_state)`: logits float `(batch, vocab_size)`, new_state like `state`.
        """
        if not self.built:
            self.build()
        ids = ops.cast(token_ids, "int32")
        new_state: dict = {}
        if self.config.lookback:
            x, new_state["lookback"] = self.embedding.step(ids, state["lookback"])
        else:
            x = self.embedding(ids)
        if self.conditions is not None:
            x = self._with_conditions(x, conditions, state["step"] + 1)
            new_state["step"] = state["step"] + 1
        new_state["rnn"] = []
        for i, rnn in enumerate(self.recurrent):
            outputs, states = rnn.step(x, state["rnn"][i])
            new_state["rnn"].append(list(states))
            x = self._after_recurrent(i, x, outputs, training=False)
            if i == 0 and self.attention is not None:
                x, new_state["attention"] = self.attention.step(x, state["attention"])
        return self.logits(x), new_state

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "model_config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        return cls(ModelConfig.from_dict(config.pop("model_config")), **config)


def build_model(config: ModelConfig = ModelConfig()) -> MelodyModel:
    """Builds the network described by `config`, with its weights created.

    Args:
        config: the model's shape; `config.vocab_size` must match the `EncodingConfig` of the data.

    Returns:
        A built, uncompiled `MelodyModel`: int32 ids `(batch, steps)` (or `{"ids": ..., "bar": (batch,)}`) →
        float32 logits `(batch, steps, vocab)`.

    Raises:
        MelodyRNNError: `config` is not a `ModelConfig`.

    Example:
        >>> model = build_model(ModelConfig(units=128, vocab_size=EncodingConfig().vocab_size))
        >>> model(np.zeros((2, 16), "int32")).shape
        TensorShape([2, 16, 130])
    """
    if not isinstance(config, ModelConfig):
        raise MelodyRNNError(f"`config` must be a ModelConfig, got {type(config).__name__}")
    model = MelodyModel(config, name="melody_model")
    model.build()
    return model
