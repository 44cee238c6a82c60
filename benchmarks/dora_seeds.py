"""Spread between seeds of the mini Table 3 zoos: the recipe's DoRA fine-tuning rerun with other seeds, each run's
last checkpoint scored on the held-out items (the adapters must beat the base model by more than this to count).

    python benchmarks/dora_seeds.py --zoo mini/dora_r4 --seeds 1 2 [--lm-root results/mini/lm] [--out /tmp/dora_seeds]

Each seed is one `rpg collect` of the recipe with `seed=S`, `num_checkpoints=1` (the last step only) and
`eval_checkpoints=true` (the collector scores it with lm-eval, as `rpg evaluate` does). The workflow's zoo is seed
0: its last checkpoint's score is in results/<scale>/metrics/<zoo>.json (`original.accuracies[-1]`). Prints one
line per seed (accuracy in percent) and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--zoo", default="mini/dora_r4", help="a DoRA recipe of the zoo registry")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--lm-root", default="results/mini/lm", help="where `rpg lm model` / `rpg lm task` wrote")
    p.add_argument("--out", default="/tmp/dora_seeds", help="one zoo folder per seed is written under it")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    from rpg.io import read_json
    from rpg.lm.collect import collect_adapters
    from rpg.zoos.recipes import get_zoo

    scores = {}
    for seed in args.seeds:
        cfg = get_zoo(args.zoo).override({"lm_root": args.lm_root, "seed": str(seed), "num_checkpoints": "1",
                                          "eval_checkpoints": "true"})
        out = Path(args.out) / f"{Path(args.zoo).name}_seed{seed}"
        t0 = time.perf_counter()
        collect_adapters(cfg, out, args.device, progress=False)
        (last,) = read_json(out / "manifest.json")["checkpoints"]
        scores[seed] = round(100.0 * last["accuracy"], 2)      # the manifest records a fraction
        print(f"{args.zoo} seed {seed}: step {last['iteration']} accuracy {scores[seed]} % "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    values = list(scores.values())
    summary = {"zoo": args.zoo, "scores": scores, "mean": statistics.fmean(values),
               "range": max(values) - min(values),
               "std": statistics.stdev(values) if len(values) > 1 else None}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
