"""Peak memory of a stretch of work (training time/memory columns of paper Tab. 5, Fig. 4 and Fig. 7).

    with PeakMemory(device) as mem:           # or mem = PeakMemory(device).start() ... mem.stop()
        ...                                   # build the model, run training steps
    mem.result()   # {"measure": ..., "baseline_bytes": ..., "peak_bytes": ..., "delta_bytes": ...}

What is measured depends on where the tensors live:
- CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats` (bytes held by tensors, what the
  paper's "GPU memory" comes closest to; the caching allocator's reserve is not counted). delta = peak - the
  allocated bytes at entry.
- CPU on Linux: the process's resident set. Entering resets the kernel's high-water mark (VmHWM, by writing 5
  to /proc/self/clear_refs), so the peak belongs to this stretch alone; delta = VmHWM at exit - VmRSS at entry,
  i.e. the resident memory the work added on top of what the process already held (model, optimizer state,
  activations, allocator slack). Memory freed before entry but kept by the allocator can be reused without
  raising RSS, so measure in a fresh process when a baseline must be clean (the Fig. 7 benchmark does). The
  first forward/backward of a process also maps torch's kernels (code pages, oneDNN JIT buffers), a roughly
  constant 100-200 MiB on a CPU that a training's peak includes; the Fig. 7 benchmark runs once before measuring.
- CPU elsewhere: `ru_maxrss` (the process's lifetime peak, no reset) minus the RSS high-water mark at entry;
  marked as such in `measure`.
"""

from __future__ import annotations

import contextlib
import re
import resource
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rpg.errors import RPGInputError

# how the peak was measured (PeakMemory.measure), by device / platform
CUDA_PEAK = "cuda max_memory_allocated - memory_allocated at start"
RSS_DELTA = "peak RSS delta (Linux VmHWM after reset - VmRSS at start)"
RSS_DELTA_LIFETIME = "peak RSS delta (ru_maxrss lifetime peak - ru_maxrss at start)"

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(key: str) -> int | None:
    try:
        m = re.search(rf"^{key}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024     # bytes on macOS, KiB on Linux


class PeakMemory:
    """Context manager measuring the peak memory of its body (see the module docstring for what is measured)."""

    def __init__(self, device: str = "cpu"):
        self.device = str(device)
        self.measure: str | None = None
        self.baseline = self.peak = 0

    def __enter__(self) -> PeakMemory:
        return self.start()

    def start(self) -> PeakMemory:
        """Reset the peak and record the baseline (what `with` does on entry)."""
        if self.device.startswith("cuda"):
            import torch
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
            self.measure = CUDA_PEAK
        elif _status_kib("VmRSS") is not None and _reset_hwm():
            self.baseline = _status_kib("VmRSS") * 1024
            self.measure = RSS_DELTA
        else:
            self.baseline = _maxrss_bytes()
            self.measure = RSS_DELTA_LIFETIME
        return self

    def sample(self) -> int:
        """The peak so far, in bytes (callable inside the body)."""
        if self.device.startswith("cuda"):
            import torch
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.measure == RSS_DELTA:
            return (_status_kib("VmHWM") or 0) * 1024
        return _maxrss_bytes()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> dict[str, Any]:
        """Record the peak (what `with` does on exit) and return `result()`."""
        self.peak = self.sample()
        return self.result()

    def result(self) -> dict[str, Any]:
        return {"measure": self.measure, "baseline_bytes": int(self.baseline), "peak_bytes": int(self.peak),
                "delta_bytes": int(max(0, self.peak - self.baseline))}


@contextlib.contextmanager
def address_space_cap(cap_bytes: int | None) -> Iterator[None]:
    """Inside the block this process's address space may grow by at most `cap_bytes` past what it maps on entry
    (libraries, thread stacks): the soft RLIMIT_AS is set to VmSize + cap, so an allocation past it fails in this
    process (MemoryError, or torch's RuntimeError "can't allocate memory") instead of taking the machine down.
    The previous limit comes back on exit. None or 0: no cap. Linux only (VmSize from /proc/self/status), and for
    CPU work: a CUDA context reserves far more address space than it uses."""
    if not cap_bytes:
        yield
        return
    mapped = _status_kib("VmSize")
    if mapped is None:
        raise RPGInputError(f"memory cap {cap_bytes} bytes: needs /proc/self/status (Linux) to read the mapped size")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped * 1024 + int(cap_bytes)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ------------------------------------------------------------------------------ Fig. 8 study: projected peaks
def study_label(record: dict[str, Any]) -> str:
    """'pdiff:original': one curve of the memory study per method and preset."""
    return f"{record['method']}:{record['preset']}" if record.get("preset") else record["method"]


def project_peaks(records: list[dict[str, Any]]) -> None:
    """In place: a size's parameter count on every record of that size (runs skipped after an OOM have none),
    and for each curve with two or more fitting sizes, the exponent of a power law peak ~ a * params^b fitted in
    log-log (`growth_exponent`) and the peak it projects for each run that did not fit (`projected_peak_bytes`).
    A run that did not fit needed more than its cap (or a smaller size already did, and peaks grow with size), so
    a projection below the cap is raised to the cap and marked `projected_lower_bound`: a flat curve (RPG until
    its diffusion batch is full) would otherwise project an OOM to fit."""
    import numpy as np

    params = {r["size"]: r["params"] for r in records if r.get("params")}
    for r in records:
        if not r.get("params") and r["size"] in params:
            r["params"] = params[r["size"]]
    for label in dict.fromkeys(study_label(r) for r in records):
        ok = [r for r in records if study_label(r) == label and r["status"] == "ok" and r.get("params")
              and r.get("peak_bytes", 0) > 0]
        if len(ok) < 2:
            continue
        b, log_a = np.polyfit(np.log([r["params"] for r in ok]), np.log([r["peak_bytes"] for r in ok]), 1)
        for r in records:
            if study_label(r) == label:
                r["growth_exponent"] = round(float(b), 3)
                if r["status"] != "ok" and r.get("params"):
                    law = float(np.exp(log_a + b * np.log(r["params"])))
                    bound = r["status"] in ("oom", "skipped") and law < r.get("cap_bytes", 0)
                    r["projected_peak_bytes"] = float(r["cap_bytes"]) if bound else law
                    r["projected_lower_bound"] = bound
