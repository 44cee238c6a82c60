"""Fig. 8: training memory vs number of generated parameters, for RPG and the Table 8 baselines (issue 13).

For every (method, architecture) pair a fresh child process builds a two-checkpoint "zoo" of the architecture
with random weights (`pretrained=False`; the second checkpoint is the first plus small noise), normalises it with
RPG's tokenizer, builds the method's networks with its preset and runs a few optimisation steps of every training
stage (the real `fit_stages` / RPG loss code). It reports its peak resident memory (VmHWM) above what it held
after the imports. The child runs under a memory cap: RLIMIT_AS = its address space after the imports + the cap,
so an allocation past the cap fails inside the child (recorded as OOM with the size it reached) and never takes
the machine down; a wall-clock limit ends runs that would take too long (recorded as timeout).

    python benchmarks/memory.py --out results/mini/fig8.json --csv results/mini/fig8.csv --plot results/mini/fig8.png \\
        [--sizes cnn_m,resnet18_mini,...] [--methods rpg:base,pdiff:original,...] [--cap-gib 20] [--steps 2]

The JSON has one record per run (method, preset, architecture, params, status ok|oom|timeout|error, peak bytes,
seconds) and, per method, the largest size that fit and its ratio to RPG's (the paper: RPG generates 34-960x more
parameters at equal memory). OOM points also get a projected peak from a power-law fit of the method's fitted
sizes. The paper's Fig. 8 values are only in the figure image (not in the text), so the plot shows the paper's
claim as text, not its points. Measured on this machine's CPU (RSS), not an 80 GB H100.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# id -> architecture spec (rpg.zoos.architectures.build_model); `recipe:NAME` takes a zoo recipe's architecture.
# About 10 sizes from 1e4 to 2e8 parameters: the mini nets, then timm networks with 10-class heads.
SIZES = {
    "cnn_m_mini": "recipe:mini/cnn_m",
    "mobilenetv3_mini": "recipe:mini/mobilenetv3",
    "resnet18_mini": "recipe:mini/resnet18",
    "vit_base_mini": "recipe:mini/vit_base",
    "mobilenetv3_small": {"name": "timm:mobilenetv3_small_050", "kwargs": {"num_classes": 10}},
    "resnet18_narrow": {"name": "timm:resnet18", "kwargs": {"num_classes": 10, "channels": [32, 64, 128, 256]}},
    "mobilenetv3_large": {"name": "timm:mobilenetv3_large_100", "kwargs": {"num_classes": 10}},
    "resnet18": {"name": "timm:resnet18", "kwargs": {"num_classes": 10}},
    "vit_base": {"name": "timm:vit_base_patch16_224", "kwargs": {"num_classes": 10}},
    "convnext_large": {"name": "timm:convnext_large", "kwargs": {"num_classes": 10}},
}
# method:preset pairs; the baselines' paper presets and RPG's Base preset (token 8192)
METHODS = ("rpg:base", "pdiff:original", "skde30:paper", "sane:paper", "d2nwg:paper")
# the step count and batch size of every stage of each method (dotted config keys)
STAGES = {
    "pdiff": ("ae.train", "diffusion.train"),
    "skde30": ("train",),
    "sane": ("train",),
    "d2nwg": ("vae.train", "diffusion.train"),
}


# ------------------------------------------------------------------------------------------------ child
def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _architecture(size: str):
    spec = SIZES[size]
    if isinstance(spec, str) and spec.startswith("recipe:"):
        from rpg.zoos.recipes import load_recipe
        return load_recipe(spec[len("recipe:"):]).architecture
    return spec


def child(method: str, preset: str, size: str, steps: int, batch: int, cap: int, chunk: int | None = None) -> dict:
    """One measurement, in this (child) process. Returns the record; OOM is caught and recorded."""
    import timm  # noqa: F401  (imports first: the baseline memory holds every library)
    import torch

    import rpg.generator.model  # noqa: F401
    import rpg.methods  # noqa: F401
    from rpg.generator.tokenizer import ParamTokenizer, is_generated
    from rpg.zoos.architectures import build_model

    torch.manual_seed(0)
    base_rss = _status_kib("VmRSS") * 1024
    if cap > 0:   # address space already mapped (libraries, thread stacks) + the cap
        limit = _status_kib("VmSize") * 1024 + cap
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    record = {"method": method, "preset": preset, "size": size, "steps": steps, "batch": batch, "cap_bytes": cap}
    t0 = time.time()
    stage = "zoo"
    try:
        sd = {k: v.detach().clone() for k, v in build_model(_architecture(size)).state_dict().items()}
        record["params"] = sum(v.numel() for k, v in sd.items() if is_generated(k, v))
        stage = "data"
        if method == "rpg-generate":   # one model's layout is all a generation needs
            record.update(_generate_rpg(preset, sd, steps, chunk))
        elif method == "rpg":
            _run_rpg(preset, _training_pair(sd), steps, batch)
        else:
            sds = _training_pair(sd)
            token = 256
            tok = ParamTokenizer.fit(((str(i), s) for i, s in enumerate(sds)), token, "flatten")
            x = torch.stack([tok.normalize(s, torch.float32) for s in sds])        # (2, P)
            del sds, sd
            stage = "fit"
            _run_baseline(method, preset, tok, x, steps, batch)
        record["status"] = "ok"
    except (MemoryError, RuntimeError) as e:   # torch's "can't allocate memory" is a RuntimeError
        text = str(e).lower()
        oom = isinstance(e, MemoryError) or "alloc" in text or "memory" in text
        record["status"] = "oom" if oom else "error"
        record["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        record["failed_in"] = stage
    record["peak_bytes"] = _status_kib("VmHWM") * 1024 - base_rss
    record["seconds"] = round(time.time() - t0, 2)
    return record


def _training_pair(sd: dict) -> list[dict]:
    """A two-checkpoint zoo: the model and a copy with small noise on its floating-point tensors."""
    import torch
    return [sd, {k: (v + 0.01 * torch.randn_like(v)) if v.is_floating_point() else v for k, v in sd.items()}]


def _run_rpg(preset: str, sds: list, steps: int, batch: int) -> None:
    import torch

    from rpg import optim
    from rpg.generator.config import preset_config
    from rpg.generator.model import RPG
    from rpg.generator.tokenizer import ParamTokenizer
    cfg = preset_config(preset, {"train.batch_size": str(batch)})
    tok = ParamTokenizer.fit(((str(i), s) for i, s in enumerate(sds)), cfg.tokenizer.token_size,
                             cfg.tokenizer.strategy)
    tokens = torch.stack([tok.tokenize(s, torch.float32) for s in sds])            # (2, L, d)
    sds.clear()
    model = RPG(cfg, tok.layer_ids, tok.token_ids, len(tokens))
    opt = optim.make_optimizer(model.parameters(), "adamw", cfg.train.lr)
    g = torch.Generator().manual_seed(0)
    perms = torch.arange(len(tokens))
    for _ in range(steps):
        idx = torch.randint(0, len(tokens), (batch,), generator=g)
        opt.zero_grad(set_to_none=True)
        model(tokens[idx], tok.mask, perms[idx], None, generator=g).backward()
        opt.step()


def _generate_rpg(preset: str, sd: dict, steps: int, chunk: int | None = None) -> dict:
    """One model from an UNTRAINED RPG generator of the preset, partial mode, DDIM with `steps` steps; the time at
    the preset's own step count is the prototype pass (once) plus the denoising loop scaled to that many steps.
    Partial mode twice over: the recurrent pass runs diffusion.chunk_size tokens at a time carrying the Mamba state
    (RPG-Large's 10.5 GiB of fp32 weights plus its activations over ConvNeXt-L's ~12k tokens at once ran out of
    20 GiB), and the denoiser `chunk` tokens at a time (default the same; a 256-token chunk of 16,384-wide tokens
    is 1.5 GiB per conv activation, which ran out too). Smaller segments in the recurrent pass would re-read the
    weights once per segment, so only the denoiser's chunk is a knob."""
    import torch

    from rpg.generator.config import preset_config
    from rpg.generator.model import RPG
    from rpg.generator.sampling import sample_tokens
    from rpg.generator.tokenizer import ParamTokenizer
    cfg = preset_config(preset, {})
    chunk = chunk or cfg.diffusion.chunk_size
    tok = ParamTokenizer.fit([("0", sd)], cfg.tokenizer.token_size, cfg.tokenizer.strategy)
    model = RPG(cfg, tok.layer_ids, tok.token_ids, 1).eval()
    t = {}
    tokens = sample_tokens(model, 1, sampler="ddim", steps=steps, mode="partial", chunk_size=chunk,
                           permutation=torch.zeros(1).long(), generator=torch.Generator().manual_seed(0), timings=t,
                           prototype_chunk=cfg.diffusion.chunk_size)
    generated = tok.detokenize(tokens[0])
    projected = t["prototypes_s"] + t["denoising_s"] * cfg.diffusion.sampling_steps / t["steps"]
    return {"tokens": tok.num_tokens, "token_size": cfg.tokenizer.token_size, "sampling_steps": steps,
            "sampling_seconds": round(t["prototypes_s"] + t["denoising_s"], 1),
            "prototypes_seconds": round(t["prototypes_s"], 1), "denoising_seconds": round(t["denoising_s"], 1),
            "preset_steps": cfg.diffusion.sampling_steps, "projected_seconds": round(projected, 1),
            "chunk_tokens": chunk, "prototype_chunk_tokens": cfg.diffusion.chunk_size,
            "generated_params": sum(v.numel() for v in generated.values()), "trained": False}


