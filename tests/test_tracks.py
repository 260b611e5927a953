"""tracks: which track of a song is the melody — each kind of arrangement, lying and missing names, the report,
the "all" mode, selection by name and index, and the errors for a bad one."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import midi_bytes, note_track, scale_notes

from melodyrnn import ExtractionConfig, NoMelodyError, PrepareReport, prepare, read_midi, score_to_melodies
from melodyrnn.errors import MelodyRNNError
from melodyrnn.midi_io import Score, Track, score_to_midi
from melodyrnn.tracks import choose_melody_tracks, track_features

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from arrangements import HARD_KINDS, KINDS, NAMINGS, Arrangement, arrange  # noqa: I001  (benchmarks/ is not a package)

TUNES = Path(__file__).resolve().parents[1] / "training_data" / "midi"
REEL = TUNES / "ryansMammoth" / "7thRegimentReel.mid"
AIR = TUNES / "oneills1850" / "0001-0050_x0002_fare_you_well.mid"


def _arranged(kind: str, naming: str, register: str = "normal", tune: Path = REEL, seed: int = 3) -> Arrangement:
    return arrange(read_midi(tune), kind=kind, naming=naming, register=register, seed=seed)


@pytest.mark.parametrize("naming", NAMINGS)
@pytest.mark.parametrize("kind", KINDS + HARD_KINDS)
def test_each_kind_of_arrangement_picks_the_melody_track(kind, naming):
    a = _arranged(kind, naming)
    score = read_midi(a.midi)  # through the file, as prepare sees it: missing names become "track N"
    choice = choose_melody_tracks(score)
    assert choice.taken == (a.melody_track,), [v.reason for v in choice.verdicts]
    taken = choice.verdicts[a.melody_track]
    assert taken.taken and taken.reason.startswith("melody")
    assert all(v.reason.startswith("left out: ") for v in choice.verdicts if not v.taken)


@pytest.mark.parametrize("kind", ["folk", "piano", "counter", "arpeggio"])
def test_a_melody_below_its_accompaniment_is_still_found(kind):
    a = _arranged(kind, "missing", register="low", tune=AIR, seed=11)
    melody = a.score.tracks[a.melody_track]
    chords = [t for t, role in zip(a.score.tracks, a.roles) if role in ("chords", "piano_rh", "arpeggio", "pad")]
    assert np.median([n.pitch for n in melody.notes]) < np.median([n.pitch for t in chords for n in t.notes])
    assert choose_melody_tracks(read_midi(a.midi)).taken == (a.melody_track,)


def test_a_descant_above_the_melody_does_not_take_its_place():
    a = _arranged("descant", "missing", tune=AIR)
    features = track_features(a.score)
    descant, melody = features[a.roles.index("descant")], features[a.melody_track]
    assert descant["on_top"] > melody["on_top"] and descant["stepwise"] > 0.5
    choice = choose_melody_tracks(read_midi(a.midi))
    assert choice.taken == (a.melody_track,)
    assert choice.verdicts[a.roles.index("descant")].reason.startswith("left out: ")


def test_names_that_lie_do_not_decide():
    a = _arranged("folk", "misleading")
    score = read_midi(a.midi)
    chords = a.roles.index("chords")
    score.tracks[chords].name = "Melody"
    score.tracks[a.melody_track].name = "Chords"
    choice = choose_melody_tracks(score)
    assert choice.taken == (a.melody_track,)
    assert choice.verdicts[chords].key == "plays chords"


def test_left_out_reasons_name_the_part():
    a = _arranged("band", "honest")
    choice = choose_melody_tracks(read_midi(a.midi))
    keys = {role: v.key for role, v in zip(a.roles, choice.verdicts)}
    assert keys["drums"] == "drum track"
    assert keys["chords"] in ("plays chords", "sustained chords")
    assert keys["pad"] in ("plays chords", "sustained chords")
    assert keys["bass"] not in ("melody", "plays chords")


def test_features_describe_each_pitched_track():
    a = _arranged("band", "missing", tune=AIR)
    features = track_features(a.score)
    assert set(features) == {i for i, role in enumerate(a.roles) if role != "drums"}
    melody, chords, bass = (features[a.roles.index(role)] for role in ("melody", "chords", "bass"))
    assert melody["chord_onsets"] == 0.0 and chords["chord_onsets"] == 1.0
    assert melody["stepwise"] > bass["stepwise"] and bass["at_bottom"] == 1.0


def test_one_pitched_track_is_kept_whatever_it_looks_like():
    bass = Track([n for n in _arranged("folk", "honest").score.tracks[0].notes], program=33, name="Bass")
    drums = Track(scale_notes_as_notes(36), is_drum=True, name="Drums")
    choice = choose_melody_tracks(Score([drums, bass]))
    assert choice.taken == (1,)
    assert choice.verdicts[1].reason == "melody: the only pitched track"


def scale_notes_as_notes(low: int):
    from melodyrnn.midi_io import Note

    return [Note(p, 80, s, e) for p, s, e in scale_notes(8, low)]


def test_training_data_files_keep_their_one_track():
    for path in (REEL, AIR):
        score = read_midi(path)
        auto = score_to_melodies(score)
        every = score_to_melodies(score, extraction=ExtractionConfig(melody_tracks="all"))
        assert auto and [m.events.tolist() for m in auto] == [m.events.tolist() for m in every]


def test_all_keeps_every_pitched_track_as_before():
    a = _arranged("counter", "honest")
    score = read_midi(a.midi)
    stats = Counter()
    every = score_to_melodies(score, extraction=ExtractionConfig(melody_tracks="all"), stats=stats)
    per_track = []
    for track in score.tracks:
        if not track.is_drum:
            per_track += score_to_melodies(Score([track], score.tempos, score.time_signatures, source=score.source))
    assert [m.events.tolist() for m in every] == [m.events.tolist() for m in per_track]
    assert stats["skip_drum_track"] == 1 and not any(k.startswith("left_out_track") for k in stats)


def test_a_track_name_or_index_selects_it():
    a = _arranged("band", "honest")
    score = read_midi(a.midi)
    chords = a.roles.index("chords")
    name = score.tracks[chords].name
    by_name = choose_melody_tracks(score, name.upper())
    assert by_name.taken == (chords,) and by_name.verdicts[chords].reason == f"melody: named {name.upper()!r}"
    assert choose_melody_tracks(score, chords).taken == (chords,)
    melodies = score_to_melodies(score, extraction=ExtractionConfig(melody_tracks=chords, min_unique_pitches=0))
    assert melodies and {m.program for m in melodies} == {score.tracks[chords].program}


def test_a_bad_track_name_or_index_is_a_clear_error():
    a = _arranged("band", "honest")
    score = read_midi(a.midi)
    with pytest.raises(NoMelodyError, match="no track is named 'Kazoo'; pitched tracks: "):
        choose_melody_tracks(score, "Kazoo")
    with pytest.raises(NoMelodyError, match="track index 40 is out of range"):
        score_to_melodies(score, extraction=ExtractionConfig(melody_tracks=40))
    with pytest.raises(NoMelodyError, match=f"track {a.roles.index('drums')} is a drum track or empty"):
        choose_melody_tracks(score, a.roles.index("drums"))
    for bad in (-1, "", "  ", True, 1.5, None):
        with pytest.raises(MelodyRNNError, match="`melody_tracks` must be 'auto', 'all', a track name or"):
            ExtractionConfig(melody_tracks=bad)


def test_prepare_reports_the_track_taken_and_counts_those_left_out(tmp_path):
    arrangements = [_arranged("band", "misleading"), _arranged("piano", "missing", tune=AIR)]
    for i, a in enumerate(arrangements):
        (tmp_path / f"song{i}.mid").write_bytes(a.midi)
    (tmp_path / "tune.mid").write_bytes(REEL.read_bytes())
    report = prepare(tmp_path, workers=1, progress=False).report
    assert set(report.melody_tracks) == {"song0.mid", "song1.mid"}  # the one-track tune had no choice to make
    for i, a in enumerate(arrangements):
        name = read_midi(a.midi).tracks[a.melody_track].name
        assert report.melody_tracks[f"song{i}.mid"].startswith(f"{a.melody_track} {name!r} (melody: ")
    assert sum(report.tracks_left_out.values()) == 4 + 2
    assert report.tracks_left_out["drum track"] == 1
    assert "tracks left out: 6" in report.format() and "song0.mid: " in report.format()
    everything = prepare(tmp_path, workers=1, progress=False, extraction=ExtractionConfig(melody_tracks="all"))
    assert everything.report.tracks_left_out == {"drum track": 1}


def test_a_file_without_the_named_track_is_skipped_with_its_reason(tmp_path):
    a = _arranged("band", "honest")
    (tmp_path / "song.mid").write_bytes(a.midi)
    (tmp_path / "tune.mid").write_bytes(REEL.read_bytes())
    sung = read_midi(a.midi)
    sung.tracks[a.melody_track].name = "vocal"
    (tmp_path / "sung.mid").write_bytes(score_to_midi(sung))
    data = prepare(tmp_path, workers=1, progress=False, extraction=ExtractionConfig(melody_tracks="Vocal"))
    assert data.report.files_with_melodies == 1 and data.report.files_skipped == {
        "no melody: no track is named 'Vocal'; pitched tracks: N 'Nth Regiment -- Reel'": 1,
        f"no melody: no track is named 'Vocal'; pitched tracks: {', '.join(_listing(read_midi(a.midi)))}": 1,
    }
    assert data.report.melody_tracks["sung.mid"].startswith(f"{a.melody_track} 'vocal' (melody: named 'Vocal')")
    with pytest.raises(NoMelodyError, match="no track is named 'Vocal'"):
        prepare(tmp_path, workers=1, progress=False, strict=True, extraction=ExtractionConfig(melody_tracks="Vocal"))


def _listing(score: Score) -> list[str]:
    return [f"N {t.name!r}" for t in score.tracks if not t.is_drum]


def test_configs_saved_before_melody_tracks_load_with_auto():
    old = {"polyphony": "highest", "gap_bars": 1.0, "min_bars": 7.0, "min_unique_pitches": 5, "max_steps": 2048}
    assert ExtractionConfig.from_dict(old).melody_tracks == "auto"
    assert ExtractionConfig.from_dict(ExtractionConfig(melody_tracks=3).to_dict()).melody_tracks == 3


def test_old_reports_without_track_keys_still_load():
    old = {"root": "x", "files_found": 3, "files_read": 3, "pitch_range": [60, 72]}
    report = PrepareReport.from_dict(old)
    assert report.tracks_left_out == {} and report.melody_tracks == {}
    assert PrepareReport.from_dict(report.to_dict()) == report


def test_cli_melody_tracks_flag(tmp_path):
    from melodyrnn.cli import main

    a = _arranged("band", "honest")
    (tmp_path / "songs").mkdir()
    (tmp_path / "songs" / "song.mid").write_bytes(a.midi)
    out = tmp_path / "data.npz"
    args = ["prepare", str(tmp_path / "songs"), "-o", str(out), "--workers", "1", "--no-progress", "--min-bars", "0"]
    chords = a.roles.index("chords")
    assert main([*args, "--melody-tracks", str(chords), "--min-unique-pitches", "0"]) == 0
    from melodyrnn import PreparedData

    data = PreparedData.load(out)
    assert data.extraction.melody_tracks == chords
    assert data.report.melody_tracks["song.mid"].startswith(f"{chords} ")
    assert main([*args, "--melody-tracks", "all"]) == 0
    assert PreparedData.load(out).extraction.melody_tracks == "all"


def test_two_named_lead_tracks_that_take_turns_are_both_taken():
    # Two bars each, in turns: Vocal 1, Vocal 2, Vocal 1; block chords under them.
    first = [*scale_notes(2, 60), *((p, s + 16, e + 16) for p, s, e in scale_notes(2, 62))]
    second = [(p, s + 8, e + 8) for p, s, e in scale_notes(2, 64)]
    chords = [(p, s, s + 1) for s in range(24) for p in (48, 52, 55)]
    data = midi_bytes([note_track(first), note_track(second, channel=1), note_track(chords, channel=2)])
    score = read_midi(data)
    score.tracks[0].name, score.tracks[1].name, score.tracks[2].name = "Vocal 1", "Vocal 2", "Keys"
    assert choose_melody_tracks(read_midi(score_to_midi(score))).taken == (0, 1)


def test_train_melody_tracks_needs_a_folder_and_a_new_run(tmp_path, capsys):
    from melodyrnn.cli import main

    (tmp_path / "songs").mkdir()
    (tmp_path / "songs" / "song.mid").write_bytes(_arranged("band", "honest").midi)
    cache = tmp_path / "data.npz"
    prepare(tmp_path / "songs", cache, workers=1, progress=False)
    run = str(tmp_path / "run")
    assert main(["train", str(cache), "-o", run, "--melody-tracks", "all"]) == 2
    assert "--melody-tracks applies to a folder of MIDI files" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "songs"), "-o", run, "--resume", "--melody-tracks", "0"]) == 2
    assert "--melody-tracks cannot change the data of a resumed run" in capsys.readouterr().err
