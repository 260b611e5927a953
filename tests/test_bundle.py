"""Tests for melodyrnn.bundle: save → load gives the same model, metadata without the model, and the guards
against missing, truncated, corrupt, foreign and unsafe files; the shipped default model loads."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
from test_model import STEPS, TINY, VARIANTS, VOCAB, compile_model, random_ids, step_through, tiny_data

import melodyrnn
from melodyrnn.bundle import (
    BUNDLE_FORMAT,
    DEFAULT_BUNDLE_PATH,
    load,
    load_bundle,
    read_bundle_metadata,
    save_bundle,
)
from melodyrnn.encoding import EncodingConfig
from melodyrnn.errors import BundleError, MelodyRNNError
from melodyrnn.model import MelodyModel, ModelConfig, build_model


@pytest.fixture(scope="module")
def saved_bundle(tmp_path_factory):
    keras.utils.set_random_seed(3)
    model = compile_model(build_model(VARIANTS["everything"]))
    data = tiny_data().dataset(seq_len=STEPS, batch_size=8, split="all", seed=0)
    model.fit(data, epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("bundle") / "tiny.melodyrnn"
    metadata = {"data": {"melodies": 6}, "metrics": {"nll": np.float32(1.5)}}
    save_bundle(path, model, VARIANTS["everything"], EncodingConfig(), metadata)
    return path, model


def test_save_writes_one_zip_with_json_and_keras_model(saved_bundle):
    path, _ = saved_bundle
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["bundle.json", "model.keras"]
        header = json.loads(zf.read("bundle.json"))
    assert header["format"] == BUNDLE_FORMAT and header["format_version"] == 1
    assert ModelConfig.from_dict(header["model_config"]) == VARIANTS["everything"]
    assert {"melodyrnn", "keras", "backend", "tensorflow", "numpy"} <= set(header["metadata"]["versions"])
    assert header["metadata"]["metrics"]["nll"] == 1.5 and "created" in header["metadata"]


def test_save_load_gives_identical_predictions(saved_bundle):
    path, model = saved_bundle
    ids = random_ids()
    expected = np.asarray(model(ids))
    for bundle in (load_bundle(path), load(path), melodyrnn.load(path)):
        assert isinstance(bundle.model, MelodyModel)
        assert bundle.model_config == VARIANTS["everything"]
        assert bundle.encoding == EncodingConfig()
        assert bundle.metadata["data"] == {"melodies": 6}
        np.testing.assert_array_equal(np.asarray(bundle.model(ids)), expected)
        np.testing.assert_allclose(step_through(bundle.model, ids), expected, atol=1e-5)


def test_a_lookback_bundle_trained_with_bars_predicts_identically_after_load(tmp_path):
    keras.utils.set_random_seed(5)
    config = ModelConfig(**TINY, lookback=True, attention_window=6, max_steps_per_bar=16)
    model = compile_model(build_model(config))
    model.fit(tiny_data().dataset(seq_len=16, batch_size=8, split="all", seed=0, with_bars=True), epochs=1, verbose=0)
    save_bundle(tmp_path / "lb.melodyrnn", model)
    inputs = {"ids": random_ids(steps=40), "bar": np.array([12, 16, 6], "int32")}
    loaded = load_bundle(tmp_path / "lb.melodyrnn").model  # safe mode
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), np.asarray(model(inputs)))
    np.testing.assert_allclose(step_through(loaded, inputs["ids"], inputs["bar"]), np.asarray(model(inputs)), atol=1e-5)


def test_metadata_is_read_without_the_model(tmp_path, saved_bundle):
    path, _ = saved_bundle
    metadata = read_bundle_metadata(path)
    assert metadata == load_bundle(path, compile=False).metadata
    assert metadata["data"] == {"melodies": 6} and metadata["metrics"]["nll"] == 1.5
    # the model member is not even read: a broken one does not hide the metadata
    broken = rewrite(path, tmp_path / "broken.melodyrnn", model_bytes=b"not a keras file")
    assert read_bundle_metadata(broken) == metadata
    assert read_bundle_metadata(tmp_path / "nope.melodyrnn") is None
    noise = tmp_path / "noise.melodyrnn"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    assert read_bundle_metadata(noise) is None
    other = rewrite(path, tmp_path / "v2.melodyrnn", header=lambda h: {**h, "format_version": 2})
    assert read_bundle_metadata(other) is None


def test_load_restores_the_optimizer_state(saved_bundle):
    path, model = saved_bundle
    restored = load_bundle(path).model
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) > 0
    for a, b in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    data = tiny_data().dataset(seq_len=STEPS, batch_size=8, split="all", seed=0)
    restored.fit(data, epochs=1, verbose=0)  # fine-tuning resumes
    assert int(restored.optimizer.iterations) > int(model.optimizer.iterations)


def test_save_overwrites_atomically_and_validates(tmp_path):
    path = tmp_path / "m.melodyrnn"
    model = build_model(VARIANTS["plain_rnn"])
    save_bundle(path, model)
    save_bundle(path, model, metadata={"run": 2})
    assert load_bundle(path, compile=False).metadata["run"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.melodyrnn"]
    with pytest.raises(MelodyRNNError, match="`encoding` must have vocab_size=130"):
        save_bundle(path, model, encoding=EncodingConfig(min_pitch=40, max_pitch=80))
    with pytest.raises(MelodyRNNError, match="`config` must equal"):
        save_bundle(path, model, replace(model.config, units=16))
    with pytest.raises(MelodyRNNError, match="`metadata` must be JSON-ready"):
        save_bundle(path, model, metadata={"when": object()})
    with pytest.raises(MelodyRNNError, match="MelodyModel"):
        save_bundle(path, keras.Sequential([keras.layers.Dense(2)]))


def test_missing_file(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope.melodyrnn")


def test_truncated_bundle(tmp_path, saved_bundle):
    data = saved_bundle[0].read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        path = tmp_path / f"cut{cut}.melodyrnn"
        path.write_bytes(data[:cut])
        with pytest.raises(BundleError, match="corrupt or truncated"):
            load_bundle(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.melodyrnn"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(BundleError, match="not a melodyrnn bundle"):
        load_bundle(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.melodyrnn"
    path.write_bytes(b"")
    with pytest.raises(BundleError, match="not a melodyrnn bundle"):
        load_bundle(path)


def test_zip_without_bundle_json(tmp_path):
    path = tmp_path / "foreign.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(BundleError, match="has no bundle.json"):
        load_bundle(path)


def test_plain_keras_file(tmp_path):
    path = tmp_path / "model.keras"
    build_model(VARIANTS["plain_lstm"]).save(path)
    with pytest.raises(BundleError, match="has no bundle.json"):
        load_bundle(path)


def rewrite(source, target, *, header=None, model_bytes=None):
    with zipfile.ZipFile(source) as zf:
        old_header, old_model = json.loads(zf.read("bundle.json")), zf.read("model.keras")
    header = header(old_header) if header else old_header
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("bundle.json", json.dumps(header))
        zf.writestr("model.keras", old_model if model_bytes is None else model_bytes)
    return target


def test_wrong_format_name_or_version(tmp_path, saved_bundle):
    path = rewrite(saved_bundle[0], tmp_path / "v2.melodyrnn", header=lambda h: {**h, "format_version": 2})
    with pytest.raises(BundleError, match="format version 2; this melodyrnn reads version 1"):
        load_bundle(path)
    path = rewrite(saved_bundle[0], tmp_path / "other.melodyrnn", header=lambda h: {**h, "format": "other"})
    with pytest.raises(BundleError, match="not a melodyrnn bundle"):
        load_bundle(path)


def test_corrupt_model_member(tmp_path, saved_bundle):
    path = rewrite(saved_bundle[0], tmp_path / "bad.melodyrnn", model_bytes=b"not a keras file")
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(path)
    path = rewrite(
        saved_bundle[0],
        tmp_path / "bad2.melodyrnn",
        model_bytes=b"not a keras file",
        header=lambda h: {**h, "files": {}},
    )
    with pytest.raises(BundleError, match="not a Keras model file"):
        load_bundle(path)


def test_bundle_with_a_lambda_layer_is_refused(tmp_path, saved_bundle):
    inputs = keras.Input((None,), dtype="int32")
    outputs = keras.layers.Lambda(lambda x: x * 2)(keras.layers.Embedding(VOCAB, 4)(inputs))
    evil = tmp_path / "evil.keras"
    keras.Model(inputs, outputs).save(evil)
    path = rewrite(
        saved_bundle[0], tmp_path / "evil.melodyrnn", model_bytes=evil.read_bytes(), header=lambda h: {**h, "files": {}}
    )
    with pytest.raises(BundleError, match="refused.*Lambda"):
        load_bundle(path)


def test_bundle_with_an_unknown_class_is_refused(tmp_path, saved_bundle):
    # rename a registered class in the Keras config to one from a foreign package
    with zipfile.ZipFile(saved_bundle[0]) as zf:
        model_bytes = zf.read("model.keras")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(model_bytes)) as inner, zipfile.ZipFile(out, "w") as new:
        for info in inner.infolist():
            data = inner.read(info.filename)
            if info.filename == "config.json":
                data = data.replace(b'"melodyrnn>MelodyModel"', b'"evil>Payload"').replace(
                    b'"melodyrnn.model"', b'"evil"'
                )
            new.writestr(info.filename, data)
    path = rewrite(
        saved_bundle[0], tmp_path / "foreign.melodyrnn", model_bytes=out.getvalue(), header=lambda h: {**h, "files": {}}
    )
    with pytest.raises(BundleError, match="refused.*evil"):
        load_bundle(path)


def _with_keras_config(saved, edit) -> bytes:
    """saved's model.keras with its config.json bytes passed through `edit`."""
    with zipfile.ZipFile(saved) as zf:
        model_bytes = zf.read("model.keras")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(model_bytes)) as inner, zipfile.ZipFile(out, "w") as new:
        for info in inner.infolist():
            data = inner.read(info.filename)
            new.writestr(info.filename, edit(data) if info.filename == "config.json" else data)
    return out.getvalue()


