"""Tests for melodyrnn.infill_model and melodyrnn.infill_training: the training layout and its loss mask, the warm
start, kept bars bit for bit, the exact gap score against a slow reference, the bundle's task, routing of the
one-liners and the CLI, and a tiny real training run."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import INFILL_SETTINGS, assert_kept

import melodyrnn
from melodyrnn.bundle import load, save_bundle, save_task_bundle
from melodyrnn.cli import main
from melodyrnn.conditioning import CHORD, NUM_FIELDS, POSITION, chord_id, step_conditions
from melodyrnn.dataset import PreparedData
from melodyrnn.encoding import NUM_SPECIAL, EncodingConfig, Melody, melody_to_midi, melody_to_tokens
from melodyrnn.errors import BundleError, InfillError, MelodyRNNError
from melodyrnn.gaps import bar_lines
from melodyrnn.infill_model import (
    AFTER_GAP,
    BEFORE_GAP,
    GAP_COLUMN,
    INFILL_TASK,
    MAX_GAP_BARS,
    MAX_STEPS_LEFT,
    PREFIX_BARS,
    SUFFIX_BARS,
    InfillModel,
    InfillNetwork,
    infill_conditions,
    infill_model_for,
    infill_sequence,
    save_infill,
    separator_id,
    warm_start,
)
from melodyrnn.infill_training import InfillTrainConfig, infill_example, train_infill
from melodyrnn.model import ModelConfig, build_model
from melodyrnn.sampling import Sampler, infill, score_infill, vary

ENC = EncodingConfig()
# attention_window=6 is shorter than the sequences, so the sliding window is exercised
CONFIG = ModelConfig(units=12, num_layers=2, embedding_dim=8, attention_heads=2, attention_window=6, dropout=0.0)


@pytest.fixture(scope="module")
def base():
    keras.utils.set_random_seed(5)
    return build_model(CONFIG)


@pytest.fixture(scope="module")
def paths(base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("infill")
    melody_path, infill_path = folder / "melody.melodyrnn", folder / "infill.melodyrnn"
    save_bundle(melody_path, base)
    model = warm_start(base, ENC, seed=1)
    # move the separators and logits off their warm start, so the tests see a model that reads the suffix
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(np.asarray(w.numpy()) + rng.normal(0, 0.05, tuple(w.shape)).astype("float32"))
    save_infill(infill_path, model, ENC, {"note": "test"})
    return melody_path, infill_path


@pytest.fixture(scope="module")
def filler(paths):
    return InfillModel(paths[1])


def steps_of(melody: Melody) -> np.ndarray:
    return step_conditions(len(melody), melody.steps_per_quarter, melody.time_signatures, melody.chords)


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


# ----------------------------------------------------------------------------------------------------------
# Layout and examples


def four_four(steps: int, chords=()) -> np.ndarray:
    return step_conditions(steps, 4, ((0, 4, 4),), chords)


def test_the_example_puts_the_suffix_first_and_weighs_only_prefix_and_gap():
    tokens = np.arange(2, 2 + 96, dtype=np.int32)  # 6 bars of 16 steps, every step a different note
    lines = np.arange(0, 97, 16)
    inputs, conditions, targets, weights = infill_example(tokens, lines, 2, 4, ENC, four_four(96), prefix_weight=0.5)
    sequence = np.concatenate([inputs, targets[-1:]])
    suffix, prefix, gap = tokens[64:96], tokens[0:32], tokens[32:64]
    assert np.array_equal(sequence, np.concatenate([suffix, [separator_id(ENC, 2)], prefix, gap]))
    assert separator_id(ENC, 2) == ENC.vocab_size + 1
    assert inputs.dtype == targets.dtype == conditions.dtype == np.int32 and weights.dtype == np.float32
    assert len(inputs) == len(targets) == len(weights) == 96 and conditions.shape == (96, NUM_FIELDS + 1)
    # position i predicts sequence[i + 1]: nothing for the suffix and the separator, half for the prefix
    assert np.all(weights[:32] == 0)
    assert np.all(weights[32:64] == 0.5)
    assert np.all(weights[64:] == 1)
    assert np.array_equal(targets[weights == 1], gap)


def test_each_step_reads_its_own_place_and_the_steps_left_in_the_gap():
    tokens = np.arange(2, 2 + 96, dtype=np.int32)
    lines = np.arange(0, 97, 16)
    steps = four_four(96, ((0, "C:maj"), (40, "G:7")))
    rows = infill_conditions(steps, lines, 2, 4)  # suffix 64-95, separator, prefix 0-31, gap 32-63
    sequence, gap_offset, prefix_offset = infill_sequence(tokens, lines, 2, 4, ENC)
    assert rows.shape == (len(sequence), NUM_FIELDS + 1) and rows.dtype == np.int32
    # every melody step's row is that step's conditions: its position is its own (tokens are step + 2)
    melody_rows = np.ones(len(sequence), bool)
    melody_rows[prefix_offset - 1] = False
    assert np.array_equal(rows[melody_rows, :NUM_FIELDS], steps[sequence[melody_rows] - 2])
    assert np.array_equal(rows[prefix_offset - 1], rows[prefix_offset])  # the separator copies the next row
    assert rows[0, CHORD] == chord_id("G:7") and rows[prefix_offset, CHORD] == chord_id("C:maj")
    assert np.all(rows[: prefix_offset - 1, GAP_COLUMN] == AFTER_GAP)
    assert np.all(rows[prefix_offset:gap_offset, GAP_COLUMN] == BEFORE_GAP)
    assert np.array_equal(rows[gap_offset:, GAP_COLUMN], 1 + np.arange(32, 0, -1))  # 32 steps left ... 1
    long_gap = infill_conditions(four_four(160), np.arange(0, 161, 16), 1, 9)
    assert long_gap[:, GAP_COLUMN].max() == 1 + MAX_STEPS_LEFT


def test_transposition_moves_the_notes_and_chords_not_the_separator_or_the_rests():
    tokens = np.array([60, 0, 1, 62, 0, 64, 0, 1] * 4, np.int32)
    lines = np.arange(0, 33, 8)
    steps = step_conditions(32, 2, ((0, 4, 4),), ((0, "C:maj"),))
    plain = infill_example(tokens, lines, 1, 2, ENC, steps)
    moved = infill_example(tokens, lines, 1, 2, ENC, steps, shift=3)
    plain_ids, moved_ids = (np.concatenate([e[0], e[2]]) for e in (plain, moved))
    notes = (plain_ids >= NUM_SPECIAL) & (plain_ids < ENC.vocab_size)
    assert np.array_equal(moved_ids[notes], plain_ids[notes] + 3)
    assert np.array_equal(moved_ids[~notes], plain_ids[~notes])
    assert np.all(moved[1][:, CHORD] == chord_id("D#:maj"))
    other = [c for c in range(NUM_FIELDS + 1) if c != CHORD]
    assert np.array_equal(moved[1][:, other], plain[1][:, other])


def test_gaps_at_the_start_and_the_end_and_long_ones():
    tokens = np.full(64, 60, np.int32)
    lines = np.arange(0, 65, 16)
    start, gap_offset, prefix_offset = infill_sequence(tokens, lines, 0, 1, ENC)
    assert (gap_offset, prefix_offset) == (49, 49) and start[48] == separator_id(ENC, 1)
    end, gap_offset, prefix_offset = infill_sequence(tokens, lines, 2, 4, ENC)
    assert (prefix_offset, gap_offset) == (1, 33) and end[0] == separator_id(ENC, 2)
    assert separator_id(ENC, 30) == separator_id(ENC, MAX_GAP_BARS) == ENC.vocab_size + MAX_GAP_BARS - 1


def test_context_is_cut_at_bar_lines():
    tokens = np.arange(40 * 12, dtype=np.int32) % 100 + 2  # 40 bars of 3/4
    lines = np.arange(0, 40 * 12 + 1, 12)
    sequence, gap_offset, prefix_offset = infill_sequence(tokens, lines, 20, 22, ENC)
    assert prefix_offset - 1 == SUFFIX_BARS * 12  # the suffix: 8 bars after the gap
    assert gap_offset - prefix_offset == PREFIX_BARS * 12  # the prefix: 16 bars before it
    assert np.array_equal(sequence[prefix_offset:gap_offset], tokens[4 * 12 : 20 * 12])


# ----------------------------------------------------------------------------------------------------------
# Warm start and bundle


def gap_rows(steps: int, left: int = 3) -> np.ndarray:
    """Conditions with a gap column: 4/4 with a chord, the last `left` steps inside a gap."""
    rows = np.zeros((1, steps, NUM_FIELDS + 1), np.int32)
    rows[0, :, :NUM_FIELDS] = four_four(steps, ((0, "A:min"),))
    rows[0, -left:, GAP_COLUMN] = 1 + np.arange(left, 0, -1)
    return rows


@pytest.mark.parametrize("conditioned", [False, True])
def test_the_warm_start_predicts_melodies_as_the_melody_model_did(base, conditioned):
    if conditioned:
        keras.utils.set_random_seed(6)
        base = build_model(ModelConfig(**{**CONFIG.to_dict(), "condition_meter": True, "condition_chords": True}))
    model = warm_start(base, ENC)
    ids = np.array([[60, 0, 0, 1, 62, 0, 64, 0, 1, 65]], np.int32)
    rows = gap_rows(10)
    old = np.asarray(base({"ids": ids, "conditions": rows[..., :NUM_FIELDS]}))
    new = np.asarray(model({"ids": ids, "conditions": rows}))
    assert isinstance(model, InfillNetwork) and model.config.vocab_size == ENC.vocab_size + MAX_GAP_BARS
    assert model.config.condition_meter and model.config.condition_chords
    np.testing.assert_allclose(new[..., : ENC.vocab_size], old, atol=1e-6)  # the gap column starts at zero
    assert np.all(new[..., ENC.vocab_size :] == -10)


def test_a_lookback_model_is_refused_and_the_network_needs_its_conditions(base):
    with pytest.raises(MelodyRNNError, match="without lookback"):
        warm_start(build_model(ModelConfig(units=8, embedding_dim=4, attention=False, lookback=True)), ENC)
    with pytest.raises(MelodyRNNError, match="MelodyModel"):
        warm_start("default.melodyrnn", ENC)
    with pytest.raises(MelodyRNNError, match="needs its conditions"):
        warm_start(base, ENC)(np.zeros((1, 4), np.int32))


def test_the_task_marker_keeps_infill_and_melody_models_apart(paths):
    melody_path, infill_path = paths
    with pytest.raises(BundleError, match="'infill' model, not a 'melody' model: use it with melodyrnn.infill"):
        load(infill_path)
    with pytest.raises(BundleError, match="'infill' model"):
        Sampler(infill_path)
    with pytest.raises(BundleError, match="'melody' model, not an? 'infill' model"):
        InfillModel(melody_path)
    assert infill_model_for(melody_path) is None and infill_model_for(Sampler(melody_path)) is None
    assert isinstance(infill_model_for(infill_path), InfillModel)


def test_an_infill_bundle_of_an_older_layout_is_refused(base, tmp_path):
    old = tmp_path / "old.melodyrnn"
    config = {"model_config": CONFIG.to_dict(), "encoding_config": ENC.to_dict(), "max_gap_bars": MAX_GAP_BARS,
              "layout": "suffix, separator (gap bars), prefix, gap"}  # fmt: skip
    save_task_bundle(old, base, INFILL_TASK, config, None)
    with pytest.raises(BundleError, match="older layout"):
        InfillModel(old)


# ----------------------------------------------------------------------------------------------------------
# Infill and its score


SETTINGS = [*INFILL_SETTINGS, {"beam_size": 2}]


@pytest.mark.parametrize("options", SETTINGS)
@pytest.mark.parametrize("gap", [(0, 2), (2, 4), (4, 6), (0, 6)])
def test_bars_outside_the_gap_come_back_bit_for_bit(filler, options, gap):
    melody = song()
    lines = bar_lines(melody)
    start, end = int(lines[gap[0]]), int(lines[gap[1]])
    versions = filler.infill(melody, *gap, 3, seed=4, **options)
    assert len(versions) == 3
    for version in versions:
        assert_kept(version, melody, start, end)
        pitches = version.events[start:end][version.events[start:end] >= 0]
        if "key" in options:
            assert set(pitches % 12) <= {5, 7, 9, 10, 0, 2, 4}
        if "min_pitch" in options:
            assert np.all((pitches >= 55) & (pitches <= 75))


def test_same_seed_same_versions_and_temperature_zero_is_argmax(filler):
    melody = song()
    first, again = filler.infill(melody, 2, 4, 2, seed=9), filler.infill(melody, 2, 4, 2, seed=9)
    assert all(np.array_equal(a.events, b.events) for a, b in zip(first, again))
    greedy = filler.infill(melody, 2, 4, 1, temperature=0, chord_guidance=1)[0]  # the model as trained
    sequence, gap_offset, _ = infill_sequence(melody_to_tokens(greedy, ENC), bar_lines(melody), 2, 4, ENC)
    rows = infill_conditions(steps_of(melody), bar_lines(melody), 2, 4)
    # each greedy gap step is the argmax of one full call over the finished sequence at the step before it
    inputs = {"ids": sequence[None, :-1], "conditions": rows[None, 1:]}
    logits = np.asarray(filler.model(inputs))[0, gap_offset - 1 :, : ENC.vocab_size]
    assert np.array_equal(np.argmax(logits, axis=-1), sequence[gap_offset:])


@pytest.mark.parametrize("gap", [(0, 1), (2, 4), (5, 6)])
def test_the_score_is_exact_and_equals_a_step_by_step_reference(filler, gap):
    melody = song()
    score = filler.score_infill(melody, *gap)
    sequence, gap_offset, _ = infill_sequence(melody_to_tokens(melody, ENC), bar_lines(melody), *gap, ENC)
    rows = infill_conditions(steps_of(melody), bar_lines(melody), *gap)
    model, state, reference = filler.model, filler.model.initial_state(1), []
    for i in range(len(sequence) - 1):  # one step at a time, the sampler's path, not the full call
        logits, state = model.step(np.array([sequence[i]], np.int32), state, rows[None, i + 1])
        events = np.asarray(logits, np.float64)[0, : ENC.vocab_size]
        log_probs = events - np.log(np.exp(events - events.max()).sum()) - events.max()
        if i + 1 >= gap_offset:
            reference.append(log_probs[sequence[i + 1]])
    total, per_step = score
    assert per_step.shape == (len(sequence) - gap_offset,) and per_step.dtype == np.float64
    np.testing.assert_allclose(per_step, reference, atol=1e-4)
    assert total == pytest.approx(float(np.sum(reference)), abs=1e-3)
    assert score.standard_error == 0 and score.samples == 0 and score.suffix_evidence == 0


def test_the_gap_follows_the_chords_asked_for_and_the_melody_keeps_its_own(filler):
    melody = song()
    lines = bar_lines(melody)
    _, own, _ = filler._sequence(melody, 2, 4)
    _, asked, gap_offset = filler._sequence(melody, 2, 4, "F")
    assert np.all(asked[gap_offset:, CHORD] == chord_id("F:maj"))
    assert np.array_equal(asked[:gap_offset], own[:gap_offset])
    assert np.array_equal(asked[:, POSITION], own[:, POSITION])
    for guidance in (1, 3):
        for version in filler.infill(melody, 2, 4, 2, seed=3, chords="F", chord_guidance=guidance):
            assert_kept(version, melody, int(lines[2]), int(lines[4]))


def test_bad_requests_are_refused(filler):
    melody = song()
    with pytest.raises(InfillError, match="end_bar"):
        filler.infill(melody, 2, 9)
    with pytest.raises(MelodyRNNError, match="remove num_steps"):
        filler.infill(melody, 2, 4, num_steps=3)
    with pytest.raises(MelodyRNNError, match="`temperature`"):
        filler.infill(melody, 2, 4, temperature=-1)
    with pytest.raises(MelodyRNNError, match="`candidates`"):
        filler.infill(melody, 2, 4, candidates=0)
    with pytest.raises(MelodyRNNError, match="`samples`"):
        filler.score_infill(melody, 2, 4, samples=0)
    for call in (filler.infill, filler.score_infill):  # it reads both sides itself: nothing to adapt
        with pytest.raises(MelodyRNNError, match="`adapt` is for melody models"):
            call(melody, 2, 4, adapt=5)


def test_one_liners_cli_and_vary_use_the_infill_bundle(paths, tmp_path):
    _, infill_path = paths
    melody = song()
    versions = infill(melody, 2, 4, 2, infill_path, seed=1)
    loaded = infill_model_for(infill_path)  # loaded once per process
    assert loaded is infill_model_for(infill_path)
    assert versions[0].events.tobytes() == loaded.infill(melody, 2, 4, 2, seed=1)[0].events.tobytes()
    assert score_infill(melody, 2, 4, infill_path).standard_error == 0
    varied = vary(melody, 2, 1, infill_path, seed=3)[0]
    lines = bar_lines(melody)
    for bar in (0, 2, 4):
        assert np.array_equal(varied.events[lines[bar] : lines[bar + 1]], melody.events[lines[bar] : lines[bar + 1]])
    source = tmp_path / "song.mid"
    melody_to_midi(melody, source)
    out = tmp_path / "out"
    assert main(["infill", str(source), "--bars", "2-4", "-n", "2", "--model", str(infill_path), "-o", str(out)]) == 0
    assert len(list(out.glob("*.mid"))) == 2


def test_with_no_model_the_shipped_infill_bundle_is_used_and_without_one_the_melody_model(paths, monkeypatch):
    _, infill_path = paths
    monkeypatch.setattr(melodyrnn.infill_model, "DEFAULT_INFILL_PATH", infill_path)
    shipped = infill_model_for(None)
    assert isinstance(shipped, InfillModel) and shipped.path == infill_path
    assert melodyrnn.score_infill(song(), 2, 4).standard_error == 0  # exact: the infill model's
    monkeypatch.setattr(melodyrnn.infill_model, "DEFAULT_INFILL_PATH", infill_path.with_name("missing.melodyrnn"))
    assert infill_model_for(None) is None
    with pytest.raises(BundleError, match="no infill model is bundled"):
        InfillModel()


# ----------------------------------------------------------------------------------------------------------
# Training


def tunes(count=12) -> list[Melody]:
    rng = np.random.default_rng(2)
    out = []
    for i in range(count):
        notes = [(int(rng.integers(60, 72)), 4 * k, 4 * k + 3) for k in range(4 * 8)]
        out.append(Melody.from_notes(notes, num_steps=16 * 8, source=f"tune_{i}.mid"))
    return out


def test_a_tiny_training_run_writes_a_loadable_infill_bundle(base, tmp_path):
    data = PreparedData.from_melodies(tunes(), validation_fraction=0.3)
    assert data.indices("validation").size and data.indices("train").size
    config = InfillTrainConfig(max_updates=4, batch_size=4, validate_every=2, validation_gaps=6, warmup_updates=2)
    lines = []
    result = train_infill(data, tmp_path / "run", base, config, log=lines.append)
    assert result["updates"] == 4 and [row["update"] for row in result["history"]] == [0, 2, 4]
    assert len(lines) == 3 and (tmp_path / "run" / "log.csv").is_file()
    trained = InfillModel(result["best_path"])
    assert trained.metadata["updates"] == result["best_update"]
    melody = tunes(1)[0]
    (version,) = trained.infill(melody, 3, 5, 1, seed=0)
    assert_kept(version, melody, 48, 80)


def test_bad_training_settings_are_refused():
    with pytest.raises(MelodyRNNError, match="`batch_size` must be an integer >= 1"):
        InfillTrainConfig(batch_size=0)
    with pytest.raises(MelodyRNNError, match="`prefix_weight`"):
        InfillTrainConfig(prefix_weight=2.0)
