"""Tests for melodyrnn.distribute: who is chief by TF_CONFIG, and multi-worker training (`strategy="multiworker"`,
`melodyrnn train --strategy multiworker`): two worker processes on 127.0.0.1 train one run, as the hosts of a
cluster would, and a bad TF_CONFIG or a taken port is a one-line error."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_training import TINY_FLAGS, TINY_MODEL, TINY_TRAIN, tiny_melodies

from melodyrnn import distribute
from melodyrnn.bundle import load_bundle
from melodyrnn.cli import main
from melodyrnn.dataset import PreparedData
from melodyrnn.errors import MelodyRNNError
from melodyrnn.run_folder import read_run
from melodyrnn.training import train

REPO = Path(__file__).resolve().parent.parent
RUN_FILES = {"latest.melodyrnn", "best.melodyrnn", "log.csv", "train_state.json", "tensorboard"}
MULTIWORKER = dict(TINY_TRAIN, strategy="multiworker")


@pytest.fixture(scope="module")
def data():
    return PreparedData.from_melodies(tiny_melodies(), validation_fraction=0.3)


@pytest.fixture(scope="module")
def cache(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("cache") / "tiny.npz"
    data.save(path)
    return path


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(hosts: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})


def _train_on_local_cluster(commands: list[list[str]], logs: Path, timeout_seconds: float = 240):
    """Runs `melodyrnn train ARGS` as worker i of a cluster on 127.0.0.1 for each ARGS; returns exit codes and outputs.

    TensorFlow's gRPC server cannot share its port, so free ports are released just before the workers start; should
    another process take one in between, that worker cannot start and the cluster starts again on new ports.
    """
    # gRPC sends even 127.0.0.1 through an HTTP proxy set in the environment; the workers then wait for each other
    # forever (and ignore SIGTERM).
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    for attempt in range(3):
        hosts = [f"127.0.0.1:{port}" for port in _free_ports(len(commands))]
        outputs = [logs / f"worker{i}-{attempt}.txt" for i in range(len(commands))]
        processes = []
        for i, (args, output) in enumerate(zip(commands, outputs)):
            with open(output, "w") as out:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "melodyrnn", "train", *args],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env={**env, "TF_CONFIG": _tf_config(hosts, i)},
                    )
                )
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            codes = [p.poll() for p in processes]
            if None not in codes or any(codes):  # all done, or one failed and the others would wait for it forever
                break
            time.sleep(0.2)
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
        texts = [output.read_text() for output in outputs]
        if attempt < 2 and any("Could not start gRPC server" in text for text in texts):
            continue
        return [p.returncode for p in processes], texts


@pytest.mark.parametrize(
    "cluster, task, chief",
    [
        ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, True),
        ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, False),
        ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "chief", "index": 0}, True),
        ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "worker", "index": 0}, False),
    ],
)
def test_the_chief_is_the_chief_task_or_else_worker_0(monkeypatch, cluster, task, chief):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    assert distribute.is_chief("multiworker") is chief


def test_one_process_is_always_chief_and_needs_no_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "not json")
    assert distribute.is_chief("default") and distribute.is_chief("mirrored")


@pytest.mark.slow
def test_two_workers_train_one_run_then_resume_it(cache, data, tmp_path):
    steps = int(data.dataset(16, 4, drop_remainder=True).cardinality())  # global batches of one epoch
    run_dir, elsewhere = tmp_path / "run", tmp_path / "worker1"
    # an epoch of one pass (without it a small run's rounds are at least planning.MIN_ROUND_UPDATES updates)
    flags = ["--strategy", "multiworker", "--epochs", "2", "--steps-per-epoch", str(steps), *TINY_FLAGS]
    codes, texts = _train_on_local_cluster(
        [[str(cache), "-o", str(run_dir), *flags], [str(cache), "-o", str(elsewhere / "run"), *flags]], tmp_path
    )
    assert codes == [0, 0], "\n\n".join(text[-3000:] for text in texts)
    # The chief (worker 0) keeps the run; worker 1 wrote nothing, not even its own run folder.
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES and not elsewhere.exists()
    state = read_run(run_dir)
    assert state["strategy"] == {"name": "multiworker", "replicas": 2}
    losses = [row["loss"] for row in state["history"][1:]]  # epoch 0, the starting model, was not trained
    assert len(losses) == 2 and losses[1] < losses[0]
    with open(run_dir / "log.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2]
    # Each global batch was split between the workers (not read whole by both): one optimizer step per batch.
    assert int(load_bundle(run_dir / "latest.melodyrnn").model.optimizer.iterations) == 2 * steps
    assert load_bundle(run_dir / "best.melodyrnn").metadata["training"]["best"]["epoch"] == state["best"]["epoch"]

    # Resume in the shared folder. Worker 0's time budget is spent by the first batch, worker 1's is not (as if
    # their clocks differed): both must stop there, or worker 1 waits for worker 0 forever.
    resume = [str(cache), "-o", str(run_dir), "--resume", "--epochs", "4", "--no-progress", "--max-minutes"]
    codes, texts = _train_on_local_cluster([[*resume, "1e-6"], [*resume, "60"]], tmp_path)
    assert codes == [0, 0], "\n\n".join(text[-3000:] for text in texts)
    state = read_run(run_dir)
    assert [row["epoch"] for row in state["history"]] == [0, 1, 2, 3] and state["history"][-1].get("partial") is True
    assert state["stopped"] == "time_budget"
    assert int(load_bundle(run_dir / "latest.melodyrnn").model.optimizer.iterations) == 2 * steps + 1
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    assert len(list((run_dir / "tensorboard" / "train").iterdir())) == 2  # one per session, all of them the chief's


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "needs the TF_CONFIG environment variable"),
        ("{cluster: worker}", "TF_CONFIG must be JSON"),
        ('["127.0.0.1:2222"]', 'TF_CONFIG must hold "cluster"'),
        ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG must hold "cluster"'),
        ('{"cluster": {"worker": ["127.0.0.1:2222"]}}', 'TF_CONFIG must hold "task"'),
        ('{"cluster": {"worker": ["127.0.0.1:2222"]}, "task": {"type": "worker", "index": 1}}', 'must hold "task"'),
    ],
)
def test_a_bad_tf_config_raises_before_anything_is_written(data, tmp_path, monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(MelodyRNNError, match=message):
        train(data, tmp_path / "run", TINY_MODEL, MULTIWORKER, progress=False)
    assert not (tmp_path / "run").exists()


def test_multiworker_after_tensorflow_ran_in_the_process_is_a_melodyrnn_error(data, tmp_path, monkeypatch):
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # TensorFlow has run, so this process can no longer set up collectives
    monkeypatch.setenv("TF_CONFIG", _tf_config([f"127.0.0.1:{_free_ports(1)[0]}"], 0))
    with pytest.raises(MelodyRNNError, match="must be the first TensorFlow work of its process"):
        train(data, tmp_path / "run", TINY_MODEL, MULTIWORKER, progress=False)


def test_cli_bad_tf_config_is_one_line(cache, tmp_path, monkeypatch, capsys):
    command = ["train", str(cache), "-o", str(tmp_path / "run"), "--strategy", "multiworker"]
    monkeypatch.setenv("TF_CONFIG", "not json")
    assert main(command) == 2
    monkeypatch.delenv("TF_CONFIG")
    assert main(command) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("melodyrnn train: error: TF_CONFIG must be JSON like {")
    assert err[1].startswith('melodyrnn train: error: `strategy="multiworker"` needs the TF_CONFIG environment')


@pytest.mark.slow
def test_cli_port_taken_is_one_line(cache, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TF_CONFIG": _tf_config([f"127.0.0.1:{taken.getsockname()[1]}"], 0),
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "melodyrnn",
                "train",
                str(cache),
                "-o",
                str(tmp_path / "run"),
                "--strategy",
                "multiworker",
                *TINY_FLAGS,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "could not start this task of TF_CONFIG: Could not start gRPC server (is its port free" in done.stderr
