"""Costs of the mini Table 3 (DoRA on SmolLM2-135M): fine-tuning step time, one lm-eval pass on the held-out items,
the base model vs a briefly trained adapter, and an RPG training step on a zoo of that adapter's shape.

    python benchmarks/dora_costs.py --lm-root results/mini/lm --steps 60 --layers 26,27,28,29 [--rank 4]

Needs `rpg lm model --name smollm2_135m` and `rpg lm task --name word_sentiment` under --lm-root first. Prints one
line per measurement (docs/language.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lm-root", default="results/mini/lm")
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--layers", default="", help="comma-separated decoder layers; empty = all")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-limit", type=int, default=None)
    p.add_argument("--rpg-steps", type=int, default=5, help="RPG (mini preset) steps to time; 0 = skip")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from rpg.lm import models
    from rpg.lm.collect import train_adapter
    from rpg.lm.config import AdapterConfig, DoraZooConfig
    from rpg.lm.scoring import Scorer

    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    steps = args.steps
    cfg = DoraZooConfig(name="bench", lm_root=args.lm_root, steps=steps, warmup=min(10, steps // 5),
                        lr=args.lr, batch_size=args.batch_size, num_checkpoints=2, save_every=1, max_length=64,
                        eval_limit=args.eval_limit, eval_batch_size=64,
                        adapter=AdapterConfig(rank=args.rank, layers=layers))
    t = time.perf_counter()
    model, tok = models.load_base(cfg.model_dir, cfg.dtype)
    print(f"load base model: {time.perf_counter() - t:.1f} s", flush=True)
    peft_model = models.add_dora(model, cfg.adapter)
    scorer = Scorer(cfg, "cpu", model=peft_model, tokenizer=tok)
    print(f"adapter params (rank {args.rank}, layers {layers or 'all'}): {scorer.params}", flush=True)
    t = time.perf_counter()
    base = scorer.score(None, "base")
    t_eval = time.perf_counter() - t
    print(f"lm-eval pass, base model: {t_eval:.1f} s, acc {base.per_task}", flush=True)
    times = []

    def on_step(step, m):
        times.append(time.perf_counter())

    t0 = time.perf_counter()
    losses = train_adapter(cfg, peft_model, tok, torch.device("cpu"), on_step, progress=False)
    steps_t = [b - a for a, b in zip([t0] + times[:-1], times)]
    print(f"DoRA step: {sum(steps_t[2:]) / max(1, len(steps_t) - 2):.3f} s/step (batch {args.batch_size}), "
          f"loss {sum(losses[:5]) / 5:.3f} -> {sum(losses[-5:]) / 5:.3f}", flush=True)
    sd = models.adapter_state(peft_model)
    t = time.perf_counter()
    tuned = scorer.score(sd, "tuned")
    print(f"lm-eval pass, adapter after {steps} steps: {time.perf_counter() - t:.1f} s, acc {tuned.per_task} "
          f"(gain {tuned.mean - base.mean:+.2f} pt)", flush=True)
    if args.rpg_steps:
        # an RPG generator (mini preset) on 8 perturbed copies of this adapter: step time at this token count
        import subprocess
        import sys
        import tempfile
        from pathlib import Path

        from rpg.io import save_state_dict

        g = torch.Generator().manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(8):
                save_state_dict(Path(tmp) / "zoo" / f"c{i}.safetensors",
                                {k: v + 1e-3 * torch.randn(v.shape, generator=g) for k, v in sd.items()})
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "rpg", "train", "--checkpoints", f"{tmp}/zoo", "--out",
                                  f"{tmp}/run", "--preset", "mini", "--set", f"train.steps={args.rpg_steps}",
                                  "--set", f"train.log_every={max(1, args.rpg_steps // 2)}",
                                  "--threads", str(args.threads)], capture_output=True, text=True)
            print(f"rpg train, {args.rpg_steps} mini steps: {time.perf_counter() - t:.1f} s wall (incl. start-up)",
                  flush=True)
            print("\n".join((out.stdout + out.stderr).strip().splitlines()[-6:]), flush=True)
    print(json.dumps({"eval_s": t_eval, "step_s": steps_t[2:], "base": base.per_task, "tuned": tuned.per_task}))


if __name__ == "__main__":
    main()
