"""Paper Fig. 8: training memory vs number of generated parameters, for RPG and the Table 8 baselines.

For every (method, preset, architecture) a fresh child process fits the method the way `rpg train` does (the
method's own `fit`, `rpg.methods.base.Method`) on a two-checkpoint zoo of the architecture (random weights,
`pretrained=False`; the second checkpoint is the first plus small noise; written once per size), stopped after
`steps` optimisation steps of every training stage (`FitSettings.max_steps`) and under a memory cap
(`FitSettings.memory_cap_bytes`: an allocation past it fails inside the child, recorded as OOM with the size it
reached, and never takes the machine down). Each stage's batch is `batch` checkpoints (`<stage>.batch_size` of
the method's `stages`). The child reports its peak resident memory (VmHWM) above what it held after the imports;
a wall-clock limit ends runs that would take too long (recorded as timeout).

The study (format rpg-memory/1, `rpg.formats.write_memory_study`) has one record per run (method, preset,
architecture, params, status ok|oom|timeout|error|skipped, peak bytes, seconds) and, per METHOD:PRESET, the
largest size that fit and each RPG preset's ratio to each baseline's (the paper: RPG generates 34-960x more
parameters at equal memory). Runs that did not fit get a projected peak (`rpg.memory.project_peaks`). The
paper's Fig. 8 values are only in the figure image (not in the text), so the plot states the paper's claim as
text, not its points. Measured on this machine's CPU (RSS), not an 80 GB H100.

`rpg_generation`: optionally one model of a size from an UNTRAINED RPG generator in partial mode, with its time
and peak memory (`measure_generation`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
SIZE_FILE = "size.json"     # beside a study zoo's checkpoints: {"size": id, "params": generated parameters}


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


def _state_dict(size: str) -> dict:
    from rpg.zoos.architectures import build_model
    return {k: v.detach().clone() for k, v in build_model(_architecture(size)).state_dict().items()}


def _generated_params(sd: dict) -> int:
    from rpg.generator.tokenizer import is_generated
    return sum(v.numel() for k, v in sd.items() if is_generated(k, v))


# ------------------------------------------------------------------------------------------------ child side
def write_zoo(size: str, folder: str | os.PathLike) -> int:
    """A two-checkpoint zoo of the architecture in `folder` (a plain folder of weight files: permutation = position,
    what `rpg train` reads): the model with random weights and a copy with small noise on its floating-point
    tensors. Returns the generated parameter count (also in SIZE_FILE)."""
    import torch

    from rpg import io
    torch.manual_seed(0)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = _state_dict(size)
    params = _generated_params(sd)
    io.save_state_dict(folder / "ckpt_0.safetensors", sd)
    io.save_state_dict(folder / "ckpt_1.safetensors",
                       {k: (v + 0.01 * torch.randn_like(v)) if v.is_floating_point() else v for k, v in sd.items()})
    (folder / SIZE_FILE).write_text(json.dumps({"size": size, "params": params}))
    return params


def _failure(record: dict, e: BaseException, stage: str) -> None:
    text = str(e).lower()
    oom = isinstance(e, MemoryError) or "alloc" in text or "memory" in text   # torch: "can't allocate memory"
    record["status"] = "oom" if oom else "error"
    record["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    record["failed_in"] = stage


def measure_fit(method: str, preset: str, zoo: str | os.PathLike, steps: int, batch: int, cap: int) -> dict:
    """One Fig. 8 point, in this (fresh, child) process: `method`'s own fit on the study zoo `zoo` (`write_zoo`),
    `steps` steps per stage with `batch` checkpoints, under `cap` bytes (0: none). OOM is caught and recorded."""
    import timm  # noqa: F401  (every library first: the baseline memory holds them all)
    import torch

    import rpg.generator.model  # noqa: F401
    from rpg.methods import FitSettings, get_method

    zoo = Path(zoo)
    size = json.loads((zoo / SIZE_FILE).read_text())
    torch.manual_seed(0)
    base_rss = _status_kib("VmRSS") * 1024
    record = {"method": method, "preset": preset, "size": size["size"], "steps": steps, "batch": batch,
              "cap_bytes": cap, "params": size["params"]}
    m = get_method(method)
    settings = FitSettings(preset=preset, overrides={f"{stage}.batch_size": str(batch) for stage in m.stages},
                           device="cpu", quiet=True, max_steps=steps, memory_cap_bytes=cap or None)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="run-", dir=zoo.parent) as run:
        try:
            m.fit(zoo, run, settings)
            record["status"] = "ok"
        except (MemoryError, RuntimeError) as e:
            _failure(record, e, "fit")
    record["peak_bytes"] = _status_kib("VmHWM") * 1024 - base_rss
    record["seconds"] = round(time.time() - t0, 2)
    return record


def measure_generation(preset: str, size: str, steps: int, cap: int, chunk: int | None = None) -> dict:
    """One model of `size` from an UNTRAINED RPG generator of the preset, in this (child) process, partial mode,
    DDIM with `steps` steps; the time at the preset's own step count is the prototype pass (once) plus the
    denoising loop scaled to that many steps. Partial mode twice over: the recurrent pass runs
    diffusion.chunk_size tokens at a time carrying the Mamba state (RPG-Large's 10.5 GiB of fp32 weights plus its
    activations over ConvNeXt-L's ~12k tokens at once ran out of 20 GiB), and the denoiser `chunk` tokens at a
    time (default the same; a 256-token chunk of 16,384-wide tokens is 1.5 GiB per conv activation, which ran out
    too). Smaller segments in the recurrent pass would re-read the weights once per segment, so only the
    denoiser's chunk is a knob."""
    import timm  # noqa: F401
    import torch

    from rpg.generator.config import preset_config
    from rpg.generator.model import RPG
    from rpg.generator.sampling import sample_tokens
    from rpg.generator.tokenizer import ParamTokenizer
    from rpg.memory import address_space_cap

    torch.manual_seed(0)
    base_rss = _status_kib("VmRSS") * 1024
    record = {"method": "rpg-generate", "preset": preset, "size": size, "steps": steps, "batch": 1,
              "cap_bytes": cap}
    t0 = time.time()
    stage = "zoo"
    try:
        with address_space_cap(cap):
            sd = _state_dict(size)
            record["params"] = _generated_params(sd)
            stage = "data"
            cfg = preset_config(preset, {})
            chunk = chunk or cfg.diffusion.chunk_size
            tok = ParamTokenizer.fit([("0", sd)], cfg.tokenizer.token_size, cfg.tokenizer.strategy)
            model = RPG(cfg, tok.layer_ids, tok.token_ids, 1).eval()
            t = {}
            tokens = sample_tokens(model, 1, sampler="ddim", steps=steps, mode="partial", chunk_size=chunk,
                                   permutation=torch.zeros(1).long(), generator=torch.Generator().manual_seed(0),
                                   timings=t, prototype_chunk=cfg.diffusion.chunk_size)
            generated = tok.detokenize(tokens[0])
        projected = t["prototypes_s"] + t["denoising_s"] * cfg.diffusion.sampling_steps / t["steps"]
        record.update({
            "tokens": tok.num_tokens, "token_size": cfg.tokenizer.token_size, "sampling_steps": steps,
            "sampling_seconds": round(t["prototypes_s"] + t["denoising_s"], 1),
            "prototypes_seconds": round(t["prototypes_s"], 1), "denoising_seconds": round(t["denoising_s"], 1),
            "preset_steps": cfg.diffusion.sampling_steps, "projected_seconds": round(projected, 1),
            "chunk_tokens": chunk, "prototype_chunk_tokens": cfg.diffusion.chunk_size,
            "generated_params": sum(v.numel() for v in generated.values()), "trained": False, "status": "ok"})
    except (MemoryError, RuntimeError) as e:
        _failure(record, e, stage)
    record["peak_bytes"] = _status_kib("VmHWM") * 1024 - base_rss
    record["seconds"] = round(time.time() - t0, 2)
    return record


def child_main(argv: list[str]) -> int:
    """`python -m rpg.memory_study fit METHOD PRESET ZOO STEPS BATCH CAP | generate PRESET SIZE STEPS CAP CHUNK |
    zoo SIZE FOLDER`: one measurement in a fresh process, its record as the last line of stdout."""
    kind, *a = argv
    if kind == "fit":
        out = measure_fit(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]))
    elif kind == "generate":
        out = measure_generation(a[0], a[1], int(a[2]), int(a[3]), int(a[4]) or None)
    else:
        out = {"params": write_zoo(a[0], a[1])}
    print(json.dumps(out), flush=True)
    return 0


