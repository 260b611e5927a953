"""Lead sheets from the one-liner and `melodyrnn generate --format ... --backing ...`."""

from __future__ import annotations

import music21
import pytest

import melodyrnn
from melodyrnn.cli import main
from melodyrnn.errors import NotationError
from melodyrnn.notation import melody_to_abc, melody_to_musicxml


@pytest.fixture(scope="module")
def bundle_path(trained_tiny_bundle):
    return trained_tiny_bundle


def test_one_liner_writes_the_formats_asked_for_in_the_key_asked_for(bundle_path, tmp_path):
    melodies = melodyrnn.generate(
        2, model=bundle_path, bars=2, key="Eb major", seed=1, output=tmp_path / "out", format=["abc", "musicxml"]
    )
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["melody_001.abc", "melody_001.musicxml", "melody_002.abc", "melody_002.musicxml"]
    abc = (tmp_path / "out" / "melody_002.abc").read_text()
    assert abc == melody_to_abc(melodies[1], title="Melody 2", key="Eb major") and "K:Eb\n" in abc
    xml = (tmp_path / "out" / "melody_001.musicxml").read_text()
    assert xml == melody_to_musicxml(melodies[0], title="Melody 1", key="Eb major")
    with pytest.raises(NotationError, match="unknown output format 'wav'"):
        melodyrnn.generate(1, model=bundle_path, bars=1, output=tmp_path / "bad", format="wav")
    assert not (tmp_path / "bad").exists()


def test_cli_generate_writes_lead_sheets_and_says_when_there_is_nothing_to_back(bundle_path, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["generate", "--model", str(bundle_path), "-n", "2", "--bars", "4", "--time-signature", "6/8"]
    code = main([*args, "--seed", "3", "--format", "mid,musicxml,abc", "--backing", "waltz", "-o", str(out)])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "backing: the melodies have no chords, so they are written without a waltz backing"
    assert lines[1].startswith(f"{out / 'melody_001.mid'} (and .musicxml, .abc): ")
    assert len(list(out.iterdir())) == 6
    for suffix in (".musicxml", ".abc"):
        score = music21.converter.parse(str(out / f"melody_002{suffix}"))
        assert score.flatten().getElementsByClass(music21.meter.TimeSignature)[0].ratioString == "6/8"
    assert main([*args, "--format", "mid,pdf", "-o", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == (
        "melodyrnn generate: error: unknown output format 'pdf': choose from mid, musicxml, abc"
    )
