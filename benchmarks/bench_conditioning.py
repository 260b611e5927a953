"""Does a model follow the meter and the chords asked for? Onset profiles by position in the bar and chord tones
on strong beats, for the bundled model (or `--model`) against the data's own tunes.

    python benchmarks/bench_conditioning.py [--model BUNDLE] [--melodies 100] [--bars 16] [--data training_data]
        [--nll-data CACHE] [--baseline BUNDLE] [--out FILE]

For 4/4, 3/4, 6/8 and 2/4: `--melodies` melodies generated with `time_signature` set (default settings otherwise),
their onset profile (`melodyrnn.metrics.onset_profile`) and its Jensen-Shannon divergence in bits from the profile
of the data's tunes in that meter; also the 6/8-vs-3/4 divergence of the generated profiles (a model that ignores
the meter gives the same notes for both, so 0). Then, over given progressions (C G Am F and D G A7 D, in 4/4 and
3/4), the share of notes sounding on strong beats that are chord tones, with the chords given and without (the
same melodies scored against the progression), and the data's own where its melodies have chords; for C G Am F
in 4/4 also by `chord_guidance` (how strongly the sampler leans on the chords; the rest use its default), with
the onset profile's divergence from the data's 4/4 tunes at each weight (does leaning on the chords cost rhythm?).

`--nll-data` (a prepared cache with chords, e.g. from training_data/label_chords.py): the held-out NLL per step on
its validation split, whole melodies, with each melody's meter and chords given, with its meter but the chords
withheld (every step "no chord"), and with no conditions at all (the model assumes 4/4 and no chords); a model
that reads no conditions scores one number. `--baseline` (another bundle): sampling time of 16 melodies of 32
bars for both models, interleaved on the same machine (median of `--repeats`), with and without chords (with
chords, the model at its default guidance and at 1, the plain model).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from repo_paths import repo_relative

from melodyrnn import conditioning as cond
from melodyrnn.bundle import load
from melodyrnn.dataset import PreparedData, prepare
from melodyrnn.encoding import Melody
from melodyrnn.evaluation import score_token_lists, summarize
from melodyrnn.metrics import js_divergence_bits, onset_profile, strong_beat_chord_tone_share
from melodyrnn.sample_config import SampleConfig, progression_to_chords
from melodyrnn.sampling import Sampler

HERE = Path(__file__).resolve().parent
METERS = ((4, 4), (3, 4), (6, 8), (2, 4))
PROGRESSIONS = ("C G Am F", "D G A7 D")
GUIDANCE_WEIGHTS = (0.0, 1.0, 1.5, 2.0, 3.0)


def _with_chords(melodies: list[Melody], chords: str) -> list[Melody]:
    """The melodies scored against `chords`, as if it had been asked for (for a model that was given none)."""
    out = []
    for m in melodies:
        labels = progression_to_chords(chords, m.time_signature, m.steps_per_quarter, len(m))
        out.append(replace(m, chords=labels))
    return out


def held_out_nll(bundle_path: str | None, cache: Path) -> dict:
    """Validation NLL per step (nats) of a model on a cache's validation split, with and without conditions."""
    model = load(bundle_path, compile=False).model
    data = PreparedData.load(cache)
    indices = [i for i in data.indices("validation") if data.lengths[i] >= 2]
    tokens = [data.melody_tokens(i) for i in indices]
    every = cond.prepared_conditions(data)
    given = [every[data.offsets[i] : data.offsets[i + 1]] for i in indices]
    withheld = []
    for c in given:
        c = c.copy()
        c[:, cond.CHORD], c[:, cond.CHANGE] = 0, cond.MAX_CHANGE
        withheld.append(c)
    runs = {"chords_given": given, "chords_withheld": withheld, "no_conditions": None}
    if not model.config.conditioned:
        runs = {"no_conditions": None}
    out: dict = {
        "melodies": len(tokens),
        "with_chords": sum(bool(data.chord_offsets[i + 1] > data.chord_offsets[i]) for i in indices),
    }
    for name, conditions in runs.items():
        started = time.perf_counter()
        out[name] = summarize(tokens, score_token_lists(model, tokens, conditions=conditions))["nll_per_step"]
        print(f"NLL {name}: {out[name]:.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
    return out


def sampling_speed(model: str | None, baseline: str, repeats: int) -> dict:
    """Median seconds for 16 melodies of 32 bars (4/4), each model timed in turn, with and without chords."""
    samplers = {"model": Sampler(model), "baseline": Sampler(baseline)}
    settings = {"no_chords": {}, "chords": {"chords": "C G Am F"}, "chords_unguided": {"chords": "C G Am F"}}
    settings["chords_unguided"]["chord_guidance"] = 1.0
    times: dict = {(who, how): [] for who in samplers for how in settings}
    for sampler in samplers.values():
        for kwargs in settings.values():
            sampler.generate(16, bars=32, seed=0, **kwargs)  # compiles
    for r in range(repeats):
        for (who, how), runs in times.items():
            started = time.perf_counter()
            samplers[who].generate(16, bars=32, seed=r + 1, **settings[how])
            runs.append(time.perf_counter() - started)
    out = {f"{who}_{how}_seconds": round(float(np.median(runs)), 4) for (who, how), runs in times.items()}
    for how in settings:
        out[f"ratio_{how}"] = round(out[f"model_{how}_seconds"] / out[f"baseline_{how}_seconds"], 3)
    out["repeats"] = repeats
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle (default: the bundled model)")
    parser.add_argument("--melodies", type=int, default=100)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--data", default="training_data/midi")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nll-data", default=None, help="a prepared cache with chords: held-out NLL on its split")
    parser.add_argument("--baseline", default=None, help="another bundle: sampling speed of both models")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(HERE / "results" / "bench_conditioning.json"))
    args = parser.parse_args()

    started = time.perf_counter()
    data_path = Path(args.data)
    data = PreparedData.load(data_path) if data_path.is_file() else prepare(data_path, None, progress=False)
    tunes = data.melodies("all")
    sampler = Sampler(args.model)
    config = sampler.model.config
    result: dict = {
        "model": repo_relative(args.model) if args.model else "bundled default",
        "condition_meter": bool(getattr(config, "condition_meter", False)),
        "condition_chords": bool(getattr(config, "condition_chords", False)),
        "melodies": args.melodies,
        "bars": args.bars,
        "data": repo_relative(data_path),
        "meters": {},
        "chord_tones": {},
    }
    generated = {}
    for meter in METERS:
        melodies = sampler.generate(args.melodies, bars=args.bars, time_signature=meter, seed=args.seed)
        generated[meter] = onset_profile(melodies, meter)
        reference = onset_profile(tunes, meter)
        in_meter = sum(m.time_signature == meter for m in tunes)
        result["meters"][f"{meter[0]}/{meter[1]}"] = {
            "data_tunes": in_meter,
            "js_bits_vs_data": js_divergence_bits(generated[meter], reference) if in_meter else None,
            "generated_profile": np.round(generated[meter], 4).tolist(),
            "data_profile": np.round(reference, 4).tolist(),
        }
        print(meter, result["meters"][f"{meter[0]}/{meter[1]}"]["js_bits_vs_data"], flush=True)
    result["js_bits_6_8_vs_3_4_generated"] = js_divergence_bits(generated[(6, 8)], generated[(3, 4)])
    for chords in PROGRESSIONS:
        for meter in ((4, 4), (3, 4)):
            given = sampler.generate(args.melodies, bars=args.bars, time_signature=meter, chords=chords, seed=1)
            free = sampler.generate(args.melodies, bars=args.bars, time_signature=meter, seed=2)
            result["chord_tones"][f"{chords} in {meter[0]}/{meter[1]}"] = {
                "chords_given": strong_beat_chord_tone_share(given),
                "chords_not_given": strong_beat_chord_tone_share(_with_chords(free, chords)),
            }
            print(chords, meter, result["chord_tones"][f"{chords} in {meter[0]}/{meter[1]}"], flush=True)
    result["chord_tones_by_guidance"] = {"progression": "C G Am F in 4/4", "default": SampleConfig().chord_guidance}
    data_4_4 = onset_profile(tunes, (4, 4))
    for weight in GUIDANCE_WEIGHTS:
        melodies = sampler.generate(args.melodies, bars=args.bars, chords="C G Am F", chord_guidance=weight, seed=1)
        result["chord_tones_by_guidance"][str(weight)] = {
            "chord_tones": strong_beat_chord_tone_share(melodies),
            "onset_js_bits_vs_4_4_data": js_divergence_bits(onset_profile(melodies, (4, 4)), data_4_4),
        }
        print("guidance", weight, result["chord_tones_by_guidance"][str(weight)], flush=True)
    result["chord_tones_data"] = strong_beat_chord_tone_share(tunes)
    result["data_melodies_with_chords"] = sum(bool(m.chords) for m in tunes)
    if args.nll_data:
        labelled = PreparedData.load(args.nll_data).melodies("all")
        result["chord_tones_labelled_data"] = {
            "data": repo_relative(Path(args.nll_data)),
            "all": strong_beat_chord_tone_share(labelled),
            "chorales": strong_beat_chord_tone_share([m for m in labelled if "bachChorales" in m.source]),
            "folk": strong_beat_chord_tone_share([m for m in labelled if "bachChorales" not in m.source]),
        }
        print("chord tones of the labelled data:", result["chord_tones_labelled_data"], flush=True)
        result["held_out_nll"] = held_out_nll(args.model, Path(args.nll_data))
    if args.baseline:
        result["sampling_16x32_bars"] = {"baseline": repo_relative(Path(args.baseline))}
        result["sampling_16x32_bars"].update(sampling_speed(args.model, args.baseline, args.repeats))
        print("sampling:", result["sampling_16x32_bars"], flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine"] = {"python": platform.python_version(), "processor": platform.processor() or platform.machine()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {repo_relative(out)}")


if __name__ == "__main__":
    main()
