"""app/uploads.py: what the Train tab writes from uploaded files and zips, and the names it gives them."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

from conftest import midi_bytes, note_track, scale_notes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from uploads import save_training_uploads  # noqa: E402


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_many_members_with_one_name_all_get_distinct_names(tmp_path):
    tune = midi_bytes([note_track(scale_notes(1))])
    members = {f"d{i}/tune.mid": tune for i in range(2000)}
    saved = save_training_uploads([("many.zip", _zip(members)), ("tune.mid", tune)], tmp_path)
    assert not saved.rejected and len(saved.saved) == 2001
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2001 and "tune.mid" in names and "tune_2001.mid" in names
    # a later upload in the same folder continues the numbering instead of overwriting
    again = save_training_uploads([("tune.mid", tune)], tmp_path)
    assert again.saved == ["tune.mid"] and len(list(tmp_path.iterdir())) == 2002


def test_names_that_climb_out_of_the_folder_stay_inside(tmp_path):
    tune = midi_bytes([note_track(scale_notes(1))])
    save_training_uploads([("evil.zip", _zip({"../../escape.mid": tune, "/abs/path.mid": tune}))], tmp_path / "up")
    assert sorted(p.name for p in (tmp_path / "up").iterdir()) == ["escape.mid", "path.mid"]
    assert not (tmp_path / "escape.mid").exists()
