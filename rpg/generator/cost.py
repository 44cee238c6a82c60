"""Training memory vs token size (paper App. B.2, Fig. 7): a sweep of short trainings, one fresh process each.

Every point is `rpg.generator.training.train` itself, run for a few steps on the same zoo with the same batch
and diffusion batch; only the token size d changes, and with it the recurrent width (`recurrent.d_model = [d, d]`,
as in the official token-size ablation, where d = d_model), so "the scale of the recurrent model grows" as the
paper says. Training records its own peak memory in meta.json (`training.memory`, rpg.memory.PeakMemory: from
building the model through the last step, the token array already loaded), which is what is reported. Each
point runs in its own spawned process, so memory the allocator kept from an earlier point never hides growth, and
trains twice there: once unmeasured (torch loads its kernels), then measured.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from rpg import io
from rpg.errors import RPGInputError

FORMAT = "rpg-memory-sweep/1"
MIB = 2 ** 20


def _point(zoo_dir: str, preset: str, overrides: dict[str, str], d: int, steps: int, device: str,
           threads: int | None) -> dict[str, Any]:
    """One point, in a child process: train `steps` steps at token size d into a temporary run folder."""
    import torch

    from rpg.generator.config import preset_config

    if threads:
        torch.set_num_threads(threads)
    cfg = preset_config(preset, {**overrides, "tokenizer.token_size": str(d), "recurrent.d_model": f"[{d},{d}]",
                                 "train.steps": str(steps), "train.save_every": str(steps),
                                 "train.log_every": str(steps)})
    try:
        return _train_point(cfg, zoo_dir, d, device)
    except torch.OutOfMemoryError:   # a GPU too small for this token size is a result too (paper Tab. 8: OOM)
        return {"token_size": d, "d_model": d, "oom": True}


def _train_point(cfg, zoo_dir: str, d: int, device: str) -> dict[str, Any]:
    from rpg.generator.training import train

    with tempfile.TemporaryDirectory(prefix="rpg-memory-") as warm, \
            tempfile.TemporaryDirectory(prefix="rpg-memory-") as run:
        # a first, unmeasured run loads torch's kernels for these shapes (on a CPU that alone grows the RSS by
        # a ~constant 100-200 MiB, which would flatten the curve); its tensors are freed before the second
        train(cfg.override({"train.steps": 1}), zoo_dir, warm, device=device, quiet=True)
        train(cfg, zoo_dir, run, device=device, quiet=True)
        meta = io.read_json(Path(run) / "meta.json")
        gen = io.load_state_dict(Path(run) / "generator.safetensors", check_finite=False)
    t = meta["training"]
    return {"token_size": d, "d_model": d, "num_tokens": meta["num_tokens"], "num_params": meta["num_params"],
            "generator_params": sum(v.numel() for v in gen.values()),
            "recurrent_params": sum(v.numel() for k, v in gen.items() if k.startswith("recurrent.")),
            "peak_delta_bytes": t["memory"]["delta_bytes"],
            "peak_delta_mib": round(t["memory"]["delta_bytes"] / MIB, 1),
            "state_mib": round(t["state_bytes"] / MIB, 2),
            "measure": t["memory"]["measure"], "s_per_step": t["s_per_step"], "threads": t["threads"]}


def token_size_sweep(zoo_dir: str | os.PathLike, token_sizes: list[int], preset: str = "mini",
                     overrides: dict[str, str] | None = None, steps: int = 2, device: str = "cpu",
                     threads: int | None = None) -> dict[str, Any]:
    """Peak training memory at each token size (each point in a fresh spawned process); see the module doc."""
    if not token_sizes:
        raise RPGInputError("--token-sizes: give at least one token size")
    if steps < 1:
        raise RPGInputError("--steps: must be >= 1")
    from rpg.generator.config import preset_config
    overrides = dict(overrides or {})
    cfg = preset_config(preset, overrides)          # a bad preset or --set fails before any process starts
    points = []
    ctx = multiprocessing.get_context("spawn")      # a fresh interpreter: no allocator state from other points
    # glibc: serve every allocation above 128 KiB by mmap and give it back on free, so freed tensors (the warm-up
    # run's) do not stay resident and get reused unseen, and the RSS tracks the live tensors (read at start-up
    # of the spawned interpreter)
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(128 * 1024))
    for d in sorted(set(token_sizes)):
        preset_config(preset, {**overrides, "tokenizer.token_size": str(d), "recurrent.d_model": f"[{d},{d}]"})
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
            points.append(pool.submit(_point, str(zoo_dir), preset, overrides, d, steps, device, threads).result())
    return {"format": FORMAT, "zoo": str(zoo_dir), "preset": preset, "overrides": overrides,
            "batch_size": cfg.train.batch_size, "diffusion_batch": cfg.diffusion.diffusion_batch,
            "recurrent": cfg.recurrent.kind, "steps": steps, "device": device,
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                        "system": platform.platform()},
            "measure": next((p["measure"] for p in points if "measure" in p), None), "points": points}


def plot_sweep(result: dict[str, Any]):
    """Peak memory (and the recurrent model's parameters) vs token size, log2 x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [p for p in result["points"] if not p.get("oom")]
    d = [p["token_size"] for p in pts]
    fig, ax = plt.subplots(figsize=(6, 4.4))
    ax.plot(d, [p["peak_delta_mib"] for p in pts], marker="o", color="tab:red", label="peak training memory")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("token size d (recurrent width = d)")
    ax.set_ylabel("peak memory delta (MiB)")
    bx = ax.twinx()
    bx.plot(d, [p["recurrent_params"] / 1e6 for p in pts], marker="s", ls="--", color="grey",
            label="recurrent model (M params)")
    bx.set_ylabel("recurrent model parameters (M)")
    for p in result["points"]:
        if p.get("oom"):
            ax.axvline(p["token_size"], color="tab:red", ls=":", lw=1)
            ax.annotate("out of memory", (p["token_size"], 0.5), xycoords=("data", "axes fraction"), rotation=90,
                        fontsize=8, color="tab:red")
    lines = ax.get_legend_handles_labels()[0] + bx.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax.set_title(f"Fig. 7: training memory vs token size ({result['device']}, batch {result['batch_size']}, "
                 f"diffusion batch {result['diffusion_batch']})\n{result['measure']}", fontsize=9)
    fig.tight_layout()
    return fig


def write_sweep(result: dict[str, Any], out_json: str | os.PathLike, out_png: str | os.PathLike) -> None:
    import matplotlib.pyplot as plt

    fig = plot_sweep(result)
    try:
        with io.atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
    io.write_json(out_json, result)
