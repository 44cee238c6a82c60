"""Safe, atomic file I/O shared by every step.

- Weights are read with safetensors or `torch.load(weights_only=True)`: never arbitrary pickles.
- Every write goes to a temporary file in the same folder and is then renamed, so an
  interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

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
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the final file ordinary permissions
    try:
        yield Path(tmp)
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
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


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
            msg = str(e)
            m = re.search(r"(Unsupported global: [^\n]*?)(?:\s+was not|\n|$)", msg)
            why = m.group(1) if m else (msg.strip().splitlines() or [type(e).__name__])[0][:200]
            raise RPGInputError(f"{path}: not a plain-weights file (torch.load weights_only=True refused it: "
                                f"{why})") from None
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
