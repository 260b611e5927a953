"""Warm starts: a trained melody model turned into a meter- or chord-aware one that starts out predicting exactly
what it did, so fine-tuning teaches it the conditions instead of relearning melodies from scratch.

Start at `add_conditions(model, meter=True, chords=True)`; `melodyrnn.training.train` calls it for `from_bundle`
with a `model_config` that only turns conditions on (`melodyrnn train --from BUNDLE --condition-meter ...`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from melodyrnn.errors import MelodyRNNError
from melodyrnn.model import MelodyModel, ModelConfig, build_model

__all__ = ["CONDITION_FIELDS", "add_conditions", "widened_config"]

#: The `ModelConfig` fields a warm start may change; every other field is the starting model's.
CONDITION_FIELDS = ("condition_meter", "condition_chords", "condition_dim")


def widened_config(config: ModelConfig, changes: dict) -> ModelConfig:
    """`config` with `changes` (a dict of `ModelConfig` fields) applied, which may only turn conditions on.

    Raises:
        MelodyRNNError: `changes` alters a field outside `CONDITION_FIELDS`, turns a condition off, or changes the
            width of conditions the model already reads.
    """
    base = config.to_dict()
    changed = {k: v for k, v in dict(changes).items() if base.get(k, object()) != v}
    other = sorted(set(changed) - set(CONDITION_FIELDS))
    if other:
        raise MelodyRNNError(
            f"a warm start can only add conditions ({', '.join(CONDITION_FIELDS)}); it cannot change {other}"
        )
    new = ModelConfig.from_dict({**base, **changed})
    if (config.condition_meter and not new.condition_meter) or (config.condition_chords and not new.condition_chords):
        raise MelodyRNNError("a warm start cannot turn off a condition the model already reads")
    if config.condition_chords and not config.condition_meter and new.condition_meter:
        # the meter's features come first in ConditionEmbedding: the chords' rows would have to move
        raise MelodyRNNError("a warm start cannot add the meter to a model that reads only chords")
    if config.conditioned and new.condition_dim != config.condition_dim:
        raise MelodyRNNError(
            f"`condition_dim` cannot change for a model that already reads conditions ({config.condition_dim})"
        )
    return new


def add_conditions(model: MelodyModel, **changes) -> MelodyModel:
    """A copy of `model` that also reads the conditions `changes` turns on, with the same predictions.

    Every weight is copied. The first recurrent layer's input kernel grows by one row per new condition feature
    (`ConditionEmbedding.features`), and those rows are zero, so whatever the conditions say, the new model's
    logits equal the old one's to the last bit until training moves them; the new condition embeddings start
    random (their gradient flows once the rows move off zero). Conditions the model already read keep their
    weights.

    Args:
        model: a built `MelodyModel`.
        **changes: `ModelConfig` fields among `CONDITION_FIELDS`, e.g. ``condition_meter=True,
            condition_chords=True``.

    Returns:
        A new, built, uncompiled `MelodyModel` of `widened_config(model.config, changes)`.

    Raises:
        MelodyRNNError: `model` is not a `MelodyModel`, or `changes` are not a warm start (`widened_config`).
    """
    if not isinstance(model, MelodyModel):
        raise MelodyRNNError(f"`model` must be a melodyrnn MelodyModel, got {type(model).__name__}")
    config = widened_config(model.config, changes)
    if config == model.config:
        config = replace(config)  # nothing to add: a plain copy
    new = build_model(config)
    old_events = model._input_features() - (model.conditions.features if model.conditions is not None else 0)
    old_conditions = model.conditions.features if model.conditions is not None else 0
    for old_layer, new_layer in _layer_pairs(model, new):
        for old_w, new_w in zip(old_layer.weights, new_layer.weights):
            value = np.asarray(old_w.numpy())
            if old_layer is model.recurrent[0] and value.shape != tuple(new_w.shape):
                value = _grown_kernel(value, new, old_events, old_conditions)
            new_w.assign(value)
    return new


def _layer_pairs(old: MelodyModel, new: MelodyModel) -> list:
    """(old layer, new layer) for every layer with weights; the condition embedding only when both have it."""
    pairs = [(old.embedding, new.embedding), *zip(old.recurrent, new.recurrent), *zip(old.norms, new.norms)]
    if old.attention is not None:
        pairs.append((old.attention, new.attention))
    pairs.append((old.logits, new.logits))
    if old.conditions is not None and new.conditions is not None:
        for name, table in old.conditions.tables.items():
            pairs.append((table, new.conditions.tables[name]))
    return pairs


def _grown_kernel(kernel: np.ndarray, new: MelodyModel, events: int, old_conditions: int) -> np.ndarray:
    """The first recurrent layer's input kernel `(events + old_conditions, gates)` placed in one of the new model's
    width, zero elsewhere. The new condition features sit after the events; when the model already read meter and
    now adds chords, the meter's features keep their rows (they come first in `ConditionEmbedding`)."""
    grown = np.zeros((new._input_features(), kernel.shape[1]), kernel.dtype)
    grown[: events + old_conditions] = kernel
    return grown
