"""Tests for melodyrnn.infill: kept bars come back bit for bit, gaps are checked, the gap's score equals slow
references, and infill works from the command line and as variations."""

from __future__ import annotations

import importlib

import keras
import mido
import numpy as np
import pytest
from conftest import INFILL_SETTINGS, assert_kept, midi_bytes, note_track, scale_notes

import melodyrnn
from melodyrnn.bundle import load_bundle, save_bundle
from melodyrnn.cli import main
from melodyrnn.conditioning import step_conditions
from melodyrnn.encoding import Melody, melody_to_tokens
from melodyrnn.errors import InfillError, MelodyRNNError
from melodyrnn.evaluation import score_token_lists
from melodyrnn.extraction import midi_to_melodies
from melodyrnn.gaps import bar_lines, variation_gaps
from melodyrnn.model import ModelConfig, build_model
from melodyrnn.sample_config import PRIMER_EXTRACTION
from melodyrnn.sampling import Sampler, infill, score_infill, vary

# attention_window=6 is shorter than the melodies, so the sliding window is exercised
CONFIG = ModelConfig(units=12, num_layers=2, embedding_dim=8, attention_heads=2, attention_window=6, dropout=0.0)


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    keras.utils.set_random_seed(3)
    path = tmp_path_factory.mktemp("bundle") / "m.melodyrnn"
    save_bundle(path, build_model(CONFIG))
    return path


@pytest.fixture(scope="module")
def sampler(bundle_path):
    return Sampler(load_bundle(bundle_path, compile=False))


def song(bars=6) -> Melody:
    """A 3/4 melody with everything infill must keep: tempo and meter changes, chords, program, velocity."""
    notes = [(60 + (k * 5) % 12, 4 * k, 4 * k + 3) for k in range(3 * bars)]
    return Melody.from_notes(
        notes,
        num_steps=12 * bars,
        tempos=((0, 90.0), (24, 100.0)),
        time_signatures=((0, 3, 4),),
        chords=tuple(c for c in ((0, "C:maj"), (12, "G:7"), (36, "A:min")) if c[0] < 12 * bars),
        program=40,
        velocity=77,
        source="song.mid",
    )


@pytest.mark.parametrize("options", INFILL_SETTINGS)
@pytest.mark.parametrize("gap", [(0, 2), (2, 4), (4, 6), (0, 6)])
def test_bars_outside_the_gap_come_back_bit_for_bit(sampler, options, gap):
    melody = song()
    start, end = bar_lines(melody)[list(gap)]
    versions = infill(melody, *gap, n=3, model=sampler, candidates=4, seed=5, **options)
    assert len(versions) == 3
    for version in versions:
        assert_kept(version, melody, start, end)
        if "key" in options:  # the key reaches the gap's new notes
            new = version.events[start:end]
            assert set(new[new >= 0] % 12) <= set(melodyrnn.key_pitch_classes("F major"))


def test_same_seed_same_versions_and_greedy_versions_agree(sampler):
    melody = song()
    first = infill(melody, 2, 4, n=2, model=sampler, candidates=8, seed=11)
    again = infill(melody, 2, 4, n=2, model=sampler, candidates=8, seed=11)
    assert first == again
    greedy = infill(melody, 2, 4, n=2, model=sampler, temperature=0)
    assert greedy[0] == greedy[1]


def test_the_package_level_call_and_a_bundle_path(bundle_path):
    melody = song(4)
    (version,) = melodyrnn.infill(melody, 1, 2, model=bundle_path, seed=1)
    assert_kept(version, melody, 12, 24)
    total, per_step = melodyrnn.score_infill(melody, 1, 2, model=bundle_path, samples=4, seed=1)
    assert per_step.shape == (12,) and np.isfinite(total)


