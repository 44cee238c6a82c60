"""Small helpers shared by the command-line entry points: arguments, errors, threads, devices and precision."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from rpg.errors import RPGInputError


def run(main_fn: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser,
        argv: list[str] | None) -> int:
    """Parse `argv`, run `main_fn`; bad input becomes one `error:` line and exit status 2 (argparse's own
    errors too: one line, without the usage block, so a log shows the fault and not a wall of options)."""
    def one_line_error(message: str):
        print(f"error: {parser.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)
    parser.error = one_line_error
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        main_fn(args)
    except RPGInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """argparse `type=` for an integer in lo..hi: argparse turns the ArgumentTypeError into one usage line
    naming the option, at parse time (before a run folder is read or a model sampled)."""
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer") from None
        if value < lo or (hi is not None and value > hi):
            bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
            raise argparse.ArgumentTypeError(f"{text}: must be {bound}")
        return value
    parse.__name__ = "integer"   # argparse names the type in its messages
    return parse


def seed_arg(text: str) -> int:
    """--seed: 0 <= seed < 2**63 (torch generators take 64-bit seeds)."""
    from rpg.generator.config import MAX_SEED
    return int_in(0, MAX_SEED - 1)(text)


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """`--set a.b=value` pairs -> {"a.b": "value"} (values are parsed later, against the config types)."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise RPGInputError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


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


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=int_in(1), default=None,
        help="torch CPU threads (default: the machine's idle cores, measured over 0.3 s, at least 1: every "
        "core on an otherwise idle machine, fewer on a busy one so OpenMP does not oversubscribe it)")


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