def _run_baseline(method: str, preset: str, tok, x, steps: int, batch: int) -> None:
    from rpg.methods import METHODS
    from rpg.methods.baseline import StagedFit, ZooData, build_config

    overrides = {}
    for key in STAGES[method]:
        overrides[f"{key}.steps"] = str(steps)
        overrides[f"{key}.batch_size"] = str(batch)
    m = METHODS[method]()
    cfg = build_config(m.config_class, method, preset, None, overrides)
    data = ZooData(tok, x, "memory-benchmark", [None] * len(x), {})
    modules, _ = m.build(cfg, data)

    class NoSave(StagedFit):   # memory only: no state files
        def _save(self, stage, step, *a, **k):
            self.state = {**self.state, "stage": stage, "step": step, "optimizer": None}

    with tempfile.TemporaryDirectory() as tmp:
        fit = NoSave(Path(tmp), {}, "memory-benchmark", modules, cfg.save_every, 0, "cpu", False, True)
        m.fit_stages(cfg, data, modules, fit, "cpu")


# ------------------------------------------------------------------------------------------------ parent
def measure(method: str, preset: str, size: str, steps: int, batch: int, cap: int, timeout: int,
            threads: int | None, chunk: int | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", method, preset, size, str(steps), str(batch),
           str(cap)] + (["--child-chunk", str(chunk)] if chunk else [])
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"method": method, "preset": preset, "size": size, "status": "timeout", "seconds": timeout,
                "cap_bytes": cap}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode == 0 and lines:
        return json.loads(lines[-1])
    # killed or crashed outside Python's reach (e.g. a C library's failed allocation under the cap)
    tail = (p.stderr or "").strip().splitlines()[-1:] or [""]
    return {"method": method, "preset": preset, "size": size, "status": "oom" if p.returncode < 0 or "alloc"
            in tail[0].lower() else "error", "returncode": p.returncode, "error": tail[0][:200],
            "seconds": round(time.time() - t0, 2), "cap_bytes": cap}


