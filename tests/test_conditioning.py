"""Tests for meter and chord conditioning: melodyrnn.conditioning's per-step ids, chord names and progressions
(chords.py, sample_config.py), the model's conditioned inputs (full call, single steps and the compiled sampling
loop agree), training windows, a tiny chord-aware model trained and sampled, old bundles, and `--chords`."""

from __future__ import annotations

import io
import json
import zipfile

import keras
import numpy as np
import pytest

import melodyrnn
from melodyrnn.bundle import load_bundle, save_bundle
from melodyrnn.chords import chord_name_to_label
from melodyrnn.cli import main
from melodyrnn.conditioning import (
    CHANGE,
    CHORD,
    LEVEL,
    MAX_CHANGE,
    METER,
    POSITION,
    chord_id,
    prepared_conditions,
    step_conditions,
    transpose_conditions,
)
from melodyrnn.dataset import PreparedData
from melodyrnn.decoding import ChordGuidance
from melodyrnn.encoding import NUM_SPECIAL, EncodingConfig, Melody, melody_to_tokens
from melodyrnn.errors import ChordLabelError, MelodyRNNError
from melodyrnn.evaluation import score_token_lists
from melodyrnn.metrics import js_divergence_bits, onset_profile, strong_beat_chord_tone_share
from melodyrnn.model import ModelConfig, build_model
from melodyrnn.sample_config import SampleConfig, parse_progression, progression_to_chords
from melodyrnn.sampling import Sampler
from melodyrnn.training import train

ENC = EncodingConfig()
TINY = dict(units=12, num_layers=1, embedding_dim=8, attention_heads=2, attention_window=16, dropout=0.0)
CONDITIONED = dict(TINY, condition_meter=True, condition_chords=True, condition_dim=8)


# -- per-step conditions -------------------------------------------------------------------------------------


def test_bar_positions_and_levels_follow_the_meter():
    waltz = step_conditions(12, 4, ((0, 3, 4),))
    jig = step_conditions(12, 4, ((0, 6, 8),))
    assert waltz[:, POSITION].tolist() == jig[:, POSITION].tolist() == list(range(12))
    # 3/4 beats every quarter (4 steps), 6/8 every dotted quarter (6 steps)
    assert np.flatnonzero(waltz[:, LEVEL] <= 2).tolist() == [0, 4, 8]
    assert np.flatnonzero(jig[:, LEVEL] <= 2).tolist() == [0, 6]
    assert waltz[0, METER] != jig[0, METER]
    four = step_conditions(17, 4)
    assert four[16, POSITION] == 0 and four[8, LEVEL] == 1  # the next bar; beat 3 of 4/4 is the half bar


def test_a_meter_change_restarts_the_bar_count():
    c = step_conditions(20, 4, ((0, 3, 4), (12, 2, 4)))
    assert c[:, POSITION].tolist() == list(range(12)) + list(range(8))
    assert c[11, METER] != c[12, METER]


def test_chords_and_the_distance_to_the_next_change():
    c = step_conditions(10, 4, chords=((2, "A:min"), (6, "G:7")))
    assert c[:, CHORD].tolist() == [0, 0] + [chord_id("A:min")] * 4 + [chord_id("G:7")] * 4
    assert c[:, CHANGE].tolist() == [2, 1, 4, 3, 2, 1] + [MAX_CHANGE] * 4
    assert (step_conditions(4, 4)[:, CHORD] == 0).all()


def test_transposed_conditions_move_the_chord_roots_only():
    c = step_conditions(8, 4, chords=((0, "B:maj"), (4, "N")))
    up = transpose_conditions(c, 1)
    assert up[:4, CHORD].tolist() == [chord_id("C:maj")] * 4 and up[4:, CHORD].tolist() == [0] * 4
    assert np.array_equal(np.delete(up, CHORD, axis=1), np.delete(c, CHORD, axis=1))


