"""CPU cost of the Table 8 baselines' `mini` runs, projected from a few steps.

For each method and zoo: fit with every stage cut to `--steps` steps (the preset otherwise), read the seconds per
step of each stage from the run's log.jsonl, sample `--num` models, and project the full preset's training time
(seconds per step x the preset's steps) plus the sampling time.

    python benchmarks/baseline_cost.py --zoo results/mini/zoos/vit_base --methods pdiff,skde30,sane,d2nwg

Prints one JSON line per (method, zoo) and writes benchmarks/out/baseline_cost.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from rpg.methods import Condition, FitSettings, SampleOptions, get_method
from rpg.methods.baseline import StageConfig

STAGES = {"pdiff": {"autoencoder": "ae.train", "diffusion": "diffusion.train"}, "skde30": {"autoencoder": "train"},
          "sane": {"autoencoder": "train"}, "d2nwg": {"vae": "vae.train", "diffusion": "diffusion.train"}}


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def cost(method: str, preset: str, zoo: str, steps: int, num: int) -> dict:
    m = get_method(method)
    full = m.config(FitSettings(preset=preset))
    stages = {name: key for name, key in STAGES[method].items()
              if isinstance(_get(full, key), StageConfig) and not (method == "pdiff" and name == "autoencoder"
                                                                   and not full.ae.enabled)}
    overrides = {f"{key}.steps": str(steps) for key in stages.values()}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        t0 = time.time()
        m.fit(zoo, run, FitSettings(preset=preset, overrides=overrides, quiet=True))
        fit_s = time.time() - t0
        per_step = {}
        for line in (run / "log.jsonl").read_text().splitlines():
            rec = json.loads(line)
            per_step.setdefault(rec["stage"], []).append(rec["sec_per_step"])
        opts = m.resolve(run, SampleOptions(), "cpu")
        t0 = time.time()
        m.sample(run, num, Condition(), opts, 0, "cpu")
        sample_s = time.time() - t0
    sec = {s: sorted(v)[len(v) // 2] for s, v in per_step.items()}           # median of the logged intervals
    train_s = sum(sec[s] * _get(full, key).steps for s, key in stages.items() if s in sec)
    return {"method": method, "preset": preset, "zoo": zoo, "sec_per_step": sec,
            "preset_steps": {s: _get(full, key).steps for s, key in stages.items()},
            "projected_train_s": round(train_s, 1), "sample_s": round(sample_s, 1), "num": num,
            "cut_fit_s": round(fit_s, 1), "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", nargs="+", required=True)
    p.add_argument("--methods", default="pdiff,skde30,sane,d2nwg", help="METHOD or METHOD:PRESET, comma-separated")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--num", type=int, default=10)
    p.add_argument("--out", default="benchmarks/out/baseline_cost.json")
    a = p.parse_args(argv)
    out = []
    for zoo in a.zoo:
        for pair in a.methods.split(","):
            method, _, preset = pair.partition(":")
            r = cost(method, preset or "mini", zoo, a.steps, a.num)
            print(json.dumps(r), flush=True)
            out.append(r)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