def test_a_loaded_sampler_infills_as_the_one_liner_does(sampler, bundle_path):
    melody = song(5)
    start, end = bar_lines(melody)[[1, 3]]
    versions = sampler.infill(melody, 1, 3, n=2, candidates=4, seed=9, temperature=0.9)
    for version in versions:
        assert_kept(version, melody, start, end)
    assert versions == melodyrnn.infill(melody, 1, 3, 2, model=sampler, candidates=4, seed=9, temperature=0.9)
    # another sampler on the same file draws the same versions
    assert versions == melodyrnn.infill(melody, 1, 3, 2, model=bundle_path, candidates=4, seed=9, temperature=0.9)
    assert sampler.vary(melody, 2, candidates=2, seed=3) == vary(melody, 2, model=sampler, candidates=2, seed=3)
    mine, theirs = sampler.score_infill(melody, 1, 3, 4, seed=2), score_infill(melody, 1, 3, sampler, 4, seed=2)
    assert mine.total == theirs.total and np.array_equal(mine.per_step, theirs.per_step)
    with pytest.raises(MelodyRNNError, match="`model` must be a Sampler, a Bundle"):
        melodyrnn.infill(melody, 1, 3, model=42)
    # the package's names are the functions, whatever was imported before
    importlib.import_module("melodyrnn.gaps")
    assert melodyrnn.infill is infill and callable(melodyrnn.score_infill) and callable(melodyrnn.vary)


def test_gap_bounds_and_bad_requests_raise_clear_errors(sampler):
    melody = song(4)
    with pytest.raises(InfillError, match="start_bar < end_bar"):
        infill(melody, 2, 2, model=sampler)
    with pytest.raises(InfillError, match="start_bar < end_bar"):
        infill(melody, -1, 2, model=sampler)
    with pytest.raises(InfillError, match="at most the melody's 4 bars"):
        infill(melody, 2, 5, model=sampler)
    with pytest.raises(InfillError, match="integer bar number"):
        infill(melody, 1.5, 3, model=sampler)
    with pytest.raises(InfillError, match="empty"):
        infill(Melody(events=np.zeros(0, np.int16)), 0, 1, model=sampler)
    off_grid = Melody.from_notes([(60, 0, 3), (62, 3, 9)], steps_per_quarter=3, time_signatures=((0, 3, 8),))
    with pytest.raises(InfillError, match="whole steps"):
        infill(off_grid, 0, 1, model=sampler)
    with pytest.raises(MelodyRNNError, match="`n` must be an integer"):
        infill(melody, 1, 2, n=0, model=sampler)
    with pytest.raises(MelodyRNNError, match="`candidates` must be an integer"):
        infill(melody, 1, 2, candidates=0, model=sampler)
    with pytest.raises(MelodyRNNError, match="remove bars, qpm"):
        infill(melody, 1, 2, model=sampler, qpm=100, bars=3)
    with pytest.raises(MelodyRNNError, match="temperature"):
        infill(melody, 1, 2, model=sampler, temperature=-1)
    rest_first = Melody(events=np.array([-1] + [-2] * 11 + [60] + [-2] * 11, np.int16), time_signatures=((0, 3, 4),))
    with pytest.raises(InfillError, match="no note"):
        infill(rest_first, 1, 2, model=sampler)
    with pytest.raises(MelodyRNNError, match="`melody` must be a Melody"):
        infill([60, 62], 0, 1, model=sampler)


def test_bar_lines_follow_meter_changes():
    melody = Melody(events=np.full(40, -2, np.int16), time_signatures=((0, 4, 4), (16, 3, 4), (29, 2, 4)))
    assert bar_lines(melody).tolist() == [0, 16, 28, 29, 37, 40]


def step_by_step(model, tokens, start, end):
    """log p(token t | tokens before t) for t in [start, end), one model.step at a time (the slow reference)."""
    state = model.initial_state(1)
    out = []
    for t in range(end - 1):
        logits, state = model.step(tokens[t : t + 1], state)
        if t + 1 >= start:
            out.append(float(keras.ops.convert_to_numpy(keras.ops.log_softmax(logits[0]))[tokens[t + 1]]))
    return np.array(out)