# -- chord names and progressions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, label",
    [
        ("Am", "A:min"),
        ("F#m7", "F#:min7"),
        ("Bb7", "Bb:7"),
        ("Cmaj7", "C:maj7"),
        ("Gsus4", "G:sus4"),
        ("Bdim", "B:dim"),
        ("C/E", "C:maj/3"),
        ("C", "C:maj"),
        ("Ebm7b5", "Eb:hdim7"),
        ("N.C.", "N"),
        ("A:min7", "A:min7"),
        ("Db:maj", "C#:maj"),
    ],
)
def test_chord_names_as_musicians_write_them_and_harte_labels_parse(name, label):
    assert chord_name_to_label(name) == label


@pytest.mark.parametrize("bad", ["H7", "Cfoo", "", "C:xyz", "Am7#13"])
def test_a_bad_chord_raises_naming_it(bad):
    with pytest.raises(ChordLabelError, match=repr(bad).replace("\\", "\\\\").replace("(", r"\(")):
        chord_name_to_label(bad)


def test_every_progression_format_parses():
    assert progression_to_chords("Am F C G", (4, 4), 4, 80) == (
        (0, "A:min"), (16, "F:maj"), (32, "C:maj"), (48, "G:maj"), (64, "A:min"),
    )  # fmt: skip
    assert progression_to_chords("Am F | C G", (4, 4), 4, 32) == (
        (0, "A:min"), (8, "F:maj"), (16, "C:maj"), (24, "G:maj"),
    )  # fmt: skip
    assert progression_to_chords("Am:2 F:2", (4, 4), 4, 20) == ((0, "A:min"), (8, "F:maj"), (16, "A:min"))
    assert progression_to_chords([(0, "Am"), (6, "F")], (4, 4), 4, 64) == ((0, "A:min"), (24, "F:maj"))
    assert progression_to_chords("| D | G A7 |", (4, 4), 4, 32) == ((0, "D:maj"), (16, "G:maj"), (24, "A:7"))
    # 6/8 beats in dotted quarters: a bar is two beats of 6 steps
    assert progression_to_chords("D:1 G:1", (6, 8), 4, 24) == ((0, "D:maj"), (6, "G:maj"), (12, "D:maj"), (18, "G:maj"))
    assert parse_progression("C G:2 F:2") == (((0.0, "C:maj"), (4.0, "G:maj"), (6.0, "F:maj")), 8.0)


@pytest.mark.parametrize(
    "chords, error, match",
    [
        ("Am H7", ChordLabelError, "'H7'"),
        ("Am:5 | F", MelodyRNNError, "more than its 4 beats"),
        ("  ", MelodyRNNError, "at least one chord"),
        ([(2, "C"), (1, "G")], MelodyRNNError, "rising"),
        ("C:0", MelodyRNNError, "more than 0 beats"),
        (5, MelodyRNNError, "chords"),
    ],
)
def test_a_bad_progression_raises(chords, error, match):
    with pytest.raises(error, match=match):
        SampleConfig(chords=chords)


def test_sample_config_with_chords_round_trips_through_json():
    config = SampleConfig(chords=[(0, "Am"), (2, "G")], time_signature=(3, 4))
    assert SampleConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


# -- the model -----------------------------------------------------------------------------------------------


def _conditioned_model(**overrides):
    keras.utils.set_random_seed(1)
    return build_model(ModelConfig(**dict(CONDITIONED, vocab_size=ENC.vocab_size, **overrides)))


