"""CPU cost of the unseen-task study (paper §4) and of Tab. 15 at mini scale, to size their zoos.

Measures, with the mini recipes and preset as configured:
- the task zoo's pretraining (once per zoo) and seconds per task (fine-tuning + 3 checkpoints), on `--tasks` tasks;
- seconds per Tab. 15 seed run (one seed of `mini/vit_tiny_seeds`);
- seconds per generator training step (mini preset) on the task zoo (gated condition) and on the seeds zoo;
- seconds per sampled task condition (3 models) and per evaluated model;
then projects the two budgets (§4 targets <= 90 min, Tab. 15 <= 60 min) and the largest `num_seen_tasks` that keeps
a 20% margin. Run it alone (heavy runs share the CPU lock):

    flock /tmp/rpg-cpu.lock python benchmarks/bench_tasks.py [--tasks 6] [--threads 2] [--steps 40]

`--zoo-set KEY=VALUE` overrides both recipes (e.g. `dataset.train_limit=512` for a smoke check of the script).
Timings are measurements, not assertions; the load average before and after is printed with them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from rpg import formats
from rpg.configs import parse_overrides
from rpg.evaluation.evaluate import evaluate_zoo
from rpg.generator.config import preset_config
from rpg.methods import FitSettings, generate
from rpg.methods.rpg import RPGMethod
from rpg.zoos.collection import Collector
from rpg.zoos.datasets import DataConfig
from rpg.zoos.recipes import apply_overrides, get_zoo

MINUTE = 60.0


def quiet(*a, **k):
    pass


def fit(zoo: Path, run: Path, steps: int, *extra: str) -> float:
    """Seconds per step of the mini preset (tokenizing and start-up included, so an upper bound)."""
    overrides = {"train.steps": str(steps), "train.save_every": str(steps), **dict(kv.split("=") for kv in extra)}
    t0 = time.perf_counter()
    RPGMethod().fit(zoo, run, FitSettings(preset="mini", overrides=overrides, device="cpu", quiet=True))
    return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=6, help="seen tasks to collect (default 6)")
    p.add_argument("--steps", type=int, default=40, help="generator steps per timing (default 40)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--zoo-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--keep", help="keep the measured zoos and runs in this folder")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load before: {os.getloadavg()}")
    root = Path(args.keep or tempfile.mkdtemp(prefix="bench_tasks."))
    over = parse_overrides(args.zoo_set)
    data = DataConfig.from_sources()

    tasks_cfg = apply_overrides(get_zoo("mini/vit_tiny_tasks"), {**over, "num_seen_tasks": str(args.tasks),
                                                                 "collect_unseen": "false"})
    c = Collector(tasks_cfg, root / "tasks", data, torch.device("cpu"), progress=False, log=quiet)
    c.run()
    per_task = (c.timing["train"] + c.timing["save_pass"]) / args.tasks
    pretrain = c.timing["pretrain"]

    seeds_cfg = apply_overrides(get_zoo("mini/vit_tiny_seeds"), {**over, "num_seeds": "1"})
    s = Collector(seeds_cfg, root / "seeds", data, torch.device("cpu"), progress=False, log=quiet)
    s.run()
    per_seed = s.timing["train"] + s.timing["save_pass"]

    step_tasks = fit(root / "tasks", root / "run_tasks", args.steps, "condition.task=gated")
    step_seeds = fit(root / "seeds", root / "run_seeds", args.steps)
    seen = formats.read_zoo(root / "tasks").refs[0].task
    ids = str(int("".join(map(str, seen)), 2))
    t0 = time.perf_counter()
    generate(root / "run_tasks", root / "gen_tasks", 3, 0, f"tasks:{ids},{tasks_cfg.unseen_tasks[0]}", device="cpu")
    per_condition = (time.perf_counter() - t0) / 2
    t0 = time.perf_counter()
    res = evaluate_zoo(root / "tasks", root / "gen_tasks", device="cpu", progress=False)
    per_model = (time.perf_counter() - t0) / (res["original"]["n"] + res["generated"]["n"])
    t0 = time.perf_counter()
    generate(root / "run_seeds", root / "gen_seeds", 10, 0, device="cpu")
    sample_seeds = time.perf_counter() - t0

    steps_default = preset_config("mini").train.steps
    unseen = len(tasks_cfg.unseen_tasks)
    fixed = (2 * steps_default * step_tasks + 4 * 20 * per_condition + 5 * 120 * per_model + pretrain)
    budget = 90 * MINUTE / 1.2 - fixed
    n_max = int(budget / per_task) - unseen
    tab15 = (34 * per_seed + 8 * 800 * step_seeds + 8 * sample_seeds + (2 * 5 * 34 + 80) * per_model)
    print(f"load after: {os.getloadavg()}")
    print(f"pretraining (once)           {pretrain:8.1f} s")
    print(f"per task (fine-tune + 3 ckpt){per_task:8.2f} s   (all 1002 + 20: {(1022 * per_task) / MINUTE:.0f} min)")
    print(f"per seed run (Tab. 15)       {per_seed:8.1f} s")
    print(f"generator step, task zoo     {step_tasks:8.3f} s   seeds zoo {step_seeds:.3f} s")
    print(f"sampling per task (3 models) {per_condition:8.1f} s   10 models of a seeds run {sample_seeds:.1f} s")
    print(f"evaluation per model         {per_model:8.2f} s")
    print(f"§4: fixed part {fixed / MINUTE:.0f} min; num_seen_tasks <= {n_max} keeps 20% margin in 90 min; "
          f"configured {get_zoo('mini/vit_tiny_tasks').num_seen_tasks}: "
          f"{(fixed + (get_zoo('mini/vit_tiny_tasks').num_seen_tasks + unseen) * per_task) / MINUTE:.0f} min")
    print(f"Tab. 15 (34 seed runs, 8 generators x 800 steps): {tab15 / MINUTE:.0f} min")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
