"""The sampler: reproducibility, greedy/top-k/beam equivalences, the compiled loops against a slow reference,
constraints, primers kept in the output, argument errors, MIDI read back by three libraries, the one-liner and
the CLI. The config and primer parsing alone: test_sample_config.py."""

from __future__ import annotations

import io
from pathlib import Path

import keras
import mido
import numpy as np
import pretty_midi
import pytest
from test_sample_config import primer_file_bytes

import melodyrnn
from melodyrnn.bundle import Bundle, save_bundle
from melodyrnn.dataset import PreparedData
from melodyrnn.encoding import (
    NO_EVENT,
    NO_EVENT_ID,
    NUM_SPECIAL,
    EncodingConfig,
    Melody,
    melody_to_midi,
    melody_to_tokens,
)
from melodyrnn.errors import BundleError, MelodyRNNError, OutOfRangeError
from melodyrnn.model import ModelConfig, build_model
from melodyrnn.sample_config import primer_to_melody
from melodyrnn.sampling import Sampler
from melodyrnn.theory import key_pitch_classes

ENCODING = EncodingConfig(min_pitch=48, max_pitch=84)
# attention window 16 < the lengths sampled below, so the cache's ring buffer wraps around
CONFIG = ModelConfig(
    units=16,
    num_layers=1,
    embedding_dim=8,
    attention=True,
    attention_heads=2,
    attention_window=16,
    dropout=0.0,
    vocab_size=ENCODING.vocab_size,
)


def _training_melodies() -> list[Melody]:
    # repeated notes and stepwise motion, so the trained model likes to repeat (the cap has work to do)
    out = []
    for i in range(6):
        notes, step = [], 0
        for k in range(16):
            pitch = 60 + [0, 2, 4, 5, 7, 5, 4, 2][(k + i) % 8]
            for _ in range(2 + k % 2):
                notes.append((pitch, step, step + 2))
                step += 2
        out.append(Melody.from_notes(notes, source=f"t{i}.mid"))
    return out