@pytest.mark.parametrize("overrides", [{}, {"lookback": True}, {"condition_chords": False}, {"condition_meter": False}])
def test_full_call_and_single_steps_agree_with_conditions(overrides):
    model = _conditioned_model(**overrides)
    ids = np.random.default_rng(0).integers(0, ENC.vocab_size, (2, 24)).astype("int32")
    conditions = np.stack(
        [
            step_conditions(25, 4, ((0, 6, 8),), ((0, "D:maj"), (12, "A:7")))[1:],
            step_conditions(25, 4, ((0, 3, 4),), ((4, "B:min"),))[1:],
        ]
    )
    full = np.asarray(model({"ids": ids, "conditions": conditions}))
    state, steps = model.initial_state(2), []
    for t in range(24):
        logits, state = model.step(ids[:, t], state, conditions[:, t])
        steps.append(np.asarray(logits))
    np.testing.assert_allclose(np.stack(steps, axis=1), full, atol=1e-5)
    assert np.abs(full - np.asarray(model({"ids": ids, "conditions": conditions[::-1]}))).max() > 1e-3


def test_a_conditioned_model_given_no_conditions_reads_4_4_without_chords():
    model = _conditioned_model()
    ids = np.random.default_rng(1).integers(0, ENC.vocab_size, (1, 20)).astype("int32")
    assumed = step_conditions(21, 4)[1:][None]
    np.testing.assert_allclose(
        np.asarray(model(ids)), np.asarray(model({"ids": ids, "conditions": assumed})), atol=1e-6
    )


def test_model_config_and_bundle_round_trip_in_safe_mode(tmp_path):
    model = _conditioned_model()
    config = model.config
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(MelodyRNNError, match="condition_meter"):
        ModelConfig(condition_meter=1)
    path = save_bundle(tmp_path / "c.melodyrnn", model, encoding=ENC)
    loaded = load_bundle(path, compile=False).model  # load_bundle is Keras safe mode
    ids = np.random.default_rng(2).integers(0, ENC.vocab_size, (1, 16)).astype("int32")
    cond = step_conditions(17, 4, ((0, 3, 4),), ((0, "E:min"),))[1:][None]
    np.testing.assert_allclose(
        np.asarray(loaded({"ids": ids, "conditions": cond})), np.asarray(model({"ids": ids, "conditions": cond}))
    )
    assert loaded.config == config


def test_the_compiled_loop_feeds_each_step_its_conditions(tmp_path):
    """Greedy sampling draws the argmax of each step's logits: re-running the full call on the drawn ids with
    the same conditions must give back every drawn id, so the loop fed each step the right meter and chords."""
    model = _conditioned_model()
    sampler = Sampler(melodyrnn.load_bundle(save_bundle(tmp_path / "c.melodyrnn", model, encoding=ENC)))
    options = dict(bars=3, temperature=0, time_signature=(3, 4), chord_guidance=1, seed=0)
    melodies = sampler.generate(2, chords="Am F | C G7", **options)
    ids = np.stack([melody_to_tokens(m, ENC) for m in melodies])
    cond = step_conditions(ids.shape[1], 4, ((0, 3, 4),), melodies[0].chords)[1:]
    logits = np.asarray(sampler.model({"ids": ids[:, :-1], "conditions": np.broadcast_to(cond, (2, *cond.shape))}))
    assert np.array_equal(logits.argmax(-1), ids[:, 1:])
    other = sampler.generate(2, chords="E B", **options)
    assert any(not np.array_equal(a.events, b.events) for a, b in zip(melodies, other))


def _withheld(conditions):
    """`conditions` with the chords withheld, as training shows a melody without chords."""
    free = conditions.copy()
    free[..., CHORD], free[..., CHANGE] = 0, MAX_CHANGE
    return free


def test_chord_guidance_mixes_the_model_with_and_without_the_chords_at_every_step():
    model = _conditioned_model()
    ids = np.random.default_rng(3).integers(0, ENC.vocab_size, (2, 20)).astype("int32")
    conditions = np.stack(
        [
            step_conditions(21, 4, ((0, 4, 4),), ((0, "C:maj"), (8, "G:7")))[1:],
            step_conditions(21, 4, ((0, 3, 4),), ((0, "A:min"),))[1:],
        ]
    )
    given = np.asarray(model({"ids": ids, "conditions": conditions}))
    free = np.asarray(model({"ids": ids, "conditions": _withheld(conditions)}))
    guided = ChordGuidance(model, 2.5)
    state, steps = guided.initial_state(2, None), []
    for t in range(20):
        logits, state = guided.step(ids[:, t], state, conditions[:, t])
        steps.append(np.asarray(logits))
    np.testing.assert_allclose(np.stack(steps, axis=1), free + 2.5 * (given - free), atol=1e-4)


