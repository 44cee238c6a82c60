"""Wall time and peak memory of a block of work, and the machine it ran on: the generation cost that
`rpg generate` records in its manifest (`cost`), read by the Tab. 7 / Tab. 13 builders.

Peak memory, by device:
measured by rpg.memory.PeakMemory (the one peak-memory measure, shared with training's cost):
- CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, recorded as the absolute peak
  (what the official efficiency.py reports: generator weights included).
- CPU: the peak RSS delta over the block (VmHWM reset at the start); the `memory` string says which.
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

from rpg.memory import CUDA_PEAK, RSS_DELTA, RSS_DELTA_LIFETIME, PeakMemory  # noqa: F401 - re-exported


@dataclass
class Usage:
    """What `measure` saw: seconds, peak bytes and how the peak was measured (rpg.memory)."""

    wall_s: float = 0.0
    peak_bytes: int = 0
    memory: str = ""


@contextmanager
def measure(device: str | torch.device = "cpu") -> Iterator[Usage]:
    """Time the block and measure its peak memory on `device`; the Usage is filled when the block ends."""
    dev = torch.device(device)
    usage = Usage()
    mem = PeakMemory(str(dev)).start()      # the one peak-memory measure (rpg/memory.py)
    usage.memory = mem.measure
    t0 = time.perf_counter()
    try:
        yield usage
    finally:
        result = mem.stop()
        # CUDA: the absolute peak (weights included, as the official efficiency.py reports); CPU: the RSS delta
        usage.peak_bytes = result["peak_bytes"] if dev.type == "cuda" else result["delta_bytes"]
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