@pytest.mark.parametrize("module", [b'"os"', b'"evil.melodyrnn"', b'"keras_evil"', b'"melodyrnn_x.model"'])
def test_a_melodyrnn_name_from_a_foreign_module_is_refused(tmp_path, saved_bundle, module):
    # Keras imports an object's module when it deserializes it: the registered name alone proves nothing
    model_bytes = _with_keras_config(saved_bundle[0], lambda d: d.replace(b'"melodyrnn.model"', module))
    path = rewrite(
        saved_bundle[0], tmp_path / "module.melodyrnn", model_bytes=model_bytes, header=lambda h: {**h, "files": {}}
    )
    with pytest.raises(BundleError, match="refused: it holds objects that are not melodyrnn's or Keras's own"):
        load_bundle(path)


def test_an_unregistered_melodyrnn_class_is_refused(tmp_path, saved_bundle):
    model_bytes = _with_keras_config(
        saved_bundle[0],
        lambda d: d.replace(b'"MelodyModel"', b'"Payload"').replace(b'"melodyrnn>MelodyModel"', b'"melodyrnn>Payload"'),
    )
    path = rewrite(
        saved_bundle[0], tmp_path / "payload.melodyrnn", model_bytes=model_bytes, header=lambda h: {**h, "files": {}}
    )
    with pytest.raises(BundleError, match=r"refused.*melodyrnn\.model\.Payload"):
        load_bundle(path)