def train_tiny_bundle(path: Path) -> Path:
    """A small model trained for seconds on the test melodies, saved at `path`: enough to hear a key and a meter."""
    keras.utils.set_random_seed(5)
    model = build_model(CONFIG)
    model.compile(
        optimizer=keras.optimizers.Adam(0.03), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    data = PreparedData.from_melodies(_training_melodies(), ENCODING).dataset(
        seq_len=32, batch_size=8, split="all", seed=0
    )
    model.fit(data, epochs=3, verbose=0)
    save_bundle(path, model, CONFIG, ENCODING)
    return path


@pytest.fixture(scope="module")
def bundle_path(trained_tiny_bundle):
    return trained_tiny_bundle


@pytest.fixture(scope="module")
def sampler(bundle_path):
    return Sampler(bundle_path)


def _ids(melodies) -> np.ndarray:
    return np.stack([melody_to_tokens(m, ENCODING) for m in melodies])


def _reference_greedy(model, prefix: list[int], num_steps: int, steps_per_bar: int | None = None) -> list[int]:
    """The naive way: the whole prefix through the full-sequence model at every step, argmax."""
    ids = list(prefix)
    while len(ids) < num_steps:
        inputs = np.array([ids], np.int32)
        if steps_per_bar is not None:
            inputs = {"ids": inputs, "bar": np.array([steps_per_bar], np.int32)}
        logits = np.asarray(model(inputs))[0, -1]
        ids.append(int(np.argmax(logits)))
    return ids


# -- the compiled loop ------------------------------------------------------------------------------------------


def test_compiled_loop_equals_slow_reference_with_primer(sampler):
    primer = [60, 64, 67]
    out = sampler.generate(2, steps=40, primer=primer, temperature=0)
    prefix = melody_to_tokens(primer_to_melody(primer, ENCODING), ENCODING).tolist()
    expected = _reference_greedy(sampler.model, prefix, 40)
    assert _ids(out).tolist() == [expected, expected]


def test_compiled_loop_equals_slow_reference_without_primer(sampler):
    # the documented rule: step 0 is the most likely NOTE_ON after one NO_EVENT input on a throwaway state
    logits = np.asarray(sampler.model(np.array([[NO_EVENT_ID]], np.int32)))[0, -1]
    first = NUM_SPECIAL + int(np.argmax(logits[NUM_SPECIAL:]))
    out = sampler.generate(1, steps=36, temperature=0)
    assert _ids(out)[0].tolist() == _reference_greedy(sampler.model, [first], 36)


def test_an_unprimed_melody_opens_with_a_pickup_as_often_as_asked(sampler):
    # one shape of request (32 melodies of 2 bars) so that the compiled loops are shared
    def opened(**options):
        melodies = sampler.generate(32, bars=2, seed=3, **options)
        silent = [m.events[0] == NO_EVENT for m in melodies]
        # the first note comes by the last step of the first bar (16 steps)
        assert all(0 <= np.flatnonzero(m.events >= 0)[0] < 16 for m in melodies)
        return silent

    assert not any(opened())  # a bundle that does not record its data's openings: on the downbeat
    assert all(opened(pickup=1.0)) and not any(opened(pickup=0.0))
    half = opened(pickup=0.5)
    assert 4 < sum(half) < 28 and half == opened(pickup=0.5)  # drawn per melody, reproducibly
    assert all(opened(pickup=0.6, temperature=0)) and not any(opened(pickup=0.4, temperature=0))
    assert all(opened(pickup=1.0, beam_size=2, temperature=1.5))
    # a melody shorter than its first bar still gets a note; one of a single step opens with it
    assert all((m.events >= 0).sum() > 0 for m in sampler.generate(8, steps=2, pickup=1.0, seed=0))
    assert all(m.events[0] >= 0 for m in sampler.generate(4, steps=1, pickup=1.0, seed=0))
    primed = sampler.generate(4, bars=2, primer="C4", pickup=1.0, seed=0)
    assert all(m.events[0] == 60 for m in primed)  # a primer opens the melody as it is
    # a bundle that records its training melodies' openings is followed by default
    bundle = melodyrnn.load_bundle(sampler.bundle.path, compile=False)
    recorded = Bundle(bundle.model, bundle.model_config, bundle.encoding, {"data": {"pickup_share": 1.0}}, "")
    assert all(m.events[0] == NO_EVENT for m in Sampler(recorded).generate(32, bars=2, seed=0))


def test_top_k_1_equals_greedy(sampler):
    greedy = sampler.generate(3, bars=2, primer="C4 E4", temperature=0)
    top1 = sampler.generate(3, bars=2, primer="C4 E4", temperature=1.3, top_k=1, seed=11)
    assert _ids(top1).tolist() == _ids(greedy).tolist()


def test_beam_size_1_equals_greedy(sampler):
    greedy = sampler.generate(2, bars=2, primer="D4", temperature=0, key="D minor")
    beam = sampler.generate(2, bars=2, primer="D4", temperature=0, key="D minor", beam_size=1, branch_factor=4)
    assert _ids(beam).tolist() == _ids(greedy).tolist()


def test_beam_search_keeps_constraints_and_is_reproducible(sampler):
    kwargs = dict(bars=2, primer="G4", beam_size=4, branch_factor=3, key="G major", seed=3, top_p=0.9)
    first, second = sampler.generate(2, **kwargs), sampler.generate(2, **kwargs)
    assert _ids(first).tolist() == _ids(second).tolist()
    allowed = key_pitch_classes("G major")
    for m in first:
        assert len(m) == 32 and set((m.pitches % 12).tolist()) <= allowed


# -- reproducibility and sampling controls ----------------------------------------------------------------------


def test_same_seed_gives_identical_midi_bytes(bundle_path, sampler):
    kwargs = dict(bars=4, temperature=0.9, top_p=0.95, seed=7)
    a = [melody_to_midi(m) for m in sampler.generate(3, **kwargs)]
    b = [melody_to_midi(m) for m in Sampler(bundle_path).generate(3, **kwargs)]  # a fresh sampler, fresh compile
    assert a == b
    c = [melody_to_midi(m) for m in sampler.generate(3, **{**kwargs, "seed": 8})]
    assert a != c


def test_melodies_in_a_batch_differ_when_sampling(sampler):
    out = _ids(sampler.generate(4, bars=4, temperature=1.0, seed=1))
    assert len({tuple(row) for row in out.tolist()}) == 4


def test_every_id_stays_in_the_vocabulary(sampler):
    for m in sampler.generate(8, steps=64, temperature=3.0, seed=2):
        assert len(m) == 64
        ids = melody_to_tokens(m, ENCODING)  # raises on a pitch outside the vocabulary
        assert ids.min() >= 0 and ids.max() < ENCODING.vocab_size


@pytest.mark.parametrize(
    "key", ["D minor", "F# dorian", "Bb major", "A blues", "E harmonic minor", "C pentatonic minor"]
)
def test_key_constraint_yields_only_scale_notes(sampler, key):
    allowed = key_pitch_classes(key)
    for m in sampler.generate(4, steps=48, temperature=1.5, key=key, seed=4):
        assert m.pitches.size > 0
        assert set((m.pitches % 12).tolist()) <= allowed


def test_pitch_range_constraint(sampler):
    for m in sampler.generate(4, steps=48, temperature=1.5, min_pitch=62, max_pitch=69, seed=5):
        assert m.pitches.size > 0 and m.pitches.min() >= 62 and m.pitches.max() <= 69


def test_max_repeats_caps_immediate_repeats(sampler):
    uncapped = sampler.generate(4, steps=64, temperature=0.5, seed=6, primer="C4 C4")
    assert any((np.diff(m.pitches[2:]) == 0).any() for m in uncapped)  # the model does repeat
    for cap in (0, 1):
        for m in sampler.generate(4, steps=64, temperature=0.5, seed=6, primer="C4 C4", max_repeats=cap):
            runs, run = [], 0
            for a, b in zip(m.pitches[1:].tolist(), m.pitches[2:].tolist()):  # after the primer's own repeat
                run = run + 1 if a == b else 0
                runs.append(run)
            assert max(runs, default=0) <= cap


def test_repetition_penalty_reduces_repeats(sampler):
    def repeats(melodies):
        return sum(int((np.diff(m.pitches) == 0).sum()) for m in melodies)

    plain = sampler.generate(8, steps=64, temperature=0.8, seed=9)
    penalized = sampler.generate(8, steps=64, temperature=0.8, seed=9, repetition_penalty=20.0)
    assert repeats(penalized) < repeats(plain)


# -- primers ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["names", "pitches", "name_list", "melody", "midi_bytes", "midi_path"])
def test_primer_is_preserved(sampler, tmp_path, kind):
    data = primer_file_bytes()
    path = tmp_path / "primer.mid"
    path.write_bytes(data)
    primer = {
        "names": "D4 F4 A4",
        "pitches": [62, 65, 69],
        "name_list": ["D4", "F4", "A4"],
        "melody": Melody.from_notes([(62, 0, 4), (65, 4, 8), (69, 8, 12)], steps_per_quarter=4),
        "midi_bytes": data,
        "midi_path": str(path),
    }[kind]
    expected = primer_to_melody(primer, ENCODING)
    for m in sampler.generate(2, bars=4, primer=primer, seed=1):
        np.testing.assert_array_equal(m.events[: len(expected)], expected.events)
    if kind.startswith("midi"):
        assert expected.events.size == 24  # two bars of 3/4, as the training extraction cut it
        assert (m.qpm, m.time_signature, m.program, m.velocity) == (90.0, (3, 4), 40, 90)
        assert len(m) == 4 * 12  # four bars of 3/4


def test_primer_metadata_can_be_overridden(sampler):
    m = sampler.generate(
        1, bars=2, primer=primer_file_bytes(), qpm=130, time_signature="4/4", program=5, velocity=70, seed=1
    )[0]
    assert (m.qpm, m.time_signature, m.program, m.velocity, len(m)) == (130.0, (4, 4), 5, 70, 32)


# -- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"temperature": -1}, MelodyRNNError, r"`temperature` must be >= 0, got -1"),
        ({"top_p": 0.0}, MelodyRNNError, r"`top_p` must be in \(0, 1\], got 0.0"),
        ({"top_p": 1.5}, MelodyRNNError, r"`top_p` must be in \(0, 1\], got 1.5"),
        ({"top_k": -2}, MelodyRNNError, r"`top_k` must be an integer >= 0"),
        ({"key": "H major"}, MelodyRNNError, r"unknown tonic 'H'"),
        ({"key": "C superlocrian"}, MelodyRNNError, r"unknown scale 'superlocrian'"),
        ({"primer": "C4 X9"}, MelodyRNNError, r"unknown note name 'X9'"),
        ({"primer": "C4 E4", "steps": 4}, MelodyRNNError, r"at least the primer's \(8 steps\)"),
        ({"primer": "C1"}, OutOfRangeError, r"`primer`: melody pitches 24-24 lie outside \[48, 84\]"),
        ({"primer": []}, MelodyRNNError, r"`primer` must hold at least one note"),
        ({"bars": 2, "steps": 32}, MelodyRNNError, r"give `bars` or `num_steps`, not both"),
        ({"beam_size": 0}, MelodyRNNError, r"`beam_size` must be an integer in \[1, 256\], got 0"),
        ({"max_repeats": -1}, MelodyRNNError, r"`max_repeats` must be an integer >= 0 or None"),
        ({"time_signature": "3-4"}, MelodyRNNError, r"`time_signature` must look like '3/4'"),
        ({"min_pitch": 30, "max_pitch": 40}, MelodyRNNError, r"no pitch of the model's range \[48, 84\]"),
        ({"min_pitch": 70, "max_pitch": 60}, MelodyRNNError, r"`min_pitch` must be <= `max_pitch`"),
    ],
)
def test_invalid_arguments_raise_clear_errors(sampler, kwargs, error, match):
    with pytest.raises(error, match=match):
        sampler.generate(1, **kwargs)