def full_call(model, tokens):
    logits = np.asarray(model(tokens[None, :-1]), np.float64)[0]
    top = logits.max(-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    return log_probs[np.arange(len(tokens) - 1), tokens[1:]]


def test_score_without_a_suffix_equals_a_full_call_on_prefix_and_gap(sampler):
    melody = song(4)
    total, per_step = score_infill(melody, 2, 4, model=sampler)
    reference = full_call(sampler.model, melody_to_tokens(melody))[24 - 1 :]
    np.testing.assert_allclose(per_step, reference, atol=1e-4)
    assert total == pytest.approx(reference.sum(), abs=1e-3)


def test_score_with_a_suffix_adds_the_suffix_terms_to_the_step_by_step_part(sampler):
    melody = song(5)
    tokens = melody_to_tokens(melody)
    score = score_infill(melody, 1, 3, model=sampler, samples=32, seed=2)
    total, per_step = score
    np.testing.assert_allclose(per_step, step_by_step(sampler.model, tokens, 12, 36), atol=1e-4)
    assert score.suffix_given_gap == pytest.approx(full_call(sampler.model, tokens)[35:].sum(), abs=1e-3)
    assert total == pytest.approx(score.prefix_only + score.suffix_given_gap - score.suffix_evidence)
    assert 0 < score.standard_error < 1 and score.samples == 32
    # a gap at the start: its first step has no context and is not scored
    _, first = score_infill(melody, 0, 1, model=sampler, samples=4, seed=2)
    assert first.shape == (11,)


def test_vary_rewrites_every_other_bar_or_each_phrases_second_half(sampler):
    melody = song(8)
    lines = bar_lines(melody)
    assert variation_gaps(8, 2) == [(1, 2), (3, 4), (5, 6), (7, 8)]
    assert variation_gaps(10, "second_half", 4) == [(2, 4), (6, 8)]
    assert variation_gaps(6, "second_half", 8) == [(4, 6)]
    (varied,) = vary(melody, 2, model=sampler, candidates=2, seed=1)
    for bar in (0, 2, 4, 6):
        assert np.array_equal(varied.events[lines[bar] : lines[bar + 1]], melody.events[lines[bar] : lines[bar + 1]])
    assert not np.array_equal(varied.events, melody.events)
    versions = vary(melody, "second_half", n=2, model=sampler, phrase_bars=4, candidates=2, seed=1)
    for version in versions:
        assert np.array_equal(version.events[: lines[2]], melody.events[: lines[2]])
        assert np.array_equal(version.events[lines[4] : lines[6]], melody.events[lines[4] : lines[6]])
    with pytest.raises(MelodyRNNError, match="`every` must be"):
        vary(melody, 1, model=sampler)
    with pytest.raises(MelodyRNNError, match="`phrase_bars` must be 4 or 8"):
        vary(melody, "second_half", model=sampler, phrase_bars=5)
    with pytest.raises(InfillError, match="no bar to rewrite"):
        vary(song(1), 2, model=sampler)


def test_cli_infill_writes_versions_that_keep_the_other_bars(bundle_path, tmp_path, capsys):
    conductor = [mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100), time=0)]
    source = tmp_path / "in.mid"
    source.write_bytes(midi_bytes([conductor, note_track(scale_notes(6))]))
    code = main(["infill", str(source), "--bars", "2-4", "-n", "2", "-o", str(tmp_path / "out"),
                 "--model", str(bundle_path), "--seed", "4", "--candidates", "3"])  # fmt: skip
    assert code == 0
    written = sorted((tmp_path / "out").glob("*.mid"))
    assert [p.name for p in written] == ["infill_001.mid", "infill_002.mid"]
    (original,) = midi_to_melodies(source.read_bytes(), extraction=PRIMER_EXTRACTION)
    for path in written:  # a new gap may rest a whole bar, which splits the read-back melody: check bars 0-1
        version = midi_to_melodies(path.read_bytes(), extraction=PRIMER_EXTRACTION)[0]
        assert np.array_equal(version.events[:32], original.events[:32])
    assert "seed 4" in capsys.readouterr().out
    assert main(["infill", str(source), "--bars", "4", "--model", str(bundle_path)]) == 2
    assert "--bars" in capsys.readouterr().err
    assert main(["infill", str(source), "--bars", "5-9", "--model", str(bundle_path)]) == 2
    assert "at most the melody's 6 bars" in capsys.readouterr().err


