"""Safe, atomic file I/O shared by every step.

- Weights are read with safetensors or `torch.load(weights_only=True)`: never arbitrary pickles.
- Every write goes to a temporary file in the same folder and is then renamed, so an
  interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import struct
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from rpg.errors import RPGInputError

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")
KEY_ORDER = "rpg_key_order"  # safetensors metadata entry holding the original state_dict key order


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        # mkstemp creates 0600, and writers that replace the file (safetensors' save_file) create it anew:
        # give the finished file ordinary permissions only now, just before the rename
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RPGInputError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise RPGInputError(f"{path}: not valid JSON ({e})") from None


def save_state_dict(path: str | os.PathLike, state_dict: dict[str, torch.Tensor],
                    metadata: dict[str, str] | None = None) -> None:
    """Save a state_dict as .safetensors (contiguous CPU copies; shared storage is untied)."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    # safetensors stores keys sorted by name; RPG's token order is the state_dict (module) order, so keep it.
    meta = {KEY_ORDER: json.dumps(list(tensors))}
    meta.update(metadata or {})
    data = safetensors_bytes(tensors, meta)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """The .safetensors file of `tensors` with `metadata`, the same bytes in every process.

    safetensors writes `__metadata__` from a Rust HashMap, whose order is random per process, so two saves of the
    same weights differ in their header and a checkpoint's sha256 is not reproducible. The tensors' own layout
    is safetensors' (its header entries and data, saved without metadata); the metadata is inserted sorted by key.
    Layout: u64 little-endian header length, the JSON header padded with spaces to 8 bytes, then the data.
    """
    raw = save(tensors)
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])                       # dict: keeps safetensors' entry order
    header = {"__metadata__": dict(sorted(metadata.items())), **header} if metadata else header
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + n:]


def load_state_dict(path: str | os.PathLike, check_finite: bool = True) -> dict[str, torch.Tensor]:
    """Load plain weights from .safetensors / .pt / .pth. Anything that is not a flat
    name -> tensor mapping (a pickled object, a training checkpoint, a corrupt file) is an error
    that names the file (and the key, where one is at fault)."""
    path = Path(path)
    if not path.is_file():
        raise RPGInputError(f"{path}: file not found")
    if path.suffix == ".safetensors":
        try:
            sd = load_file(str(path))
            with safe_open(str(path), "pt") as f:
                order = json.loads((f.metadata() or {}).get(KEY_ORDER, "[]"))
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise RPGInputError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
        if sorted(order) == sorted(sd):
            sd = {k: sd[k] for k in order}
    elif path.suffix in (".pt", ".pth"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # protocol notes from the safe unpickler are noise here
                sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError for non-weight pickles, RuntimeError for corrupt zips
            raise RPGInputError(f"{path}: not a plain-weights file ({refusal_reason(e)})") from None
    else:
        raise RPGInputError(f"{path}: unsupported weight file type (use {', '.join(WEIGHT_SUFFIXES)})")
    if not isinstance(sd, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()):
        raise RPGInputError(f"{path}: expected a flat state_dict (str -> tensor), got {type(sd).__name__}")
    if not sd:
        raise RPGInputError(f"{path}: the state_dict is empty")
    if check_finite:
        for k, v in sd.items():
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise RPGInputError(f"{path}: key {k!r} contains NaN or Inf")
    return sd


def refusal_reason(e: BaseException) -> str:
    """Why `torch.load(weights_only=True)` refused a file, in our own words: torch's message is many lines
    long, and cutting it short used to drop the one sentence that matters (the code-execution risk)."""
    if isinstance(e, pickle.UnpicklingError):   # the safe unpickler met something beyond tensors and containers
        m = re.search(r"Unsupported (global): (?:GLOBAL )?([^\s]+)|Unsupported (operand) (\d+)", str(e))
        what = (f"unsupported {m.group(1) or m.group(3)} {(m.group(2) or m.group(4)).rstrip('.,')}" if m
                else "not plain tensors")
        return (f"the pickle holds more than plain tensors ({what}); unpickling it unrestricted could run "
                "arbitrary code, so it is refused: save a plain state_dict or .safetensors")
    return f"torch.load weights_only=True cannot read it ({type(e).__name__}): corrupt or not a torch file"


def load_torch_file(path: str | os.PathLike) -> Any:
    """`torch.load(weights_only=True)` on the CPU; any failure is one line naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol notes from the safe unpickler are noise here
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for non-weight pickles, RuntimeError for corrupt zips
        raise RPGInputError(f"{path}: not readable ({refusal_reason(e)})") from None


def check_output_dir(path: str | os.PathLike, flag: str = "--out", swapped: bool = False) -> Path:
    """Fail early (before any long computation) when `path` cannot become a folder we write into.
    `swapped`: the folder is written elsewhere and renamed into place, so its parent must be writable too."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RPGInputError(f"{flag} {path}: exists and is not a folder")
    probe = path if path.is_dir() else next((p for p in path.parents if p.exists()), Path("."))
    if not probe.is_dir():
        raise RPGInputError(f"{flag} {path}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RPGInputError(f"{flag} {path}: {probe} is not writable")
    if swapped and path.is_dir() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise RPGInputError(f"{flag} {path}: {path.parent} is not writable (outputs are swapped in there)")
    return path


def list_weight_files(folder: str | os.PathLike) -> list[Path]:
    """Weight files of a checkpoint folder in sorted name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RPGInputError(f"{folder}: checkpoint folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise RPGInputError(f"{folder}: no checkpoint files ({', '.join(WEIGHT_SUFFIXES)}) in this folder")
    return files