def test_the_compiled_loop_with_chord_guidance_draws_the_argmax_of_the_mixed_logits(tmp_path):
    model = _conditioned_model()
    sampler = Sampler(melodyrnn.load_bundle(save_bundle(tmp_path / "c.melodyrnn", model, encoding=ENC)))
    options = dict(bars=3, temperature=0, chords="Am F | C G7", time_signature=(3, 4), seed=0)
    guided = sampler.generate(2, chord_guidance=4, **options)
    ids = np.stack([melody_to_tokens(m, ENC) for m in guided])
    cond = step_conditions(ids.shape[1], 4, ((0, 3, 4),), guided[0].chords)[1:]
    cond = np.broadcast_to(cond, (2, *cond.shape))
    given = np.asarray(sampler.model({"ids": ids[:, :-1], "conditions": cond}))
    free = np.asarray(sampler.model({"ids": ids[:, :-1], "conditions": _withheld(cond)}))
    assert np.array_equal((free + 4 * (given - free)).argmax(-1), ids[:, 1:])
    plain = sampler.generate(2, chord_guidance=1, **options)
    assert any(not np.array_equal(a.events, b.events) for a, b in zip(guided, plain))
    with pytest.raises(MelodyRNNError, match="chord_guidance"):
        sampler.generate(1, chord_guidance=-1, **options)


def test_chord_guidance_makes_the_bundled_model_play_more_chord_tones_on_the_beats():
    sampler = Sampler()
    options = dict(bars=8, chords="C G Am F", seed=5)
    shares = {w: strong_beat_chord_tone_share(sampler.generate(8, chord_guidance=w, **options)) for w in (0, 1, 3)}
    assert shares[0] + 0.1 < shares[1] < shares[3] - 0.1, shares


# -- data, training, sampling --------------------------------------------------------------------------------


def _melodies_with_chords(n=8):
    riff = [(57, 0, 2), (60, 2, 4), (64, 4, 6), (60, 6, 8), (53, 8, 10), (57, 10, 12), (60, 12, 14), (65, 14, 16)]
    return [
        Melody.from_notes(
            [(p + i % 3, s + 16 * k, e + 16 * k) for k in range(4) for p, s, e in riff],
            num_steps=64,
            source=f"f{i}.mid",
            time_signatures=((0, 3, 4) if i % 2 else (0, 4, 4),),
            chords=tuple((16 * k + half, label) for k in range(4) for half, label in ((0, "A:min"), (8, "F:maj"))),
        ).transpose(i % 3)
        for i in range(n)
    ]


def test_windows_carry_the_conditions_of_the_steps_they_predict_and_transpose_the_chords():
    data = PreparedData.from_melodies(_melodies_with_chords(), validation_fraction=0.3)
    every = prepared_conditions(data)
    assert every.shape == (data.tokens.size, 5)
    ds = data.dataset(16, 64, split="all", shuffle=False, with_conditions=True)
    inputs, _, _ = next(iter(ds))
    first = data.melody(0)
    expected = step_conditions(len(first), 4, first.time_signatures, first.chords)[1:17]
    assert np.array_equal(inputs["conditions"][0].numpy(), expected)
    moved = data.dataset(16, 64, split="all", shuffle=False, with_conditions=True, transpose=5, seed=3)
    m_inputs, _, _ = next(iter(moved))
    shifts = set()
    for row in range(inputs["ids"].shape[0]):  # the shift of a window is its first note's
        ids, moved_ids = inputs["ids"][row].numpy(), m_inputs["ids"][row].numpy()
        first_note = int(np.flatnonzero(ids >= NUM_SPECIAL)[0])
        shift = int(moved_ids[first_note]) - int(ids[first_note])
        shifts.add(shift)
        assert np.array_equal(
            m_inputs["conditions"][row], transpose_conditions(inputs["conditions"][row].numpy(), shift)
        )
    assert len(shifts) > 1


