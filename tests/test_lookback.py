"""Tests for melodyrnn.lookback: the features one and two bars back, repeat flags and the bar-position counter."""

from __future__ import annotations

import numpy as np

import melodyrnn
from melodyrnn.encoding import EncodingConfig
from melodyrnn.lookback import LookbackEmbedding

VOCAB = EncodingConfig().vocab_size


def identity_lookback(**kwargs):
    """A LookbackEmbedding whose embedding of id k is (k, 0), so features can be read back as ids."""
    layer = LookbackEmbedding(VOCAB, 2, **kwargs)
    layer.build((None, None))
    table = np.zeros((VOCAB + 1, 2), "float32")
    table[:, 0] = np.arange(VOCAB + 1)
    layer.embedding.embeddings.assign(table)
    return layer


def decode_counter(bits):
    """±1 bits, low first → int positions."""
    return (((bits + 1) / 2) * 2 ** np.arange(bits.shape[-1])).sum(-1).astype(int)


def test_lookback_sees_one_and_two_bars_back():
    # with steps_per_bar=4, the features at step t hold the ids at t - 3 and t - 7
    layer = identity_lookback(steps_per_bar=4)
    ids = np.arange(10, 22, dtype="int32")[None]
    features = np.asarray(layer(ids))[0]
    assert features.shape == (12, 3 * 2 + 2 + 2)
    t = 9
    assert features[t, 0] == ids[0, t]
    assert features[t, 2] == ids[0, t + 1 - 4]  # the event a one-bar repeat would bring next
    assert features[t, 4] == ids[0, t + 1 - 8]
    assert features[0, 2] == VOCAB and features[0, 4] == VOCAB  # nothing yet
    counter = features[:, 8:10]  # position of the next step in the bar, bits low first, ±1
    assert counter[0].tolist() == [1, -1] and counter[2].tolist() == [1, 1] and counter[3].tolist() == [-1, -1]


def test_lookback_sees_one_and_two_bars_back_per_row():
    # bars of 12 (3/4) and 16 (4/4) in one batch; ids from a small alphabet, so repeats (the flags) happen
    layer = identity_lookback(steps_per_bar=16, max_steps_per_bar=16)
    ids = np.random.default_rng(4).integers(0, 3, (2, 40)).astype("int32")
    bars = np.array([12, 16])
    features = np.asarray(layer(ids, bars))
    assert features.shape == (2, 40, 3 * 2 + 2 + 4)

    def back(r, k):
        return ids[r, k] if k >= 0 else VOCAB  # "nothing yet" before the start

    for r, bar in enumerate(bars):
        for t in range(40):
            assert features[r, t, 0] == ids[r, t]
            assert features[r, t, 2] == back(r, t + 1 - bar) and features[r, t, 4] == back(r, t + 1 - 2 * bar)
            assert features[r, t, 6] == (ids[r, t] == back(r, t - bar))
            assert features[r, t, 7] == (ids[r, t] == back(r, t - 2 * bar))
        assert decode_counter(features[r, :, 8:]).tolist() == [(t + 1) % bar for t in range(40)]
    assert features[:, :, 6].any() and features[:, :, 7].any()


def test_lookback_counts_the_position_of_a_window_that_starts_at_bar_3():
    # a 3/4 melody cut into bar-aligned windows: the counter of the window starting at step 36 (bar 3, from 0)
    # is the true position in the melody's bars
    notes = [(60 + k % 5, 3 * k, 3 * k + 2) for k in range(24)]
    melody = melodyrnn.Melody.from_notes(notes, num_steps=72, time_signatures=((0, 3, 4),), source="a.mid")
    data = melodyrnn.PreparedData.from_melodies([melody], validation_fraction=0.0)
    ((inputs, _, _),) = list(data.dataset(seq_len=16, batch_size=64, split="all", shuffle=False, with_bars=True))
    tokens = data.melody_tokens(0)
    row = [r for r in range(len(inputs["ids"])) if (inputs["ids"][r].numpy() == tokens[36:52]).all()]
    assert len(row) == 1 and inputs["bar"][row[0]] == 12
    features = np.asarray(identity_lookback(steps_per_bar=16)(inputs["ids"][row[0]][None], inputs["bar"][row[0]]))
    assert decode_counter(features[0, :, 8:]).tolist() == [(36 + t + 1) % 12 for t in range(16)]