# ------------------------------------------------------------------------------------------------ parent side
def _in_child(args: list, timeout: int, threads: int | None) -> tuple:
    """Run one child: (its record or None, the finished process or None on timeout, seconds)."""
    # the child imports this checkout's `rpg`, also when it is not installed
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.time()
    try:
        p = subprocess.run([sys.executable, "-m", "rpg.memory_study", *map(str, args)], capture_output=True,
                           text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, None, time.time() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    return (json.loads(lines[-1]) if p.returncode == 0 and lines else None), p, time.time() - t0


def _child_record(base: dict, args: list, timeout: int, threads: int | None) -> dict:
    rec, p, seconds = _in_child(args, timeout, threads)
    if rec is not None:
        return rec
    if p is None:
        return {**base, "status": "timeout", "seconds": timeout}
    # killed or crashed outside Python's reach (e.g. a C library's failed allocation under the cap)
    tail = (p.stderr or "").strip().splitlines()[-1:] or [""]
    return {**base, "status": "oom" if p.returncode < 0 or "alloc" in tail[0].lower() else "error",
            "returncode": p.returncode, "error": tail[0][:200], "seconds": round(seconds, 2)}


def summarise(records: list[dict]) -> dict:
    """Largest fitting size per METHOD:PRESET, and each RPG preset's ratio to each baseline's largest size."""
    from rpg.memory import study_label

    largest: dict[str, int] = {}
    for r in records:
        if r["status"] == "ok" and r.get("params"):
            largest[study_label(r)] = max(largest.get(study_label(r), 0), r["params"])
    rpg = {k: v for k, v in largest.items() if k.split(":")[0] == "rpg"}
    return {"largest_fitting_params": largest,
            "rpg_ratio": {f"{r} / {m}": n_rpg / n for r, n_rpg in rpg.items()
                          for m, n in largest.items() if m not in rpg}}


def plot(records: list[dict], summary: dict, cap: int, path: str | os.PathLike) -> None:
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


def machine_memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30


def run_study(out: str | os.PathLike, sizes: list[str], methods: list[str], cap: int, steps: int = 2,
              batch: int = 1, timeout: int = 900, threads: int | None = None, rpg_generate: str | None = None,
              rpg_chunk: int | None = None, csv: str | os.PathLike | None = None,
              plot_path: str | os.PathLike | None = None, log=print) -> dict:
    """The study: every METHOD:PRESET of `methods` over `sizes` (ascending; past an OOM or timeout the larger sizes
    of that curve are recorded as skipped, not run), then the optional `rpg_generate` (SIZE:PRESET) generation;
    written to `out` (+ CSV and PNG of the curves when there are any). The study zoos and runs live in a scratch
    folder beside `out`, removed at the end. Returns the study."""
    from rpg.formats import write_memory_study
    from rpg.memory import project_peaks

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    with tempfile.TemporaryDirectory(prefix=f".{out.stem}-", dir=out.parent) as scratch:
        zoos: dict[str, Path | dict] = {}       # size -> its zoo folder, or the record of why it could not be built

        def zoo_of(size: str) -> Path | dict:
            if size not in zoos:
                folder = Path(scratch) / size
                base = {"size": size, "cap_bytes": cap}
                rec = _child_record(base, ["zoo", size, folder], timeout, threads)
                zoos[size] = folder if "params" in rec and "status" not in rec else rec
            return zoos[size]

        for pair in methods:
            method, _, preset = pair.partition(":")
            failed = False
            for size in sizes:
                base = {"method": method, "preset": preset, "size": size, "cap_bytes": cap}
                if failed:   # sizes grow: past a failure the next size fails too; recorded without running
                    records.append({**base, "status": "skipped"})
                    continue
                zoo = zoo_of(size)
                if isinstance(zoo, dict):
                    r = {**base, **{k: v for k, v in zoo.items() if k != "size"}, "failed_in": "zoo"}
                else:
                    r = _child_record(base, ["fit", method, preset, zoo, steps, batch, cap], timeout, threads)
                records.append(r)
                log(json.dumps(r))
                failed = r["status"] in ("oom", "timeout")
    generation = None
    if rpg_generate:
        size, _, preset = rpg_generate.partition(":")
        base = {"method": "rpg-generate", "preset": preset or "large", "size": size, "cap_bytes": cap}
        generation = _child_record(base, ["generate", preset or "large", size, steps, cap, rpg_chunk or 0],
                                   timeout, threads)
        log(json.dumps(generation))
    project_peaks(records)
    summary = summarise(records)
    meta = {"cap_bytes": cap, "steps": steps, "batch": batch, "device": "cpu",
            "machine_memory_gib": machine_memory_gib(), "cpus": os.cpu_count(),
            "measured": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    study = {**meta, **summary, "records": records, "rpg_generation": generation}
    write_memory_study(out, study)
    if records:
        import pandas as pd
        pd.DataFrame(records).to_csv(csv or out.with_suffix(".csv"), index=False)
        plot(records, summary, cap, plot_path or out.with_suffix(".png"))
    return study


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1:]))