def test_a_tiny_chord_aware_model_trains_and_samples_with_and_without_chords(tmp_path):
    keras.utils.set_random_seed(0)
    data = PreparedData.from_melodies(_melodies_with_chords(), validation_fraction=0.3)
    result = train(
        data,
        tmp_path / "run",
        CONDITIONED,
        dict(seq_len=16, batch_size=4, learning_rate=0.01, max_minutes=None, patience=None, epochs=2),
        progress=False,
    )
    losses = [row["loss"] for row in result.history if "loss" in row and row["loss"] is not None]
    assert losses and all(np.isfinite(losses))
    sampler = Sampler(result.best_path)
    assert sampler.model.config.condition_chords
    with_chords = sampler.generate(2, bars=4, chords="Am F", seed=1)
    assert with_chords[0].chords == ((0, "A:min"), (16, "F:maj"), (32, "A:min"), (48, "F:maj"))
    without = sampler.generate(2, bars=4, seed=1)
    assert without[0].chords == () and len(without[0]) == 64
    primed = sampler.generate(1, bars=4, primer=_melodies_with_chords(1)[0], chords="C G", seed=1)[0]
    assert primed.chords[:8] == _melodies_with_chords(1)[0].chords[:8]  # the primer keeps its own chords


def _as_old_bundle(path, out):
    """A copy of a bundle as one saved before the conditioning fields existed: none in either config."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(io.BytesIO(members["model.keras"])) as zf:
        inner = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(inner["config.json"])
    header = json.loads(members["bundle.json"])
    for fields in (config["config"]["model_config"], header["model_config"]):
        for name in ("condition_meter", "condition_chords", "condition_dim"):
            del fields[name]
    inner["config.json"] = json.dumps(config).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in inner.items():
            zf.writestr(name, data)
    members["model.keras"] = buffer.getvalue()
    import hashlib

    header["files"]["model.keras"] = {
        "bytes": len(buffer.getvalue()),
        "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
    }
    members["bundle.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def test_old_bundles_load_and_sample_unchanged_and_carry_the_chords_asked_for(tmp_path):
    keras.utils.set_random_seed(2)
    model = build_model(ModelConfig(**dict(TINY, vocab_size=ENC.vocab_size)))
    new = save_bundle(tmp_path / "new.melodyrnn", model, encoding=ENC)
    old = load_bundle(_as_old_bundle(new, tmp_path / "old.melodyrnn"), compile=False)
    assert not old.model.config.conditioned
    before = Sampler(load_bundle(new, compile=False)).generate(2, bars=2, seed=5)
    after = Sampler(old).generate(2, bars=2, seed=5)
    assert all(np.array_equal(a.events, b.events) for a, b in zip(before, after))
    # an unconditioned model's notes ignore the chords, but its melodies carry them
    chorded = Sampler(old).generate(2, bars=2, seed=5, chords="D G")
    assert all(np.array_equal(a.events, b.events) for a, b in zip(before, chorded))
    assert chorded[0].chords == ((0, "D:maj"), (16, "G:maj"))


def test_generate_and_the_cli_take_chords(tmp_path, capsys):
    model = _conditioned_model()
    path = save_bundle(tmp_path / "c.melodyrnn", model, encoding=ENC)
    melodies = melodyrnn.generate(1, model=path, bars=2, chords="Am:2 E7:2", seed=0)
    assert melodies[0].chords[:2] == ((0, "A:min"), (8, "E:7"))
    out = tmp_path / "out"
    assert main(["generate", "--model", str(path), "--bars", "2", "--chords", "Dm | G7 C", "-o", str(out)]) == 0
    assert melodyrnn.read_midi(next(out.glob("*.mid"))).tracks  # a real MIDI file was written
    capsys.readouterr()
    assert main(["generate", "--model", str(path), "--chords", "Am Xm7", "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert "Xm7" in err and len(err.strip().splitlines()) == 1
    flags = ["generate", "--model", str(path), "--chords", "Am", "-o", str(out), "--chord-guidance"]
    assert main([*flags, "-1"]) != 0
    assert "`chord_guidance` must be a number in [0, 10], got -1.0" in capsys.readouterr().err


# -- metrics -------------------------------------------------------------------------------------------------


def test_onset_profile_chord_tone_share_and_js_divergence():
    waltz = Melody.from_notes(
        [(60, 0, 4), (62, 4, 8), (64, 8, 12), (65, 12, 16), (67, 16, 20)],
        num_steps=24,
        time_signatures=((0, 3, 4),),
        chords=((0, "C:maj"), (12, "F:maj")),
    )
    profile = onset_profile([waltz, Melody.from_notes([(60, 1, 2)], num_steps=8)], (3, 4))  # the 4/4 one is skipped
    assert profile.tolist() == [0.4, 0, 0, 0, 0.4, 0, 0, 0, 0.2, 0, 0, 0]
    # beats at steps 0-16: C under C, D under C, E under C, F under F, G under F (step 20 is silent)
    assert strong_beat_chord_tone_share(waltz) == pytest.approx(3 / 5)
    assert strong_beat_chord_tone_share(Melody.from_notes([(60, 0, 4)], num_steps=8)) is None
    assert js_divergence_bits([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_divergence_bits([2, 2], [1, 1]) == 0.0
    with pytest.raises(MelodyRNNError, match="same shape"):
        js_divergence_bits([1, 0], [1, 0, 0])


def test_scoring_reads_each_melodys_conditions():
    model = _conditioned_model()
    melodies = _melodies_with_chords(3)[1:]  # one in 3/4, one in 4/4
    tokens = [melody_to_tokens(m, ENC) for m in melodies]
    conditions = [step_conditions(len(m), 4, m.time_signatures, m.chords) for m in melodies]
    scored = score_token_lists(model, tokens, conditions=conditions)
    for ids, cond, (log_likelihood, _) in zip(tokens, conditions, scored):
        logits = np.asarray(model({"ids": ids[None, :-1], "conditions": cond[None, 1:]}), np.float64)[0]
        log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
        log_probs -= logits.max(-1, keepdims=True)
        np.testing.assert_allclose(log_likelihood, log_probs[np.arange(ids.size - 1), ids[1:]], atol=1e-4)
    assumed = score_token_lists(model, tokens)  # 4/4 and no chords
    assert np.abs(assumed[1][0] - scored[1][0]).max() > 1e-3


def test_beam_search_feeds_the_conditions_too(tmp_path):
    """Greedy beam search with one beam is greedy decoding: the same melodies as the sampling loop's."""
    model = _conditioned_model()
    sampler = Sampler(melodyrnn.load_bundle(save_bundle(tmp_path / "c.melodyrnn", model, encoding=ENC)))
    options = dict(bars=2, temperature=0, chords="Dm G7 | C", time_signature=(6, 8), seed=0)
    greedy = sampler.generate(2, **options)
    beam = sampler.generate(2, branch_factor=2, **options)  # one beam: the best of two branches is the argmax
    assert all(np.array_equal(a.events, b.events) for a, b in zip(greedy, beam))
    # 6/8: a bar of two dotted-quarter beats, 6 steps each
    assert beam[0].chords == greedy[0].chords == ((0, "D:min"), (6, "G:7"), (12, "C:maj"))
