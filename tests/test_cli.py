"""The command line: prepare and info, exit codes, and one-line errors instead of tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import midi_bytes, note_track, scale_notes
from melodyrnn.cli import main

DATA = Path(__file__).parent / "data"


def _folder(tmp_path) -> Path:
    root = tmp_path / "midis"
    root.mkdir()
    for i in range(4):
        (root / f"t{i}.mid").write_bytes(midi_bytes([note_track(scale_notes(8, 55 + i))]))
    shutil.copy(DATA / "corrupt.mid", root)
    return root


def test_prepare_then_info(tmp_path, capsys):
    out = tmp_path / "d.npz"
    assert main(["prepare", str(_folder(tmp_path)), "-o", str(out), "--workers", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "melodies kept: 4" in printed and "corrupt.mid" in printed
    assert out.exists() and (tmp_path / "d.report.json").exists()
    assert main(["info", str(out)]) == 0
    assert "vocabulary: 130 ids" in capsys.readouterr().out


def test_prepare_json_report_and_options(tmp_path, capsys):
    out = tmp_path / "d.npz"
    code = main(["prepare", str(_folder(tmp_path)), "-o", str(out), "--workers", "1", "--json", "--no-progress",
                 "--min-pitch", "48", "--max-pitch", "84", "--min-bars", "2"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["melodies_kept"] == 4 and report["files_skipped"] == {"unreadable: the file is truncated or corrupt": 1}


def test_strict_exits_nonzero_with_one_line(tmp_path, capsys):
    code = main(["prepare", str(_folder(tmp_path)), "-o", str(tmp_path / "d.npz"), "--workers", "1", "--strict", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "corrupt.mid" in err
    assert not (tmp_path / "d.npz").exists()


def test_console_script_errors_are_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "melodyrnn", "prepare", str(tmp_path / "nowhere")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"melodyrnn prepare: error: `{tmp_path / 'nowhere'}` is not a directory of MIDI files"]
    proc = subprocess.run([sys.executable, "-m", "melodyrnn", "info", str(DATA / "not_midi.mid")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "cannot read prepared data" in proc.stderr


def test_bad_flag_is_an_argparse_error(capsys):
    import pytest

    with pytest.raises(SystemExit) as exc:
        main(["prepare", "x", "--polyphony", "lowest"])
    assert exc.value.code == 2
    assert "invalid choice: 'lowest'" in capsys.readouterr().err
