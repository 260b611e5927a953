"""Hostile inputs, before and after: wall time and peak memory of each case, each in its own process.

Every case is an input a hostile or careless user can hand melodyrnn (a file with a 0/4 meter, a bundle whose config
asks for a giant network, a zip of thousands of same-named files, ...). The script builds the inputs once, then runs
each case against one or more checkouts of the project (by default this one; `--compare COMMIT` adds a git worktree
of an older commit), with a time limit and a memory guard, and writes one JSON with both sides.

    python benchmarks/bench_hostile.py --compare a258ba7 -o benchmarks/results/bench_hostile.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import mido

sys.path.insert(0, str(Path(__file__).resolve().parent))
from repo_paths import ROOT, repo_relative  # noqa: E402

# What each case runs, in a fresh interpreter whose melodyrnn is the checkout under test; {inputs} is the folder of
# prepared inputs. Every case ends by printing one line: what happened (an error is an outcome, not a failure).
CASES = {
    "meter_0_4": "import melodyrnn; d = melodyrnn.prepare('{inputs}/meter_0_4', workers=1, progress=False); "
    "print('melodies', d.num_melodies, 'skipped', d.report.files_skipped)",
    "meter_4_2^15": "import melodyrnn; d = melodyrnn.prepare('{inputs}/meter_2_15', workers=1, progress=False); "
    "print('melodies', d.num_melodies, 'skipped', d.report.files_skipped)",
    "sparse_12400_notes": "import melodyrnn; data = open('{inputs}/sparse.mid', 'rb').read(); "
    "loose = melodyrnn.ExtractionConfig(min_bars=0, min_unique_pitches=0); "
    "print(len(melodyrnn.midi_to_melodies(data, extraction=loose)), 'melodies')",
    "bundle_units_8192": "import melodyrnn; melodyrnn.load('{inputs}/units_8192.melodyrnn')",
    "bundle_bzip2_bomb": "import melodyrnn; melodyrnn.load('{inputs}/bomb.melodyrnn')",
    "zip_8000_same_name": "import sys; sys.path.insert(0, '{tree}/app'); from uploads import save_training_uploads; "
    "import tempfile; out = save_training_uploads([('many.zip', open('{inputs}/many.zip', 'rb').read())], "
    "tempfile.mkdtemp(), limit=1 << 30); print(len(out.saved), 'saved')",
    "generate_100000_bars": "from melodyrnn.cli import main; import tempfile; "
    "main(['generate', '--bars', '100000', '--seed', '1', '-o', tempfile.mkdtemp()])",
    "generate_64x256_beams": "from melodyrnn.cli import main; import tempfile; "
    "main(['generate', '-n', '64', '--beam-size', '256', '--seed', '1', '-o', tempfile.mkdtemp()])",
}


def _midi(tracks: list[list], ticks_per_beat: int = 480) -> bytes:
    mf = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    for events in tracks:
        mf.tracks.append(mido.MidiTrack(events))
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


def _tune(bars: int = 8) -> list:
    events = []
    for i in range(bars * 4):
        events += [mido.Message("note_on", note=60 + (i * 5) % 12, velocity=80, time=0 if i == 0 else 0),
                   mido.Message("note_off", note=60 + (i * 5) % 12, velocity=0, time=480)]  # fmt: skip
    return events


def _odd_meter(numerator: int, log2_denominator: int) -> bytes:
    usable = bytes([0xFF, 0x58, 0x04, 4, 2])
    data = _midi([[mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)], _tune()])
    return data.replace(usable, bytes([0xFF, 0x58, 0x04, numerator, log2_denominator]))


def _sparse(notes: int = 12_400) -> bytes:
    events = []
    for i in range(notes):  # a note every two bars: 12,400 silences split it into 12,400 segments
        events += [mido.Message("note_on", note=60 + i % 12, velocity=80, time=0 if i == 0 else 8 * 480 - 120),
                   mido.Message("note_off", note=60 + i % 12, velocity=0, time=120)]  # fmt: skip
    return _midi([events])


def _rewrite_bundle(source: Path, target: Path, header_edit=None, inner_edit=None, extra=None) -> None:
    with zipfile.ZipFile(source) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    header = json.loads(members["bundle.json"])
    if header_edit is not None:
        header_edit(header)
        header["files"] = {}
    members["bundle.json"] = json.dumps(header).encode()
    if inner_edit is not None:
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(members["model.keras"])) as inner, zipfile.ZipFile(out, "w") as new:
            for name in inner.namelist():
                data = inner.read(name)
                new.writestr(name, inner_edit(data) if name == "config.json" else data)
        members["model.keras"] = out.getvalue()
    with zipfile.ZipFile(target, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, (data, method) in (extra or {}).items():
            zf.writestr(name, data, compress_type=method)


def build_inputs(folder: Path) -> None:
    """Writes every case's input into `folder` (with this checkout's melodyrnn)."""
    from melodyrnn.bundle import save_bundle
    from melodyrnn.model import ModelConfig, build_model

    for name, (numerator, log2_denominator) in {"meter_0_4": (0, 2), "meter_2_15": (4, 15)}.items():
        (folder / name).mkdir(parents=True)
        (folder / name / "tune.mid").write_bytes(_odd_meter(numerator, log2_denominator))
    (folder / "sparse.mid").write_bytes(_sparse())
    tiny = folder / "tiny.melodyrnn"
    save_bundle(tiny, build_model(ModelConfig(units=8, num_layers=1, embedding_dim=8, attention=False)))

    def giant(header):
        header["model_config"]["units"] = 8192
        header["model_config"]["num_layers"] = 2

    def giant_inner(config_json: bytes) -> bytes:
        config = json.loads(config_json)
        config["config"]["model_config"].update(units=8192, num_layers=2)
        return json.dumps(config).encode()

    _rewrite_bundle(tiny, folder / "units_8192.melodyrnn", giant, giant_inner)
    with zipfile.ZipFile(tiny) as zf:
        model_bytes = zf.read("model.keras")
    with zipfile.ZipFile(folder / "bomb.melodyrnn", "w") as zf:  # bundle.json: 1 GiB of spaces in a few KB
        zf.writestr("bundle.json", b" " * (1 << 30), compress_type=zipfile.ZIP_BZIP2)
        zf.writestr("model.keras", model_bytes)
    with zipfile.ZipFile(folder / "many.zip", "w") as zf:
        tune = _midi([_tune(1)])
        for i in range(8000):
            zf.writestr(f"d{i}/tune.mid", tune)


def _vm_hwm(pid: int) -> int:
    """Peak resident bytes of a live process, 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run_case(code: str, tree: Path, timeout_s: float, memory_guard_bytes: int) -> dict:
    """Runs `code` with `tree`'s melodyrnn; returns seconds, peak RSS and what it printed or raised."""
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=scratch, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip
        outcome, peak_rss = None, 0
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            # VmHWM is the peak resident memory since exec (ru_maxrss would count the pages shared at fork)
            peak_rss = max(peak_rss, _vm_hwm(proc.pid))
            elapsed = time.perf_counter() - started
            if elapsed > timeout_s or peak_rss > memory_guard_bytes:
                guard = " (memory guard)" if peak_rss > memory_guard_bytes else ""
                outcome = f"killed after {elapsed:.0f} s{guard}"
                proc.kill()
                _, status, _ = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        out, err = (stream.read().decode(errors="replace") for stream in (proc.stdout, proc.stderr))
    if outcome is None:
        lines = [line for line in (out + err).splitlines() if line.strip()]
        outcome = lines[-1][:300] if lines else f"exit {os.waitstatus_to_exitcode(status)}"
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak_rss / 2**20), "outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", metavar="COMMIT", help="also measure a git worktree of this older commit")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a case is killed")
    parser.add_argument("--memory-guard-gb", type=float, default=8.0, help="RSS at which a case is killed")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("-o", "--output", default=str(ROOT / "benchmarks" / "results" / "bench_hostile.json"))
    args = parser.parse_args()

    trees = {"now": ROOT}
    with tempfile.TemporaryDirectory() as work:
        if args.compare:
            old = Path(work) / "before"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.compare], check=True,
                           capture_output=True)  # fmt: skip
            trees = {f"before ({args.compare})": old, "now": ROOT}
        inputs = Path(work) / "inputs"
        build_inputs(inputs)
        results: dict[str, dict] = {}
        try:
            for case in args.cases:
                results[case] = {}
                for label, tree in trees.items():
                    code = CASES[case].format(inputs=inputs, tree=tree)
                    result = run_case(code, tree, args.timeout, int(args.memory_guard_gb * 2**30))
                    result["outcome"] = result["outcome"].replace(str(inputs), "<inputs>")  # no machine paths
                    results[case][label] = result
                    print(f"{case:24} {label:20} {results[case][label]}", flush=True)
        finally:
            if args.compare:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    record = {
        "benchmark": "bench_hostile",
        "timeout_seconds": args.timeout,
        "memory_guard_gb": args.memory_guard_gb,
        "machine": f"{os.cpu_count()} CPUs",
        "cases": results,
        "trees": {label: repo_relative(tree) if tree == ROOT else label for label, tree in trees.items()},
    }
    Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {repo_relative(args.output)}")


if __name__ == "__main__":
    main()
