"""Warm starts: a trained model turned into a meter- and chord-aware one that predicts exactly what it did, and
`train(from_bundle=..., model_config={conditions})` / `melodyrnn train --from B --condition-meter` starting there."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_training import TINY_MODEL, tiny_melodies

from melodyrnn.bundle import load_bundle, save_bundle
from melodyrnn.cli import main as cli_main
from melodyrnn.conditioning import step_conditions
from melodyrnn.dataset import PreparedData
from melodyrnn.errors import MelodyRNNError
from melodyrnn.model import ModelConfig, build_model
from melodyrnn.training import train
from melodyrnn.warm_start import add_conditions, widened_config

FAST = {"seq_len": 16, "batch_size": 4, "max_minutes": None}


@pytest.fixture(scope="module")
def plain():
    model = build_model(ModelConfig(**TINY_MODEL))
    rng = np.random.default_rng(0)
    for w in model.weights:  # far from the initializers, so a weight that is not copied shows
        w.assign(rng.normal(0, 0.5, tuple(w.shape)).astype("float32"))
    return model


def _conditions(steps: int, meter=(6, 8), chords=((0, "D:maj"), (12, "A:7"))) -> np.ndarray:
    return step_conditions(steps + 1, 4, ((0, *meter),), chords)[1:][None]  # those of the step each input predicts


def test_a_warm_start_predicts_exactly_what_the_model_did_whatever_the_conditions(plain):
    ids = np.random.default_rng(1).integers(0, plain.config.vocab_size, (1, 24)).astype("int32")
    new = add_conditions(plain, condition_meter=True, condition_chords=True)
    assert new.config.condition_meter and new.config.condition_chords
    assert new.config.to_dict() | {"condition_meter": False, "condition_chords": False} == plain.config.to_dict()
    before = np.asarray(plain(ids))
    for conditions in (_conditions(24), _conditions(24, (3, 4), ((0, "C:min"),)), None):
        inputs = {"ids": ids} if conditions is None else {"ids": ids, "conditions": conditions}
        assert np.array_equal(np.asarray(new(inputs)), before)
    kernel = np.asarray(new.recurrent[0].weights[0])
    assert kernel.shape[0] == plain.config.embedding_dim + new.conditions.features
    assert not kernel[plain.config.embedding_dim :].any()  # the new inputs' rows start at zero


def test_adding_chords_to_a_meter_aware_model_keeps_what_it_learnt_of_the_meter(plain):
    metered = add_conditions(plain, condition_meter=True)
    rng = np.random.default_rng(2)
    for w in metered.weights:
        w.assign(rng.normal(0, 0.5, tuple(w.shape)).astype("float32"))
    both = add_conditions(metered, condition_chords=True)
    ids = rng.integers(0, plain.config.vocab_size, (1, 20)).astype("int32")
    conditions = _conditions(20)
    assert np.array_equal(
        np.asarray(both({"ids": ids, "conditions": conditions})),
        np.asarray(metered({"ids": ids, "conditions": conditions})),
    )


def test_a_warm_start_only_adds_conditions(plain):
    with pytest.raises(MelodyRNNError, match=r"can only add conditions .* cannot change \['units'\]"):
        add_conditions(plain, condition_meter=True, units=16)
    chords_only = add_conditions(plain, condition_chords=True)
    with pytest.raises(MelodyRNNError, match="cannot turn off a condition"):
        widened_config(chords_only.config, {"condition_chords": False})
    with pytest.raises(MelodyRNNError, match="cannot add the meter to a model that reads only chords"):
        add_conditions(chords_only, condition_meter=True)
    with pytest.raises(MelodyRNNError, match="`condition_dim` cannot change"):
        add_conditions(chords_only, condition_dim=8)
    with pytest.raises(MelodyRNNError, match="must be a melodyrnn MelodyModel"):
        add_conditions("model.melodyrnn", condition_meter=True)


def test_train_from_a_bundle_with_conditions_starts_where_the_bundle_was(plain, tmp_path):
    bundle = save_bundle(tmp_path / "plain.melodyrnn", plain)
    melodies = [replace(m, chords=((0, "C:maj"), (16, "G:7"))) for m in tiny_melodies(8)]
    data = PreparedData.from_melodies(melodies, validation_fraction=0.3)
    result = train(
        data,
        tmp_path / "run",
        {"condition_meter": True, "condition_chords": True},
        {**FAST, "updates": 2, "patience": None},
        from_bundle=bundle,
        progress=False,
    )
    assert result.start["from"] == str(bundle)
    tuned = load_bundle(result.latest_path).model_config
    assert tuned.condition_meter and tuned.condition_chords and tuned.units == plain.config.units
    # epoch 0 scores the warm start: the conditions cannot move it, so it is the bundle's own score
    untouched = train(data, tmp_path / "run_plain", None, {**FAST, "updates": 2}, from_bundle=bundle, progress=False)
    assert result.history[0]["val_loss"] == pytest.approx(untouched.history[0]["val_loss"], abs=1e-5)
    with pytest.raises(MelodyRNNError, match="can only add conditions"):
        train(data, tmp_path / "run2", {"units": 16}, from_bundle=bundle, progress=False)
    assert not (tmp_path / "run2").exists()


def test_cli_train_from_a_bundle_takes_the_condition_flags_only(plain, tmp_path, capsys):
    bundle = save_bundle(tmp_path / "plain.melodyrnn", plain)
    data = PreparedData.from_melodies(tiny_melodies(8), validation_fraction=0.3)
    data.save(tmp_path / "data.npz")
    common = ["train", str(tmp_path / "data.npz"), "--from", str(bundle), "--seq-len", "16", "--batch-size", "4"]
    assert cli_main([*common, "-o", str(tmp_path / "run"), "--condition-meter", "--updates", "1", "--no-progress"]) == 0
    assert load_bundle(tmp_path / "run" / "latest.melodyrnn").model_config.condition_meter
    assert cli_main([*common, "-o", str(tmp_path / "run2"), "--condition-meter", "--units", "16"]) != 0
    assert "model flags (--units) cannot change the model" in capsys.readouterr().err
