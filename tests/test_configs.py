"""configs: one dict round trip and one set of checks for every config dataclass."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from melodyrnn.configs import check, is_int, is_real
from melodyrnn.encoding import EncodingConfig
from melodyrnn.errors import MelodyRNNError
from melodyrnn.extraction import ExtractionConfig
from melodyrnn.model import ModelConfig
from melodyrnn.sample_config import SampleConfig
from melodyrnn.training import TrainConfig

CONFIGS = [
    (EncodingConfig, "encoding config"),
    (ExtractionConfig, "extraction config"),
    (ModelConfig, "model config"),
    (TrainConfig, "train config"),
    (SampleConfig, "sample config"),
]


@pytest.mark.parametrize("cls, what", CONFIGS)
def test_every_config_round_trips_through_json(cls, what):
    config = cls()
    assert cls.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    if cls is not ModelConfig:  # a model config without the attention shortcut fields predates them (test_model)
        assert cls.from_dict({}) == config  # missing fields take their defaults


@pytest.mark.parametrize("cls, what", CONFIGS)
def test_an_unknown_key_is_named(cls, what):
    with pytest.raises(MelodyRNNError, match=rf"unknown {what} fields \['colour', 'size'\]; known fields are"):
        cls.from_dict({"size": 1, "colour": "red"})


@pytest.mark.parametrize("cls, what", CONFIGS)
def test_a_non_dict_is_refused(cls, what):
    with pytest.raises(MelodyRNNError, match=f"a {what} must be a dict, got list"):
        cls.from_dict([1, 2])


def test_a_value_that_breaks_a_check_is_a_melodyrnn_error_not_a_type_error():
    with pytest.raises(MelodyRNNError, match="`min_pitch` must be an integer in"):
        EncodingConfig.from_dict({"min_pitch": "low"})
    with pytest.raises(MelodyRNNError, match="invalid extraction config"):
        ExtractionConfig.from_dict({"gap_bars": "one"})


def test_the_checks():
    check(True, "never raised")
    with pytest.raises(MelodyRNNError, match="^`x` must be > 0, got 0$"):
        check(False, "`x` must be > 0, got 0")
    assert is_int(3) and is_int(np.int64(3)) and not is_int(True) and not is_int(3.0)
    assert is_real(0.5) and is_real(2) and not is_real(math.nan) and not is_real(math.inf) and not is_real(False)
