"""The app's lead-sheet helpers without a page: files, audio with the backing, the engraved score, the take's zip."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import music21

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))

from notation_view import build_items, score_svg, take_zip  # noqa: E402
from test_notation import d_major  # noqa: E402

from melodyrnn.midi_io import read_midi  # noqa: E402


def test_a_melody_with_chords_plays_with_its_backing_and_everything_goes_in_the_zip():
    (item,) = build_items([d_major()], take_id=3, primer_steps=0, backing="arpeggio", key=None)
    assert item["name"] == "take03_melody01"
    assert [t.name for t in read_midi(item["midi"]).tracks] == ["melody", "chords", "bass"]
    rendered, player, _ = item["backed"]
    assert rendered.wav != item["wav"] and player
    assert item["svg"].count("<svg") >= 1 and "</svg>" in item["svg"]
    score = music21.converter.parse(item["musicxml"], format="musicxml")
    assert len(score.flatten().getElementsByClass(music21.harmony.ChordSymbol)) == 4
    with zipfile.ZipFile(io.BytesIO(take_zip([item]))) as archive:
        assert sorted(archive.namelist()) == [
            "take03_melody01.abc",
            "take03_melody01.mid",
            "take03_melody01.musicxml",
            "take03_melody01.wav",
            "take03_melody01_with_backing.wav",
        ]
    (plain,) = build_items([d_major()], take_id=1, primer_steps=0, backing="none", key="D major")
    assert plain["backed"] is None and len(read_midi(plain["midi"]).tracks) == 1


def test_a_score_verovio_cannot_read_gives_a_message_not_an_error():
    assert "could not be engraved" in score_svg("<not-musicxml/>")
