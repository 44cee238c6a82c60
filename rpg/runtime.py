"""Where and how a computation runs: CPU threads, the device, bf16 autocast.

The command-line options --threads, --device and --precision are turned into settings here, and the library
(collection, training, evaluation) calls the same functions, so a value means the same thing from the CLI, the
workflow and Python.
"""

from __future__ import annotations

import os
import time

from rpg.errors import RPGInputError


def _busy_cores(interval: float = 0.3) -> float | None:
    """Cores busy right now (other processes), from two /proc/stat samples; None where unavailable.

    Not the load average: it lags by a minute, so in a pipeline (Snakemake jobs back to back) it still
    counts the job that just ended and would leave the next one a single thread."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)          # idle + iowait
        return sum(fields[:8]), idle
    try:
        t0, i0 = sample()
        time.sleep(interval)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if t1 <= t0:
        return None
    return (os.cpu_count() or 1) * (1.0 - (i1 - i0) / (t1 - t0))


def idle_cores() -> int:
    """CPU threads worth using now: the machine's cores minus the busy ones (at least 1).

    On a dedicated machine this is every core. On a shared one, torch threads beyond the idle cores
    make OpenMP spin against other processes: on the 2-core development box at load ~3, evaluating
    10 mini checkpoints took 15-23 s with 2 threads and 4-11 s with 1. Busy cores are measured over
    0.3 s (/proc/stat); the 1-minute load average is the fallback where /proc is missing."""
    cores = os.cpu_count() or 1
    busy = _busy_cores()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):  # not available on every platform
            return cores
    return max(1, min(cores, cores - int(busy + 0.5)))


def set_threads(threads: int | None) -> int:
    """Apply --threads (None = `idle_cores()`); returns the number used. This overrides OMP_NUM_THREADS,
    which Snakemake sets to the rule's `threads` (1 here): with `--cores 1` one job runs at a time and
    may use every idle core."""
    import torch
    n = idle_cores() if threads is None else threads
    if n < 1:
        raise RPGInputError("--threads: must be >= 1")
    torch.set_num_threads(n)
    return n


# ---------------------------------------------------------------------------------------------- devices
def resolve_device(name: str) -> str:
    """--device auto | cpu | cuda | cuda:N -> a device string, checked here rather than at first use."""
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise RPGInputError(f"--device {name}: not a device (use cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RPGInputError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    return str(dev)


def native_bf16(device) -> bool:
    """Whether bf16 autocast runs natively here: CUDA, or a CPU with AMX / AVX512-BF16 (2-3x faster than
    fp32 on this project's Xeons). Elsewhere bf16 is emulated and slower, so `auto` precision stays fp32."""
    import torch
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_bf16_supported()
    if kind == "cpu":
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")   # private but stable since torch 2.1
        return any(bool(getattr(torch.cpu, f, lambda: False)()) for f in probes)
    return False


def use_bf16(precision: str, device) -> bool:
    """precision auto | bf16 | fp32 -> autocast on or off for this device."""
    return precision == "bf16" or (precision == "auto" and native_bf16(device))
