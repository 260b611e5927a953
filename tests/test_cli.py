"""The command line: prepare and info, train (resumed after a SIGKILL too) and evaluate, exit codes, and one-line
errors instead of tracebacks."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pretty_midi
import pytest
import test_evaluation
from conftest import midi_bytes, note_track, scale_notes
from test_sampling import _training_melodies
from test_training import TINY_FLAGS, tiny_melodies

import melodyrnn
from melodyrnn.bundle import load_bundle, save_bundle
from melodyrnn.cli import main
from melodyrnn.dataset import PreparedData
from melodyrnn.encoding import melody_to_midi
from melodyrnn.evaluation import format_metrics
from melodyrnn.model import ModelConfig, build_model
from melodyrnn.run_folder import read_run

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent


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
    code = main(
        [
            "prepare",
            str(_folder(tmp_path)),
            "-o",
            str(out),
            "--workers",
            "1",
            "--json",
            "--no-progress",
            "--min-pitch",
            "48",
            "--max-pitch",
            "84",
            "--min-bars",
            "2",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["melodies_kept"] == 4
    assert report["files_skipped"] == {"unreadable: the file is truncated or corrupt": 1}


def test_prepare_keeps_the_chords_the_other_track_plays_unless_told_not_to(tmp_path, capsys):
    root = tmp_path / "songs"
    root.mkdir()
    chords = [(p, float(k), k + 1.0) for k in range(32) for p in (48, 52, 55)]  # C major on every beat
    for i in range(3):
        tracks = [note_track(scale_notes(8, 72 + i)), note_track(chords, channel=1, program=24)]
        (root / f"s{i}.mid").write_bytes(midi_bytes(tracks))
    for flags, expected in (([], ((0, "C:maj"),)), (["--chords", "none"], ())):
        out = tmp_path / f"d{len(flags)}.npz"
        assert main(["prepare", str(root), "-o", str(out), "--workers", "1", "--no-progress", *flags]) == 0
        data = PreparedData.load(out)
        assert data.num_melodies == 3 and all(m.chords == expected for m in data.melodies())
        assert data.extraction.chords == ("none" if flags else "auto")
    capsys.readouterr()


def test_strict_exits_nonzero_with_one_line(tmp_path, capsys):
    code = main(
        [
            "prepare",
            str(_folder(tmp_path)),
            "-o",
            str(tmp_path / "d.npz"),
            "--workers",
            "1",
            "--strict",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "corrupt.mid" in err
    assert not (tmp_path / "d.npz").exists()


def _prepare_to(tmp_path, output) -> list[str]:
    return ["prepare", str(_folder(tmp_path)), "-o", str(output), "--workers", "1", "--no-progress"]


def test_prepare_never_replaces_what_is_not_a_regular_file(tmp_path, capsys):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "real.npz").write_bytes(b"keep")
    (tmp_path / "link.npz").symlink_to(tmp_path / "real.npz")
    (tmp_path / "file").write_text("a file, not a folder")
    cases = {
        "/dev/null": "/dev/null is a device, not a regular file",
        tmp_path / "fifo": "fifo is a FIFO, not a regular file",
        tmp_path / "link.npz": "link.npz is a symlink, not a regular file",
        tmp_path / "midis": "midis is a folder, not a regular file",
        tmp_path / "file" / "d.npz": "cannot be written: Not a directory",
    }
    for output, message in cases.items():
        shutil.rmtree(tmp_path / "midis", ignore_errors=True)
        assert main(_prepare_to(tmp_path, output)) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith("melodyrnn prepare: error: ") and message in err[0], err
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert (tmp_path / "real.npz").read_bytes() == b"keep" and (tmp_path / "link.npz").is_symlink()
    assert not list(tmp_path.glob(".*.tmp")) and not list(tmp_path.glob("*.report.json"))


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    code = main(["generate", "--steps", "8", "--seed", "1", "-o", str(tmp_path / "taken")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("melodyrnn generate: error: cannot use"), err


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    command = [sys.executable, "-m", "melodyrnn", *_prepare_to(tmp_path, tmp_path / "d.npz"), "--json"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()  # like `| head -c 0`: the reader is gone before anything is printed
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr[-2000:]


def test_console_script_errors_are_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "melodyrnn", "prepare", str(tmp_path / "nowhere")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    expected = f"melodyrnn prepare: error: `{tmp_path / 'nowhere'}` is not a directory of MIDI files"
    assert proc.stderr.strip().splitlines() == [expected]
    proc = subprocess.run(
        [sys.executable, "-m", "melodyrnn", "info", str(DATA / "not_midi.mid")], capture_output=True, text=True
    )
    expected = (
        f"melodyrnn info: error: `{DATA / 'not_midi.mid'}` is not a melodyrnn prepared-data cache (not an .npz archive)"
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [expected]


def test_bad_flag_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit, match=r"^2$"):  # argparse's usage-error status
        main(["prepare", "x", "--polyphony", "lowest"])
    assert "invalid choice: 'lowest'" in capsys.readouterr().err


# -- train ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache") / "tiny.npz"
    PreparedData.from_melodies(tiny_melodies(), validation_fraction=0.3).save(path)
    return path


def _midi_folder(tmp_path) -> Path:
    root = tmp_path / "midis"
    root.mkdir()
    for i in range(6):
        (root / f"t{i}.mid").write_bytes(midi_bytes([note_track(scale_notes(8, 55 + i))]))
    return root


def test_cli_train_from_a_midi_folder_then_evaluate(tmp_path, capsys):
    root, run_dir = _midi_folder(tmp_path), tmp_path / "run"
    assert main(["train", str(root), "-o", str(run_dir), "--epochs", "2", *TINY_FLAGS]) == 0
    out = capsys.readouterr().out
    assert "val loss" in out and "stopped: completed" in out
    assert (run_dir / "data.npz").is_file()
    assert PreparedData.load(run_dir / "data.npz").num_melodies == 6
    assert main(["evaluate", str(run_dir / "best.melodyrnn"), str(root)]) == 0
    line = capsys.readouterr().out
    assert line.startswith("NLL ") and "nats/step" in line and "(6 melodies" in line
    assert main(["train", str(root), "-o", str(run_dir), "--resume", "--epochs", "3", "--no-progress"]) == 0
    assert read_run(run_dir)["epoch"] == 3


def test_cli_model_flags_reach_the_bundle(tmp_path, cache, capsys):
    run_dir = tmp_path / "run"
    flags = [
        "--epochs",
        "1",
        "--attention-heads",
        "3",
        "--attention-window",
        "8",
        "--no-relative-bias",
        "--no-previous-key",
        "--layer-norm",
        "--residual",
        "--lookback",
    ]
    assert main(["train", str(cache), "-o", str(run_dir), *TINY_FLAGS, *flags]) == 0
    # the cache has a validation split, so the summary ends with the baselines on it
    out = capsys.readouterr().out
    assert re.search(r"\nbaselines \(val loss on the same melodies\): bundled default model \d+\.\d{4}, 6-gram \d", out)
    config = load_bundle(run_dir / "latest.melodyrnn", compile=False).model_config
    assert (config.attention_heads, config.attention_window) == (3, 8)
    assert (config.attention_relative_bias, config.attention_previous_key) == (False, False)
    assert config.layer_norm and config.residual and config.lookback and config.units == 12
    conditioned = tmp_path / "conditioned"
    flags = ["--epochs", "1", "--condition-meter", "--condition-chords"]
    assert main(["train", str(cache), "-o", str(conditioned), *TINY_FLAGS, *flags]) == 0
    config = load_bundle(conditioned / "latest.melodyrnn", compile=False).model_config
    assert config.condition_meter and config.condition_chords


def test_cli_train_says_where_it_starts_and_why(tmp_path, cache, capsys):
    flags = TINY_FLAGS[TINY_FLAGS.index("--seq-len") :]  # no model flags: the start is the run's own choice
    assert main(["train", str(cache), "-o", str(tmp_path / "auto"), "--updates", "2", *flags]) == 0
    out = capsys.readouterr().out
    assert out.startswith("start: fine-tuning the bundled default model: ") and "\nbudget: 2 updates" in out
    assert main(["train", str(cache), "-o", str(tmp_path / "new"), "--updates", "2", "--from-scratch", *flags]) == 0
    assert capsys.readouterr().out.startswith("start: from scratch, as asked (--from-scratch)\n")
    with pytest.raises(SystemExit):  # argparse: they exclude each other
        main(["train", str(cache), "-o", str(tmp_path / "x"), "--from-scratch", "--from", str(cache)])
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, cache, capsys):
    assert main(["train", str(tmp_path / "nothing"), "-o", str(tmp_path / "run")]) == 2
    assert main(["train", str(cache), "-o", str(tmp_path / "run"), "--epochs", "0"]) == 2
    assert main(["train", str(cache), "-o", str(tmp_path / "run"), "--from", str(cache)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("melodyrnn train: error: ") for line in err)
    assert "`epochs` must be an integer >= 1 or None, got 0" in err[1]


@pytest.mark.slow
@pytest.mark.parametrize("start", ["scratch", "fine-tuned"])
def test_sigkill_mid_epoch_leaves_a_loadable_bundle_and_resume_continues(cache, tmp_path, start):
    bundle_path = tmp_path / "start.melodyrnn"  # an untrained tiny model of the cache's encoding
    save_bundle(bundle_path, build_model(ModelConfig(units=12, num_layers=1, embedding_dim=8, attention_window=8)))
    run_dir = tmp_path / "run"
    # a fine-tuned run keeps the bundle's model: no model flags, and it is resumed the same way
    flags = TINY_FLAGS[TINY_FLAGS.index("--seq-len") :] if start == "fine-tuned" else TINY_FLAGS
    origin = ["--from", str(bundle_path)] if start == "fine-tuned" else []
    command = [
        sys.executable,
        "-m",
        "melodyrnn",
        "train",
        str(cache),
        "-o",
        str(run_dir),
        "--epochs",
        "100000",
        "--steps-per-epoch",
        "40",
        *flags,
        *origin,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        latest = run_dir / "latest.melodyrnn"
        deadline = time.monotonic() + 120
        while not latest.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert latest.exists(), process.stderr.read().decode() if process.poll() is not None else "no bundle yet"
        # Kill at varied moments of the next epochs: inside a batch, a validation pass or a bundle write.
        time.sleep(0.7)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    bundle = load_bundle(latest)
    done = bundle.metadata["training"]["epoch"]
    assert done >= 1 and int(bundle.model.optimizer.iterations) == 40 * done
    assert main(["train", str(cache), "-o", str(run_dir), "--resume", "--epochs", str(done + 2), "--no-progress"]) == 0
    state = read_run(run_dir)
    assert [row["epoch"] for row in state["history"]] == list(range(0, done + 3))
    with open(run_dir / "log.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == list(range(0, done + 3))
    assert not list(run_dir.glob(".*.tmp"))
    if start == "fine-tuned":
        assert state["fine_tuned_from"] == str(bundle_path) and "as asked (--from)" in state["start"]["reason"]


# -- generate and evaluate -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle_path(trained_tiny_bundle):
    return trained_tiny_bundle


def _generate_args(bundle_path, out) -> list[str]:
    args = "-n 2 --bars 4 --temperature 0.9 --top-p 0.95 --qpm 110 --program 73 --seed 7".split()
    return ["generate", "--model", str(bundle_path), *args, "--key", "D minor", "--primer", "D4 F4 A4", "-o", str(out)]


def test_cli_generate(bundle_path, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(_generate_args(bundle_path, out))
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[-1] == "seed 7"
    assert "notes" in lines[0] and "range" in lines[0] and "key estimate" in lines[0]
    files = sorted(out.glob("*.mid"))
    assert len(files) == 2
    pm = pretty_midi.PrettyMIDI(str(files[0]))
    assert pm.instruments[0].program == 73 and pm.get_tempo_changes()[1].tolist() == pytest.approx([110.0])
    # the same command again writes the same bytes
    first = files[0].read_bytes()
    assert main(_generate_args(bundle_path, out)) == 0
    assert files[0].read_bytes() == first


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--bars", "100000"], "the request is too long: 1,600,000 steps per melody (at most 16,384)"),
        (["-n", "64", "--beam-size", "256"], "`num_melodies` × `beam_size` must be at most 1024"),
        (["-n", "1024", "--bars", "300"], "for 1024 melodies × beams (at most 4,194,304 steps in all per call)"),
        (["--branch-factor", "200"], "`branch_factor` must be at most the model's vocabulary of"),
    ],
)
def test_generation_is_bounded_with_a_one_line_error(bundle_path, tmp_path, capsys, flags, message):
    assert main(["generate", "--model", str(bundle_path), *flags, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not list(tmp_path.iterdir())


def test_cli_generate_bad_input_prints_one_line(bundle_path, tmp_path, capsys):
    code = main(["generate", "--model", str(bundle_path), "--temperature", "-1", "-o", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["melodyrnn generate: error: `temperature` must be >= 0, got -1.0"]


def test_cli_generate_opens_with_a_pickup_when_asked(bundle_path, tmp_path, capsys):
    flags = ["generate", "--model", str(bundle_path), "-n", "2", "--bars", "2", "--seed", "1"]
    assert main([*flags, "--pickup", "1", "-o", str(tmp_path / "pickup")]) == 0
    assert main([*flags, "--pickup", "0", "-o", str(tmp_path / "downbeat")]) == 0
    for folder, silent in (("pickup", True), ("downbeat", False)):
        for path in sorted((tmp_path / folder).glob("*.mid")):
            first = min(note.start for note in pretty_midi.PrettyMIDI(str(path)).instruments[0].notes)
            assert (first > 0) == silent, (path, first)
    capsys.readouterr()
    assert main([*flags, "--pickup", "2", "-o", str(tmp_path / "bad")]) == 2
    assert "`pickup` must be in [0, 1] or None, got 2.0" in capsys.readouterr().err


def test_sample_metrics_command(bundle_path, tmp_path, capsys):
    melodyrnn.generate(3, model=bundle_path, bars=4, key="C major", seed=2, output=tmp_path / "samples")
    ref = tmp_path / "ref"
    ref.mkdir()
    for i, m in enumerate(_training_melodies()[:2]):
        melody_to_midi(m, ref / f"r{i}.mid")
    assert main(["evaluate", "--samples", str(tmp_path / "samples"), "--reference", str(ref)]) == 0
    printed = capsys.readouterr().out
    assert "melodies: 3" in printed and "key estimate" in printed and "JS divergence" in printed
    assert main(["evaluate", "--samples", str(tmp_path / "samples"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_melodies"] == 3
    assert main(["evaluate", "--samples", str(tmp_path / "nothing")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_cli_evaluate_prints_nll(tmp_path, capsys):
    bundle_path = save_bundle(tmp_path / "m.melodyrnn", build_model(test_evaluation.CONFIG))
    data = PreparedData.from_melodies(test_evaluation.melodies(), validation_fraction=0.5)
    cache = tmp_path / "d.npz"
    data.save(cache)
    assert main(["evaluate", str(bundle_path), str(cache)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("NLL ") and "nats/step" in line and "event accuracy" in line
    assert main(["evaluate", str(bundle_path), str(cache), "--split", "all", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["melodies"] == 5
    assert format_metrics(metrics).startswith(f"NLL {metrics['nll_per_step']:.4f} nats/step")
    assert main(["evaluate", str(cache), str(cache)]) == 2
    assert main(["evaluate", str(bundle_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(e.startswith("melodyrnn evaluate: error: ") for e in err)