def test_a_config_larger_than_its_weights_is_refused_before_building(tmp_path, saved_bundle):
    def huge(header):
        return {**header, "model_config": {**header["model_config"], "units": 2048, "num_layers": 16}}

    path = rewrite(saved_bundle[0], tmp_path / "huge.melodyrnn", header=huge)
    with pytest.raises(BundleError, match=r"declares a network of at least [\d,]{11} bytes of weights, but it holds"):
        load_bundle(path)


def test_a_decompression_bomb_is_refused_before_inflating(tmp_path, saved_bundle):
    with zipfile.ZipFile(saved_bundle[0]) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    bomb = tmp_path / "bomb.melodyrnn"
    with zipfile.ZipFile(bomb, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("padding.bin", bytes(64 << 20), compress_type=zipfile.ZIP_BZIP2)  # 64 MB of zeros
    assert bomb.stat().st_size < 200_000
    with pytest.raises(BundleError, match=r"'padding.bin' would inflate .* to 67,108,864 \(more than 1100:1"):
        load_bundle(bomb)


def test_default_model_is_bundled_and_loads():
    assert DEFAULT_BUNDLE_PATH.is_file()
    bundle = load()
    assert isinstance(bundle.model, MelodyModel) and Path(bundle.path) == DEFAULT_BUNDLE_PATH
    assert bundle.model_config.attention and bundle.encoding.vocab_size == 130
    assert DEFAULT_BUNDLE_PATH.stat().st_size < 8 * 1024 * 1024  # "a few MB at most"


def test_a_bundle_saved_before_the_attention_shortcuts_still_loads_and_samples():
    # The default model shipped before relative bias and previous-step keys existed: its config has neither field
    # (nor max_steps_per_bar), so loading must give plain content attention, or its weights would not fit.
    path = Path(__file__).parent / "data" / "bundle_before_attention_shortcuts.melodyrnn"
    bundle = load_bundle(path, compile=False)
    config = bundle.model_config
    assert config.attention and (config.attention_relative_bias, config.attention_previous_key) == (False, False)
    assert config.max_steps_per_bar == ModelConfig().max_steps_per_bar
    melodies = melodyrnn.Sampler(bundle).generate(2, bars=2, seed=3)
    assert [len(m) for m in melodies] == [32, 32] and all(m.notes() for m in melodies)


def test_loading_refuses_a_keras_whose_safe_mode_has_known_bypasses(saved_bundle, monkeypatch):
    monkeypatch.setattr(keras, "__version__", "3.8.0")
    with pytest.raises(BundleError, match=r"needs Keras >= 3\.14.*this is Keras 3\.8\.0"):
        load_bundle(saved_bundle[0])


@pytest.mark.parametrize("files", [["model.keras"], {"model.keras": "abc"}, {"model.keras": {"sha256": 5}}])
def test_a_files_entry_of_the_wrong_shape_is_a_bundle_error(tmp_path, saved_bundle, files):
    path = rewrite(saved_bundle[0], tmp_path / "files.melodyrnn", header=lambda h: {**h, "files": files})
    with pytest.raises(BundleError, match="the `files` entry of its bundle.json is not a map of checksums"):
        load_bundle(path)