def summarise(records: list[dict]) -> dict:
    """Largest fitting size per METHOD:PRESET, and each RPG preset's ratio to each baseline's largest size."""
    from rpg.memory import study_label

    largest = {}
    for r in records:
        if r["status"] == "ok" and r.get("params"):
            largest[study_label(r)] = max(largest.get(study_label(r), 0), r["params"])
    rpg = {k: v for k, v in largest.items() if k.split(":")[0] == "rpg"}
    return {"largest_fitting_params": largest,
            "rpg_ratio": {f"{r} / {m}": n_rpg / n for r, n_rpg in rpg.items()
                          for m, n in largest.items() if m not in rpg}}


def plot(records: list[dict], summary: dict, cap: int, path: Path) -> None:
    import matplotlib

    from rpg.memory import study_label

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.6))
    colours = {"rpg": "tab:red", "pdiff": "tab:blue", "skde30": "tab:orange", "sane": "tab:green",
               "d2nwg": "tab:purple"}
    styles = ["o-", "s--", "^:"]
    seen: dict[str, int] = {}
    for label in dict.fromkeys(study_label(r) for r in records):
        rs = sorted((r for r in records if study_label(r) == label and r.get("params")), key=lambda r: r["params"])
        method = label.split(":")[0]
        c, style = colours.get(method, "black"), styles[seen.get(method, 0) % len(styles)]
        seen[method] = seen.get(method, 0) + 1
        ok = [r for r in rs if r["status"] == "ok"]
        ax.plot([r["params"] for r in ok], [r["peak_bytes"] / 2 ** 30 for r in ok], style, color=c, label=label)
        bad = [r for r in rs if r["status"] != "ok"]
        ax.scatter([r["params"] for r in bad], [r.get("projected_peak_bytes", cap) / 2 ** 30 for r in bad],
                   marker="x", color=c)
    if cap:
        ax.axhline(cap / 2 ** 30, color="grey", ls="--", lw=1, label=f"cap {cap / 2 ** 30:.0f} GiB (x: OOM)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("generated parameters")
    ax.set_ylabel("peak training memory (GiB, RSS)")
    ratios = [v for v in summary["rpg_ratio"].values() if v]
    span = f"{min(ratios):.0f}-{max(ratios):.0f}x" if ratios else "n/a"
    ax.set_title("Fig. 8: memory vs generated parameters (CPU)\n"
                 f"RPG's largest fitting size / a baseline's: {span} (paper: 34-960x)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", nargs=6, metavar=("METHOD", "PRESET", "SIZE", "STEPS", "BATCH", "CAP"),
                   help=argparse.SUPPRESS)
    p.add_argument("--child-chunk", type=int, help=argparse.SUPPRESS)
    p.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated ids (known: {', '.join(SIZES)})")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated METHOD:PRESET pairs")
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    p.add_argument("--cap-gib", type=float, default=mem_gib,
                   help=f"memory cap per run in GiB (default: this machine's memory, {mem_gib:.1f})")
    p.add_argument("--steps", type=int, default=2, help="optimisation steps per training stage (default 2)")
    p.add_argument("--batch", type=int, default=1, help="checkpoints per step (default 1)")
    p.add_argument("--timeout", type=int, default=900, help="seconds per run before it is recorded as timeout")
    p.add_argument("--threads", type=int, help="OMP threads of each child (default: torch's choice)")
    p.add_argument("--rpg-generate", metavar="SIZE:PRESET",
                   help="also sample one model of SIZE from an untrained RPG generator of PRESET in partial mode "
                        "(e.g. convnext_large:large), --steps DDIM steps, time projected to the preset's steps; "
                        "with --methods '' it is the only run (no CSV or plot)")
    p.add_argument("--rpg-chunk", type=int, metavar="N",
                   help="tokens per denoising chunk of --rpg-generate (default: the preset's diffusion.chunk_size, "
                        "256; the recurrent pass keeps that segment length)")
    p.add_argument("--out", default="benchmarks/out/fig8.json")
    p.add_argument("--csv", help="the records as CSV (default: --out with .csv)")
    p.add_argument("--plot", help="PNG (default: --out with .png)")
    a = p.parse_args(argv)
    if a.child:
        method, preset, size, steps, batch, cap = a.child
        print(json.dumps(child(method, preset, size, int(steps), int(batch), int(cap), a.child_chunk)), flush=True)
        return 0
    sizes = [s for s in a.sizes.split(",") if s]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        p.error(f"--sizes: unknown {', '.join(unknown)} (known: {', '.join(SIZES)})")
    if a.rpg_chunk is not None and a.rpg_chunk < 1:
        p.error(f"--rpg-chunk {a.rpg_chunk}: must be an integer >= 1")
    cap = int(a.cap_gib * 2 ** 30)
    records = []
    for pair in filter(None, a.methods.split(",")):   # --methods '' with --rpg-generate: the generation alone
        method, _, preset = pair.partition(":")
        failed = False
        for size in sizes:
            if failed:   # sizes grow: past a failure the next size fails too; recorded without running
                records.append({"method": method, "preset": preset, "size": size, "status": "skipped",
                                "cap_bytes": cap})
                continue
            r = measure(method, preset, size, a.steps, a.batch, cap, a.timeout, a.threads)
            records.append(r)
            print(json.dumps(r), flush=True)
            failed = r["status"] in ("oom", "timeout")
    generation = None
    if a.rpg_generate:
        size, _, preset = a.rpg_generate.partition(":")
        generation = measure("rpg-generate", preset or "large", size, a.steps, 1, cap, a.timeout, a.threads,
                             a.rpg_chunk)
        print(json.dumps(generation), flush=True)
    from rpg.formats import write_memory_study
    from rpg.memory import project_peaks
    project_peaks(records)
    summary = summarise(records)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"cap_bytes": cap, "steps": a.steps, "batch": a.batch, "device": "cpu", "machine_memory_gib": mem_gib,
            "cpus": os.cpu_count(), "measured": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    write_memory_study(out, {**meta, **summary, "records": records, "rpg_generation": generation})
    if records:
        import pandas as pd
        pd.DataFrame(records).to_csv(a.csv or out.with_suffix(".csv"), index=False)
        plot(records, summary, cap, Path(a.plot or out.with_suffix(".png")))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
