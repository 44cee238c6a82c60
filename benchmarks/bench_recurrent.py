"""CPU benchmark: the pure-PyTorch Mamba2 stack (rpg/generator/mamba2.py) against nn.LSTM.

RPG-Tiny's recurrent backbone is 2 stacked Mamba2 layers at d_model 256 (d_state 32, d_conv 4,
expand 2, headdim 64); the LSTM ablation is nn.LSTM(256, 256, num_layers=2). Both run on the same
(batch, length, 256) input; the loss is y.pow(2).mean().

Every (model, batch size, chunk size) is measured in its own fresh process, so that the peak RSS
(resource.getrusage ru_maxrss) belongs to that configuration alone. Times are the median of
--reps repetitions after one warm-up. Other processes on the machine inflate the times, so the
load average before and after is recorded too.

    python benchmarks/bench_recurrent.py                      # defaults of the RPG-Tiny setting
    python benchmarks/bench_recurrent.py --chunk-sizes 32,64,128 --reps 5

Writes a table to stdout and everything to benchmarks/out/bench_recurrent.json (see --out).
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO))

from rpg.cli.common import run  # noqa: E402
from rpg.errors import RPGInputError  # noqa: E402
from rpg.io import write_json  # noqa: E402


def _measure(cfg: dict) -> dict:
    """Runs in a child process: build one model, time fwd and fwd+bwd, report peak RSS."""
    import torch

    from rpg.generator.mamba2 import Mamba2

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    d = cfg["d_model"]
    if cfg["model"] == "lstm":
        lstm = torch.nn.LSTM(d, d, num_layers=2, batch_first=True)

        def net(u):
            return lstm(u)[0]

        params = sum(p.numel() for p in lstm.parameters())
    else:
        stack = torch.nn.Sequential(*[
            Mamba2(d, d_state=cfg["d_state"], d_conv=cfg["d_conv"], expand=cfg["expand"],
                   headdim=cfg["headdim"], chunk_size=cfg["chunk_size"]) for _ in range(2)])
        net = stack
        params = sum(p.numel() for p in stack.parameters())
    u = torch.randn(cfg["batch"], cfg["seq_len"], d)

    def fwd():
        with torch.no_grad():
            net(u)

    def fwd_bwd():
        net(u).pow(2).mean().backward()

    out = {"params": params}
    for name, fn in (("fwd_ms", fwd), ("fwd_bwd_ms", fwd_bwd)):
        fn()  # warm-up (allocator, oneDNN primitive cache)
        times = []
        for _ in range(cfg["reps"]):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        out[name] = round(statistics.median(times), 1)
        out[name.replace("_ms", "_all_ms")] = [round(t, 1) for t in times]
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux.
    out["peak_rss_mb"] = round(rss_peak / 1024, 1)
    out["peak_rss_delta_mb"] = round((rss_peak - rss_before) / 1024, 1)
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise RPGInputError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise RPGInputError(f"{option}: expected positive integers, got {text!r}")
    return values


def main_fn(args: argparse.Namespace) -> None:
    from rpg.generator.mamba2 import DEFAULT_CPU_CHUNK_SIZE

    batches = _int_list(args.batch_sizes, "--batch-sizes")
    chunks = _int_list(args.chunk_sizes, "--chunk-sizes") if args.chunk_sizes else [DEFAULT_CPU_CHUNK_SIZE]
    if args.reps < 3:
        raise RPGInputError(f"--reps: need at least 3 repetitions for a median, got {args.reps}")
    base = dict(d_model=args.d_model, d_state=args.d_state, d_conv=args.d_conv, expand=args.expand,
                headdim=args.headdim, seq_len=args.seq_len, reps=args.reps, threads=args.threads)
    configs = []
    for b in batches:
        configs.append({**base, "model": "lstm", "batch": b, "chunk_size": None})
        for q in chunks:
            configs.append({**base, "model": "mamba2", "batch": b, "chunk_size": q})

    load_before = os.getloadavg()
    ctx = mp.get_context("spawn")  # a fresh interpreter per configuration: clean peak RSS
    rows = []
    for cfg in configs:
        with ctx.Pool(1) as pool:
            res = pool.apply(_measure, (cfg,))
        row = {**cfg, **res}
        rows.append(row)
        label = "nn.LSTM 2x" if cfg["model"] == "lstm" else f"Mamba2 2x (chunk {cfg['chunk_size']})"
        print(f"{label:24s} B={cfg['batch']:<3d} fwd {row['fwd_ms']:8.1f} ms   "
              f"fwd+bwd {row['fwd_bwd_ms']:8.1f} ms   peak RSS {row['peak_rss_mb']:7.1f} MB   "
              f"params {row['params']:,}", flush=True)
    load_after = os.getloadavg()

    # Ratio Mamba2 / LSTM per batch size (fwd+bwd), with the default chunk size when present.
    ratios = {}
    for b in batches:
        lstm = next(r for r in rows if r["model"] == "lstm" and r["batch"] == b)
        for r in rows:
            if r["model"] == "mamba2" and r["batch"] == b:
                ratios[f"B{b}_chunk{r['chunk_size']}"] = round(r["fwd_bwd_ms"] / lstm["fwd_bwd_ms"], 2)
    print("fwd+bwd time ratio Mamba2 / LSTM:", ratios)
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"(on {os.cpu_count()} CPUs; above ~0 means other processes shared the cores)")

    import torch

    write_json(args.out, {
        "benchmark": "bench_recurrent",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpu": _cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__, "threads": args.threads,
                    "loadavg_before": [round(v, 2) for v in load_before],
                    "loadavg_after": [round(v, 2) for v in load_after]},
        "settings": {**base, "batch_sizes": batches, "chunk_sizes": chunks, "loss": "y.pow(2).mean()",
                     "statistic": "median after 1 warm-up"},
        "results": rows,
        "fwd_bwd_ratio_mamba2_over_lstm": ratios,
    })
    print(f"wrote {args.out}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Time fwd and fwd+bwd of 2 stacked pure-PyTorch Mamba2 layers (rpg/generator/mamba2.py) "
                    "against a 2-layer nn.LSTM on CPU; each configuration runs in a fresh process.")
    p.add_argument("--batch-sizes", default="8,1", help="comma-separated batch sizes (default: 8,1)")
    p.add_argument("--seq-len", type=int, default=512, help="tokens per sequence (default: 512)")
    p.add_argument("--d-model", type=int, default=256, help="model width of both models (default: 256)")
    p.add_argument("--d-state", type=int, default=32, help="Mamba2 d_state (default: 32, RPG-Tiny)")
    p.add_argument("--d-conv", type=int, default=4, help="Mamba2 d_conv (default: 4)")
    p.add_argument("--expand", type=int, default=2, help="Mamba2 expand (default: 2)")
    p.add_argument("--headdim", type=int, default=64, help="Mamba2 headdim (default: 64)")
    p.add_argument("--chunk-sizes", default="",
                   help="comma-separated Mamba2 chunk sizes to compare (default: the module's CPU default)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions after 1 warm-up, >= 3 (default: 5)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in each run (default: 2)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "bench_recurrent.json"),
                   help="JSON file to write (default: benchmarks/out/bench_recurrent.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    return run(main_fn, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
