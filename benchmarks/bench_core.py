"""CPU benchmark of the core library against the official code's measured figures (issue: core library).

At the Tiny preset's exact settings (token 256, 2-layer recurrent model of width 256, denoiser
[1,32,64,128,64,32,1], batch 8, lr 1e-4, all tokens per step, DDPM-1000 / DDIM-60), on the two sklearn-digits
zoos (2.9k params = 17 tokens; 68k params = 272 tokens), it measures:
- seconds per training step (median of several, after warm-up), with the LSTM backbone the official CPU
  figures used, and with our pure-PyTorch Mamba2 (the paper's backbone);
- seconds per generated model with DDPM-1000 and DDIM-60 (10 models sampled together, fully parallel).

    python benchmarks/bench_core.py [--zoo-dir runs/zoos] [--reps 5] [--bf16]

Writes benchmarks/out/bench_core.json and prints a table next to the official figures. Timings are
measurements, not assertions.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from rpg.formats import read_zoo
from rpg.generator.config import preset_config
from rpg.generator.model import RPG
from rpg.generator.sampling import sample_tokens
from rpg.generator.training import make_optimizer, tokenize_zoo

OFFICIAL = {  # the official code on this kind of machine (2 idle cores), LSTM backbone, Tiny preset
    "digits_2k9": {"train_step_s": (0.44, 0.57), "ddpm1000_s_per_model": (16.0, 17.0),
                   "ddim60_s_per_model": (0.9, 1.2)},
    "digits_68k": {"train_step_s": (16.4, 16.4), "ddpm1000_s_per_model": (325.0, 325.0),
                   "ddim60_s_per_model": (19.0, 19.0)},
}


def _digits_zoo():
    """benchmarks/digits_zoo.py (the digits zoo collector), loaded by path: this file also runs as a plain script."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("digits_zoo", Path(__file__).with_name("digits_zoo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench(zoo_name: str, zoo_dir: Path, kind: str, reps: int, bf16: bool, gen: bool) -> dict:
    if not (zoo_dir / "manifest.json").is_file():
        _digits_zoo().collect(zoo_name, zoo_dir)
    over = {"recurrent.kind": kind, "train.precision": "bf16" if bf16 else "fp32"}
    cfg = preset_config("tiny", over)
    run = zoo_dir.parent / f".bench_{zoo_name}"
    run.mkdir(exist_ok=True)
    tok, tokens = tokenize_zoo(read_zoo(zoo_dir), cfg.tokenizer, run)
    tokens = torch.from_numpy(tokens[:])
    torch.manual_seed(0)
    model = RPG(cfg, tok.layer_ids, tok.token_ids, tokens.shape[0])
    opt = make_optimizer(model, cfg)
    mask = tok.mask
    g = torch.Generator().manual_seed(0)

    def step():
        idx = torch.randint(0, tokens.shape[0], (8,), generator=g)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(tokens[idx], mask, idx, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    res = {"zoo": zoo_name, "tokens": tok.num_tokens, "params": tok.num_params, "backbone": kind,
           "precision": "bf16" if bf16 else "fp32", "train_step_s": round(statistics.median(times), 4),
           "train_step_s_all": [round(t, 4) for t in times]}
    if gen:
        small = tok.num_tokens < 100
        # DDPM-1000 on the 68k zoo would take minutes per model: there we time 100 ancestral steps (the same
        # work per step: one denoiser call on every token + one scheduler step) and scale by 10.
        runs = (("ddim", 60, 10, 1), ("ddpm", 1000, 10, 1) if small else ("ddim", 100, 10, 10))
        for sampler, steps, n, scale in runs:
            t0 = time.perf_counter()
            sample_tokens(model, n, sampler=sampler, steps=steps, mode="full", autocast=bf16,
                          generator=torch.Generator().manual_seed(0))
            key = "ddim60_s_per_model" if steps == 60 else "ddpm1000_s_per_model"
            res[key] = round((time.perf_counter() - t0) / n * scale, 3)
            if scale != 1:
                res[key + "_note"] = "extrapolated from 100 steps x10"
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo-dir", default="runs/zoos")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--bf16", action="store_true", help="also measure bf16 autocast (AMX on recent Xeons)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for zoo in ("digits_2k9", "digits_68k"):
        for kind in ("lstm", "mamba"):
            for bf16 in ((False, True) if args.bf16 else (False,)):
                r = bench(zoo, Path(args.zoo_dir) / zoo, kind, args.reps, bf16, gen=kind == "lstm")
                r["official"] = OFFICIAL[zoo]
                rows.append(r)
                print(json.dumps(r), flush=True)
    out = Path("benchmarks/out")
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__}
    (out / "bench_core.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\n{'zoo':<11} {'backbone':<6} {'prec':<5} {'step s':>8} {'official':>12} {'DDPM s/model':>13} "
          f"{'official':>10} {'DDIM60 s/model':>15} {'official':>10}")
    for r in rows:
        o = r["official"]
        ts, dp, dm = o["train_step_s"], o["ddpm1000_s_per_model"], o["ddim60_s_per_model"]
        print(f"{r['zoo']:<11} {r['backbone']:<6} {r['precision']:<5} {r['train_step_s']:>8.3f} "
              f"{f'{ts[0]:.2f}-{ts[1]:.2f}':>12} {r.get('ddpm1000_s_per_model', float('nan')):>13.2f} "
              f"{f'{dp[0]:.0f}-{dp[1]:.0f}':>10} {r.get('ddim60_s_per_model', float('nan')):>15.3f} "
              f"{f'{dm[0]:.1f}-{dm[1]:.1f}':>10}")


if __name__ == "__main__":
    main()