def test_a_chord_aware_model_fills_the_gap_over_the_melodys_own_chords(tmp_path):
    keras.utils.set_random_seed(4)
    config = ModelConfig(units=8, num_layers=1, embedding_dim=8, attention=False, condition_chords=True)
    chord_sampler = Sampler(load_bundle(save_bundle(tmp_path / "c.melodyrnn", build_model(config)), compile=False))
    melody = song(6)
    for gap in ((0, 2), (2, 4), (4, 6)):
        start, end = bar_lines(melody)[list(gap)]
        for version in infill(melody, *gap, n=2, model=chord_sampler, candidates=3, seed=1):
            assert_kept(version, melody, start, end)
    # the gap is scored with the melody's own meter and chords, as validation scores such a model
    tokens = melody_to_tokens(melody)
    conditions = step_conditions(len(melody), 4, melody.time_signatures, melody.chords)
    ((with_chords, _),) = score_token_lists(chord_sampler.model, [tokens], conditions=[conditions])
    ((without, _),) = score_token_lists(chord_sampler.model, [tokens])
    _, per_step = score_infill(melody, 4, 6, model=chord_sampler)
    np.testing.assert_allclose(per_step, with_chords[47:], atol=1e-5)
    assert not np.allclose(per_step, without[47:], atol=1e-5)


def test_adapting_to_the_kept_bars_keeps_them_and_leaves_the_model_alone(sampler):
    melody = song(6)
    before = [w.numpy().copy() for w in sampler.model.weights]
    plain = score_infill(melody, 2, 4, model=sampler, samples=8, seed=3)
    adapted = score_infill(melody, 2, 4, model=sampler, samples=8, seed=3, adapt=20)
    assert adapted.total != pytest.approx(plain.total, abs=1e-3)  # the adapted model scores the gap differently
    # the kept bars' own steps grew more likely under the adapted model: it learnt from them
    assert adapted.suffix_given_gap > plain.suffix_given_gap
    assert score_infill(melody, 2, 4, model=sampler, samples=8, seed=3, adapt=20).total == adapted.total
    assert all(np.array_equal(w.numpy(), b) for w, b in zip(sampler.model.weights, before))
    assert score_infill(melody, 2, 4, model=sampler, samples=8, seed=3).total == plain.total
    for gap in ((0, 2), (2, 4), (4, 6)):  # a gap at the start or the end trains on one side only
        start, end = bar_lines(melody)[list(gap)]
        versions = infill(melody, *gap, n=2, model=sampler, candidates=3, seed=5, adapt=3, temperature=0.9)
        for version in versions:
            assert_kept(version, melody, start, end)
    (varied,) = vary(melody, 2, model=sampler, candidates=2, seed=1, adapt=2)
    lines = bar_lines(melody)
    assert np.array_equal(varied.events[: lines[1]], melody.events[: lines[1]])


ADAPTED_MODELS = {
    "attention": CONFIG,
    "lookback": ModelConfig(units=8, num_layers=1, embedding_dim=8, attention=False, lookback=True, dropout=0.0),
    "meter_and_chords": ModelConfig(
        units=8, num_layers=1, embedding_dim=8, attention=False, condition_meter=True, condition_chords=True
    ),
}


