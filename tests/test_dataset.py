"""dataset: the cache (round trip, refusing bad or hand-edited files) and tf.data windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import scale_notes

from melodyrnn import DataError, EncodingConfig, MelodyRNNError, PreparedData, prepare


def test_cache_round_trip_without_pickle(messy_folder, tmp_path):
    out = tmp_path / "d.npz"
    data = prepare(messy_folder, out, workers=1, progress=False)
    loaded = PreparedData.load(out)
    assert np.array_equal(loaded.tokens, data.tokens) and loaded.report == data.report
    assert loaded.melodies() == data.melodies()
    assert loaded.lengths.tolist() == [128] * 14
    with np.load(out, allow_pickle=False) as npz:  # everything loads with pickling forbidden
        assert all(npz[k].dtype != object for k in npz.files)
    m = loaded.melody(0)
    assert m.source == str(loaded.files[0]) and m.qpm == 96.0 and m.time_signature == (4, 4)


def test_bad_cache_files_raise_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        PreparedData.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"not a melodyrnn prepared-data cache \(not an .npz archive\)"):
        PreparedData.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "foreign.npz", meta=np.array(json.dumps({"format": "other"})))
    with pytest.raises(DataError, match="not a melodyrnn"):
        PreparedData.load(tmp_path / "foreign.npz")


def _edited_cache(tmp_path, name, meta_edit=None, **arrays):
    """A valid cache written, then hand-edited: `meta_edit(meta)` changes its metadata, `arrays` replace arrays."""
    path = tmp_path / f"{name}.npz"
    _small_data().save(path)
    with np.load(path, allow_pickle=False) as npz:
        contents = {k: npz[k] for k in npz.files}
    meta = json.loads(str(contents["meta"]))
    if meta_edit is not None:
        meta_edit(meta)
    contents.update(meta=np.array(json.dumps(meta)), **arrays)
    np.savez(path, **contents)
    return path


@pytest.mark.parametrize(
    "name, edit, match",
    [
        ("no_config", lambda m: m.pop("config"), "bad metadata: KeyError"),
        ("config_type", lambda m: m.update(config=[4, 0, 127]), "bad metadata: .*must be a dict"),
        (
            "config_key",
            lambda m: m["config"].update(steps=4),
            r"bad metadata: .*unknown encoding config fields \['steps'\]",
        ),
        ("config_value", lambda m: m["config"].update(min_pitch="low"), "bad metadata: .*`min_pitch`"),
        ("report_key", lambda m: m["report"].update(surprise=1), "bad metadata: TypeError"),
        ("fraction", lambda m: m.update(validation_fraction="a tenth"), "bad metadata: ValueError"),
    ],
)
def test_cache_with_bad_metadata_raises_data_error(tmp_path, name, edit, match):
    with pytest.raises(DataError, match=match):
        PreparedData.load(_edited_cache(tmp_path, name, edit))


def test_hand_edited_cache_arrays_raise_data_error(tmp_path):
    data = _small_data()
    n = data.num_melodies
    cases = {
        "negative_tokens": ({"tokens": -data.tokens.astype(np.int16) - 1}, "token ids lie outside"),
        "two_d_tokens": ({"tokens": data.tokens.reshape(1, -1)}, "one-dimensional"),
        "offsets_past_end": ({"offsets": data.offsets + 5}, "offsets do not match"),
        "bad_file_ids": ({"file_ids": np.full(n, 99, np.int32)}, "file ids point past"),
        "short_metadata": ({"qpm": data.qpm[:-1]}, "per-melody arrays do not match"),
        "zero_meter": ({"numerator": np.zeros(n, np.int16)}, "unusable time signatures"),
        "float_tokens": ({"tokens": data.tokens.astype(np.float32)}, "must be integers"),
    }
    for name, (arrays, match) in cases.items():
        with pytest.raises(DataError, match=match):
            PreparedData.load(_edited_cache(tmp_path, name, **arrays))


def _small_data(n=10, bars=8):
    import melodyrnn

    melodies = []
    for i in range(n):
        notes = [(p + i % 4, int(s * 4), int(e * 4)) for p, s, e in scale_notes(bars)]
        melodies.append(melodyrnn.Melody.from_notes(notes, num_steps=bars * 16, source=f"f{i}.mid"))
    return PreparedData.from_melodies(melodies, validation_fraction=0.3)


def test_dataset_windows_are_next_step_pairs():
    data = _small_data()
    ds = data.dataset(seq_len=32, batch_size=4, split="all", shuffle=False)
    inputs, targets, weights = next(iter(ds))
    assert inputs.shape == (4, 32) and targets.shape == (4, 32) and weights.shape == (4, 32)
    assert inputs.dtype.name == "int32" and weights.dtype.name == "float32"
    np.testing.assert_array_equal(inputs[0, 1:], targets[0, :-1])
    np.testing.assert_array_equal(inputs[0], data.melody_tokens(0)[:32])
    np.testing.assert_array_equal(inputs[1], data.melody_tokens(0)[16:48])  # stride seq_len // 2
    assert float(np.min(weights)) == 1.0
    # 128-step melodies: windows at 0, 16, ..., 80 and one ending at the melody's end (95).
    assert sum(int(b[0].shape[0]) for b in ds) == 10 * 7


def test_short_melodies_are_padded_with_zero_weight():
    data = _small_data(n=3)
    ((inputs, targets, weights),) = list(data.dataset(seq_len=200, batch_size=8, split="all", shuffle=False))
    assert inputs.shape == (3, 200)
    assert weights.numpy().sum(axis=1).tolist() == [127.0] * 3
    assert (targets.numpy()[:, 127:] == 0).all()


def test_splits_and_shuffling_are_seeded():
    data = _small_data(n=20)
    train = np.concatenate([b[0].numpy() for b in data.dataset(32, 8, split="train", seed=3)])
    val = np.concatenate([b[0].numpy() for b in data.dataset(32, 8, split="validation", seed=3)])
    assert len(train) + len(val) == 20 * 7 and len(val) > 0
    again = np.concatenate([b[0].numpy() for b in data.dataset(32, 8, split="train", seed=3)])
    np.testing.assert_array_equal(train, again)
    unshuffled = np.concatenate([b[0].numpy() for b in data.dataset(32, 8, split="train", shuffle=False)])
    assert not np.array_equal(train, unshuffled)
    with pytest.raises(DataError, match="split"):
        data.dataset(split="test")


def test_random_transposition_keeps_notes_in_the_vocabulary():
    import melodyrnn

    cfg = EncodingConfig(min_pitch=55, max_pitch=80)
    melodies = [
        melodyrnn.Melody.from_notes(
            [(p, int(s * 4), int(e * 4)) for p, s, e in scale_notes(8, 60 + i)], num_steps=128, source=f"{i}.mid"
        )
        for i in range(5)
    ]
    data = PreparedData.from_melodies(melodies, cfg, validation_fraction=0.0)
    plain = np.concatenate([b[0].numpy() for b in data.dataset(32, 64, shuffle=False)])
    shifted = np.concatenate([b[0].numpy() for b in data.dataset(32, 64, shuffle=False, transpose=12, seed=1)])
    notes = shifted >= 2
    assert shifted.max() < cfg.vocab_size and shifted[notes].min() >= 2
    assert np.array_equal(shifted < 2, plain < 2)  # NO_EVENT and NOTE_OFF never move
    shifts = {int(d) for d in np.unique((shifted - plain)[notes])}
    assert len(shifts) > 3 and max(shifts) <= 12 and min(shifts) >= -12
    # Each window moves as a whole.
    per_window = [np.unique((s - p)[s >= 2]) for s, p in zip(shifted, plain)]
    assert all(len(u) == 1 for u in per_window)


def _metered_data():
    """3/4, 6/8, 4/4, 2/4 and 4/4 melodies whose lengths are not whole windows; the 2/4 one is shorter than one."""
    import melodyrnn

    melodies = []
    for i, ((numerator, denominator), steps) in enumerate(
        [((3, 4), 100), ((6, 8), 61), ((4, 4), 128), ((2, 4), 20), ((4, 4), 40)]
    ):
        notes = [(60 + i + k % 7, 2 * k, 2 * k + 1) for k in range(steps // 2)]
        melodies.append(
            melodyrnn.Melody.from_notes(
                notes, num_steps=steps, source=f"m{i}.mid", time_signatures=((0, numerator, denominator),)
            )
        )
    return PreparedData.from_melodies(melodies, validation_fraction=0.0)


def test_with_bars_windows_start_on_bar_lines_and_cover_every_step():
    data = _metered_data()
    assert data.steps_per_bar.tolist() == [12, 12, 16, 8, 16]
    seq_len = 32
    ((inputs, targets, weights),) = list(data.dataset(seq_len, 256, split="all", shuffle=False, with_bars=True))
    assert set(inputs) == {"ids", "bar"} and inputs["ids"].shape[1] == seq_len and inputs["bar"].dtype.name == "int32"
    starts, _, _ = data._window_starts("all", seq_len, seq_len // 2, data.steps_per_bar)
    assert len(starts) == len(inputs["ids"])
    covered = [set() for _ in range(data.num_melodies)]
    for k, start in enumerate(starts):
        m = int(np.searchsorted(data.offsets, start, side="right")) - 1
        local, tokens, bar = int(start - data.offsets[m]), data.melody_tokens(m), data.steps_per_bar[m]
        assert local % bar == 0 and int(inputs["bar"][k]) == bar
        n = int(weights[k].numpy().sum())  # the weighted targets are a prefix: the rest is padding
        assert n >= 1 and weights[k, :n].numpy().all() and not weights[k, n:].numpy().any()
        np.testing.assert_array_equal(inputs["ids"][k, :n], tokens[local : local + n])
        np.testing.assert_array_equal(targets[k, :n], tokens[local + 1 : local + n + 1])
        covered[m] |= set(range(local + 1, local + n + 1))
    assert all(covered[m] == set(range(1, data.lengths[m])) for m in range(data.num_melodies))


def test_with_bars_refuses_bars_longer_than_allowed():
    data = _metered_data()
    with pytest.raises(MelodyRNNError, match=r"max_steps_per_bar=12.*got 16"):
        data.dataset(32, 8, split="all", with_bars=True, max_steps_per_bar=12)
    with pytest.raises(DataError, match=r"`seq_len` must be at least the longest bar \(16 steps\).*got 10"):
        data.dataset(10, 8, split="all", with_bars=True)


def _data_with_chords():
    import melodyrnn

    melodies = []
    for i in range(6):
        notes = [(p + i, int(s * 4), int(e * 4)) for p, s, e in scale_notes(8)]
        chords = ((0, "C:maj"), (32, "G:7/3"), (64, "N")) if i % 2 else ()
        melodies.append(melodyrnn.Melody.from_notes(notes, num_steps=128, source=f"f{i}.mid", chords=chords))
    return melodies, PreparedData.from_melodies(melodies, validation_fraction=0.3)


def test_chords_are_stored_beside_the_events_without_pickle(tmp_path):
    melodies, data = _data_with_chords()
    data.save(tmp_path / "c.npz")
    loaded = PreparedData.load(tmp_path / "c.npz")
    assert loaded.melodies() == data.melodies() == sorted(melodies, key=lambda m: m.source)
    assert loaded.melody(1).chords == ((0, "C:maj"), (32, "G:7/3"), (64, "N")) and loaded.melody(0).chords == ()
    assert loaded.chord_labels == ("C:maj", "G:7/3", "N")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert npz["chord_offsets"].tolist() == [0, 0, 3, 3, 6, 6, 9] and npz["chord_steps"].dtype == np.int32


def test_a_cache_written_before_chords_loads_without_chords(tmp_path):
    _, data = _data_with_chords()
    path = tmp_path / "old.npz"
    data.save(path)
    with np.load(path, allow_pickle=False) as npz:
        contents = {k: npz[k] for k in npz.files if not k.startswith("chord_")}
    meta = json.loads(str(contents["meta"]))
    del meta["chord_labels"]
    contents["meta"] = np.array(json.dumps(meta))
    np.savez(path, **contents)  # what a cache from before chords holds
    old = PreparedData.load(path)
    assert old.num_melodies == data.num_melodies and all(m.chords == () for m in old.melodies())
    assert np.array_equal(old.tokens, data.tokens)


def test_hand_edited_chord_arrays_raise_data_error(tmp_path):
    cases = {
        "steps_past_end": ({"chord_steps": np.full(9, 500, np.int32)}, "chord steps must rise"),
        "ids_past_labels": ({"chord_ids": np.full(9, 7, np.int32)}, "chord ids point past"),
        "short_offsets": ({"chord_offsets": np.array([0, 9], np.int64)}, "chord offsets do not match"),
        "float_steps": ({"chord_steps": np.zeros(9, np.float32)}, "chord arrays must be integers"),
    }
    for name, (arrays, match) in cases.items():
        path = tmp_path / f"{name}.npz"
        _data_with_chords()[1].save(path)
        with np.load(path, allow_pickle=False) as npz:
            contents = {k: npz[k] for k in npz.files}
        np.savez(path, **{**contents, **arrays})
        with pytest.raises(DataError, match=match):
            PreparedData.load(path)
    bad_label = _edited_cache_labels(tmp_path, ["C:maj", "G:7/3", "Q:maj"])
    with pytest.raises(DataError, match="bad chord label 'Q:maj'"):
        PreparedData.load(bad_label)


def _edited_cache_labels(tmp_path, labels):
    path = tmp_path / "labels.npz"
    _data_with_chords()[1].save(path)
    with np.load(path, allow_pickle=False) as npz:
        contents = {k: npz[k] for k in npz.files}
    meta = json.loads(str(contents["meta"]))
    meta["chord_labels"] = labels
    np.savez(path, **{**contents, "meta": np.array(json.dumps(meta))})
    return path