def test_sampler_rejects_other_objects_and_missing_bundles(tmp_path):
    with pytest.raises(MelodyRNNError, match="`bundle` must be a Bundle"):
        Sampler(42)
    with pytest.raises(BundleError, match="does not exist"):
        Sampler(tmp_path / "missing.melodyrnn")


# -- MIDI out ----------------------------------------------------------------------------------------------------


def test_generated_midi_reads_back_with_pretty_midi_mido_and_music21(sampler, tmp_path):
    import music21

    melodies = sampler.generate(
        2, bars=4, qpm=110, time_signature=(3, 4), program=73, velocity=88, seed=3, primer="A4 C5"
    )
    seconds_per_step = 60.0 / 110 / ENCODING.steps_per_quarter
    for i, melody in enumerate(melodies):
        assert len(melody) == 4 * 12
        path = tmp_path / f"m{i}.mid"
        data = melody_to_midi(melody, path)

        pm = pretty_midi.PrettyMIDI(str(path))
        _, tempi = pm.get_tempo_changes()
        assert tempi.tolist() == pytest.approx([110.0])
        ts = pm.time_signature_changes
        assert [(t.numerator, t.denominator) for t in ts] == [(3, 4)]
        (inst,) = pm.instruments
        assert inst.program == 73 and not inst.is_drum
        expected = [(p, s * seconds_per_step, e * seconds_per_step) for p, s, e in melody.notes()]
        got = [(n.pitch, n.start, n.end) for n in inst.notes]
        assert [g[0] for g in got] == [e[0] for e in expected]
        np.testing.assert_allclose([g[1:] for g in got], [e[1:] for e in expected], atol=1e-3)
        assert all(n.velocity == 88 for n in inst.notes)
        assert pm.get_end_time() <= 48 * seconds_per_step + 1e-3

        mf = mido.MidiFile(file=io.BytesIO(data))
        metas = [m for t in mf.tracks for m in t if m.is_meta]
        assert [round(mido.tempo2bpm(m.tempo), 3) for m in metas if m.type == "set_tempo"] == [110.0]
        assert [(m.numerator, m.denominator) for m in metas if m.type == "time_signature"] == [(3, 4)]
        assert {m.program for t in mf.tracks for m in t if m.type == "program_change"} == {73}

        score = music21.converter.parse(str(path))
        assert score.flatten().getElementsByClass("TimeSignature")[0].ratioString == "3/4"
        assert score.flatten().getElementsByClass("MetronomeMark")[0].number == pytest.approx(110)
        m21_pitches = [n.pitch.midi for n in score.stripTies().flatten().notes]  # bar lines split notes into ties
        assert m21_pitches == melody.pitches.tolist()
        assert score.flatten().highestTime <= 4 * 3 + 1e-6  # quarter notes: four bars of 3/4


