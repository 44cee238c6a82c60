"""A cache of the originals' scores, shared by every `rpg evaluate` of one zoo.

Every generated set of a zoo is compared with the same originals. The sampling tables (Tab. 7, 13, 16) evaluate
up to ten sets per zoo, and scoring 50 originals was most of each job (30-60 s of a 40-70 s job on 2 CPU cores).
The outcomes (metric, per-sample mistakes, breakdown, extra metrics) are kept in one safetensors file per key:

  key = sha256(cache format, torch version, the source of the `rpg` package, the domain's fingerprint (its
        architecture, test data and evaluation settings), and per original: resolved path, sha256 of its bytes,
        task)

so any change to a checkpoint (its content, not its size or mtime, which a copy can keep), the test data, the
scoring code or its settings is a miss, never a stale hit. Every file records its key and is read only under it:
a file renamed, copied or edited onto another key is a miss, scored again and overwritten.
A domain whose `fingerprint()` is None (segmentation, language models: their data lives outside the process) is not
cached. Location: $RPG_CACHE_DIR, else $XDG_CACHE_HOME/rpg/originals, else ~/.cache/rpg/originals; `RPG_CACHE_DIR=`
(empty) turns it off. Files are written atomically, so parallel jobs that miss together both write the same
content.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import torch

from rpg import formats
from rpg.domains import Domain, Outcome

CACHE_FORMAT = "rpg-originals-cache/2"


def cache_dir() -> Path | None:
    """Where the cache lives; None when RPG_CACHE_DIR is set to the empty string."""
    if "RPG_CACHE_DIR" in os.environ:
        value = os.environ["RPG_CACHE_DIR"]
        return Path(value) if value else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rpg" / "originals"


@functools.cache
def code_digest() -> str:
    """sha256 over every .py file of the installed `rpg` package (names and contents)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def cache_key(domain: Domain, refs: list[formats.ModelRef]) -> str | None:
    """The key of these originals scored by `domain`; None when the domain cannot be fingerprinted."""
    fingerprint = domain.fingerprint()
    if fingerprint is None:
        return None
    h = hashlib.sha256(json.dumps({"format": CACHE_FORMAT, "torch": torch.__version__, "code": code_digest(),
                                   "domain": type(domain).__qualname__, "data": fingerprint}).encode())
    for r in refs:
        h.update(f"\0{r.path.resolve()}\0{file_digest(r.path)}\0{r.task}".encode())
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (a zoo's checkpoints are read once per `rpg evaluate`)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_outcomes(path: str | os.PathLike, outcomes: list[Outcome], key: str) -> None:
    """The one writer of the cache format: metrics (O,) float64, mistakes (O, N) bool, the rest (and the key the
    outcomes belong to) as JSON."""
    from rpg.io import atomic_path, safetensors_bytes
    tensors = {"metric": torch.tensor([o.metric for o in outcomes], dtype=torch.float64)}
    if outcomes and all(o.mistakes is not None for o in outcomes):
        tensors["mistakes"] = torch.stack([o.mistakes.bool().cpu() for o in outcomes])
    meta = {"format": CACHE_FORMAT, "key": key,
            "extra": json.dumps([o.extra for o in outcomes]),
            "breakdown": json.dumps([o.breakdown for o in outcomes])}
    data = safetensors_bytes(tensors, meta)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_outcomes(path: str | os.PathLike, n: int, key: str) -> list[Outcome] | None:
    """The outcomes of a cache file, or None (a miss) when it is absent, unreadable, recorded under another key
    or not `n` models long."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
                return None
            metric = f.get_tensor("metric").tolist()
            mistakes = f.get_tensor("mistakes") if "mistakes" in f.keys() else None
        extra, breakdown = json.loads(meta["extra"]), json.loads(meta["breakdown"])
    except Exception:  # a missing, truncated or foreign file is a miss: the originals are scored again
        return None
    if not (len(metric) == len(extra) == len(breakdown) == n):
        return None
    return [Outcome(metric=m, mistakes=None if mistakes is None else mistakes[i], extra=e, breakdown=b)
            for i, (m, e, b) in enumerate(zip(metric, extra, breakdown))]


def cached_scores(domain: Domain, refs: list[formats.ModelRef], score_all) -> list[Outcome]:
    """`score_all(refs)`, read from the cache when these originals were scored the same way before."""
    where = cache_dir()
    key = cache_key(domain, refs) if where is not None and refs else None
    if key is None:
        return score_all(refs)
    path = where / f"{key}.safetensors"
    hit = read_outcomes(path, len(refs), key)
    if hit is not None:
        return hit
    outcomes = score_all(refs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_outcomes(path, outcomes, key)
    except OSError:   # a read-only or full cache location only costs the next job the same work
        pass
    return outcomes
