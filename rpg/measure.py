"""Wall time and peak memory of a block of work, and the machine it ran on: the generation cost that
`rpg generate` records in its manifest (`cost`), read by the Tab. 7 / Tab. 13 builders.

Peak memory, by device:
- CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats` (what the official
  efficiency.py reports): the absolute peak of tensors allocated on the device, generator weights included.
- CPU (Linux): the process's peak resident set (VmHWM) over the block minus its resident set at the start.
  The kernel's high-water mark is reset at the start by writing 5 to /proc/self/clear_refs, so an earlier
  peak (loading, a previous block) never hides this one. Elsewhere the lifetime `ru_maxrss` minus the start
  RSS is used, which under-counts when an earlier peak was higher; the `memory` string says which.
"""

from __future__ import annotations

import os
import platform
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

CUDA_PEAK = "cuda max_memory_allocated (absolute, weights included)"
RSS_DELTA = "cpu peak RSS delta (VmHWM reset via /proc/self/clear_refs)"
RSS_DELTA_LOWER_BOUND = "cpu peak RSS delta (lifetime ru_maxrss; a lower bound)"


@dataclass
class Usage:
    """What `measure` saw: seconds, peak bytes and how the peak was measured."""

    wall_s: float = 0.0
    peak_bytes: int = 0
    memory: str = ""


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_rss_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def _rss_bytes() -> int:
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024     # no /proc: best available


def _peak_rss_bytes() -> int:
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if platform.system() == "Darwin" else peak * 1024         # bytes on macOS, KiB on Linux


@contextmanager
def measure(device: str | torch.device = "cpu") -> Iterator[Usage]:
    """Time the block and measure its peak memory on `device`; the Usage is filled when the block ends."""
    dev = torch.device(device)
    usage = Usage()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        usage.memory = CUDA_PEAK
    else:
        usage.memory = RSS_DELTA if _reset_rss_peak() else RSS_DELTA_LOWER_BOUND
        start_rss = _rss_bytes()
    t0 = time.perf_counter()
    try:
        yield usage
    finally:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            usage.peak_bytes = int(torch.cuda.max_memory_allocated(dev))
        else:
            usage.peak_bytes = max(0, _peak_rss_bytes() - start_rss)
        usage.wall_s = time.perf_counter() - t0


def machine(device: str | torch.device = "cpu") -> str:
    """The machine a measurement ran on, in words: the GPU's name, or the CPU model and its core count."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.MULTILINE)
        name = m.group(1).strip() if m else name
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