# -- the one-liner and the CLI --------------------------------------------------------------------------------------


def test_one_liner_returns_melodies_and_writes_files(bundle_path, tmp_path):
    melodies = melodyrnn.generate(3, model=bundle_path, bars=2, key="A minor", seed=1, output=tmp_path / "out")
    files = sorted((tmp_path / "out").glob("*.mid"))
    assert len(melodies) == 3 and [f.name for f in files] == ["melody_001.mid", "melody_002.mid", "melody_003.mid"]
    assert files[0].read_bytes() == melody_to_midi(melodies[0])
    one = melodyrnn.generate(1, model=bundle_path, bars=2, seed=1, output=tmp_path / "one.mid")
    assert (tmp_path / "one.mid").read_bytes() == melody_to_midi(one[0])


def _lookback_gru_sampler(**config_fields) -> Sampler:
    keras.utils.set_random_seed(8)
    config = ModelConfig(
        cell="gru",
        num_layers=2,
        units=12,
        embedding_dim=6,
        attention=False,
        lookback=True,
        vocab_size=ENCODING.vocab_size,
        **config_fields,
    )
    return Sampler(Bundle(build_model(config), config, ENCODING))


def test_compiled_loop_equals_slow_reference_for_a_lookback_gru_model():
    # the state carried also holds the lookback history; two stacked layers, no attention
    sampler = _lookback_gru_sampler(steps_per_bar=8)
    primer = [60, 62]
    out = sampler.generate(1, steps=30, primer=primer, temperature=0)
    prefix = melody_to_tokens(primer_to_melody(primer, ENCODING), ENCODING).tolist()
    assert _ids(out)[0].tolist() == _reference_greedy(sampler.model, prefix, 30)