@pytest.mark.parametrize("kind", sorted(ADAPTED_MODELS))
def test_adapted_steps_equal_a_slow_reference_update(kind, tmp_path):
    """Adaptation is Adam on the mean NLL of the kept bars' steps, the bars before and after the gap as two rows,
    each fed as the model reads a melody (a lookback model its bar, a conditioned one each step's conditions)."""
    import tensorflow as tf

    keras.utils.set_random_seed(6)
    config = ADAPTED_MODELS[kind]
    model_sampler = Sampler(load_bundle(save_bundle(tmp_path / "m.melodyrnn", build_model(config)), compile=False))
    melody = song(5)  # 3/4: 12 steps a bar; the gap is bars 1-2, steps 12-35
    tokens = melody_to_tokens(melody).astype(np.int32)
    conditions = step_conditions(len(melody), 4, melody.time_signatures, melody.chords)
    reference = build_model(config)
    reference.set_weights(model_sampler.model.get_weights())
    optimizer = keras.optimizers.Adam(melodyrnn.adaptation.ADAPT_LEARNING_RATE, clipnorm=1.0)

    def feed(a, b):
        inputs = {"ids": tokens[None, a : b - 1]}
        if config.lookback:
            inputs["bar"] = np.array([12], np.int32)
        if config.conditioned:
            inputs["conditions"] = conditions[None, a + 1 : b]
        return inputs if len(inputs) > 1 else inputs["ids"]

    for _ in range(3):
        with tf.GradientTape() as tape:
            nll = 0.0
            for a, b in ((0, 12), (36, len(tokens))):  # one row at a time: no padding at all
                logits = reference(feed(a, b), training=False)
                nll += tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(tokens[None, a + 1 : b], logits))
            loss = nll / (len(tokens) - 24 - 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, reference.trainable_weights), reference.trainable_weights))
    ((expected, _),) = score_token_lists(reference, [tokens], steps_per_bar=12, conditions=[conditions])
    _, per_step = score_infill(melody, 1, 3, model=model_sampler, samples=2, seed=0, adapt=3)
    np.testing.assert_allclose(per_step, expected[11:35], atol=1e-4)
    ((untouched, _),) = score_token_lists(model_sampler.model, [tokens], steps_per_bar=12, conditions=[conditions])
    assert not np.allclose(untouched[11:35], expected[11:35], atol=1e-4)  # the reference did move


def test_bad_adapt_values_and_models_that_cannot_adapt_raise_clear_errors(sampler, tmp_path, capsys):
    melody = song(4)
    for bad in (-1, 1.5, True, "3", 10_000):
        with pytest.raises(MelodyRNNError, match="`adapt` must be an integer"):
            infill(melody, 1, 2, model=sampler, adapt=bad)
        with pytest.raises(MelodyRNNError, match="`adapt` must be an integer"):
            score_infill(melody, 1, 2, model=sampler, adapt=bad)
    source = tmp_path / "in.mid"
    source.write_bytes(midi_bytes([[], note_track(scale_notes(4))]))
    assert main(["infill", str(source), "--bars", "1-2", "--adapt", "-2", "--model", str(sampler.bundle.path)]) == 2
    assert "`adapt` must be an integer" in capsys.readouterr().err
    out = tmp_path / "out"
    args = ["infill", str(source), "--bars", "1-2", "--adapt", "2", "-o", str(out), "--model", str(sampler.bundle.path)]
    assert main([*args, "--seed", "1"]) == 0
    assert [p.name for p in out.glob("*.mid")] == ["infill_001.mid"]


def test_concurrent_adapted_calls_share_the_copy_one_at_a_time(sampler):
    """The app's sessions share one sampler: each adapted call gets the copy to itself, so threads score as a
    serial run does."""
    from concurrent.futures import ThreadPoolExecutor

    melodies = [song(6), song(5), song(4)]
    serial = [score_infill(m, 1, 3, model=sampler, samples=4, seed=1, adapt=6).total for m in melodies]
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(lambda m: score_infill(m, 1, 3, model=sampler, samples=4, seed=1, adapt=6).total,
                                 melodies * 2))  # fmt: skip
    assert threaded == serial * 2