def test_compiled_loops_count_the_bars_of_the_time_signature_for_a_lookback_model():
    # 3/4 asked for: 12-step bars, not the config's 16, in the sampling loop and the beam loop
    sampler = _lookback_gru_sampler(max_steps_per_bar=32)
    primer = [60, 62]
    prefix = melody_to_tokens(primer_to_melody(primer, ENCODING), ENCODING).tolist()
    expected = _reference_greedy(sampler.model, prefix, 40, steps_per_bar=12)
    assert expected != _reference_greedy(sampler.model, prefix, 40)  # the bar changes what the model plays
    assert (
        _ids(sampler.generate(1, steps=40, primer=primer, temperature=0, time_signature="3/4"))[0].tolist() == expected
    )
    assert (
        _ids(sampler.generate(1, steps=40, primer=primer, temperature=0, time_signature="3/4", branch_factor=2))[
            0
        ].tolist()[: len(prefix)]
        == prefix
    )  # the beam loop runs
    waltz = Melody.from_notes([(60, 0, 4), (62, 4, 8)], time_signatures=((0, 3, 4),))  # a primer with its own 3/4
    assert _ids(sampler.generate(1, steps=40, primer=waltz, temperature=0))[0].tolist() == expected
    with pytest.raises(MelodyRNNError, match=r"max_steps_per_bar=32.*got 36"):
        sampler.generate(1, steps=8, time_signature="9/4")
