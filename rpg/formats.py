"""The project's on-disk formats: one reader and one writer each.

| format | what | writer | reader |
|---|---|---|---|
| `rpg-zoo/1` | ZOO/manifest.json of a checkpoint zoo | `rpg.zoos.collection.ZooManifest` | `read_zoo` |
| `rpg-run/1` | RUN/run.json of a fitted method | `write_run` | `read_run` |
| `rpg-generated/1` | GEN/manifest.json of generated models | `write_generated` | `read_generated` |
| `rpg-eval/1` | metrics JSON of `rpg evaluate` | `write_eval` | `read_eval` |

A manifest is always written last, so a folder with a manifest is complete. A generated set is written into a
temporary sibling folder and swapped in whole: a rerun with fewer models never leaves stale files beside a new
manifest, and an `--out` that holds another format (a zoo, a run) is refused instead of overwritten.
Every reader error names the file and the key (RPGInputError: one line, exit status 2 in the CLI).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import statistics
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rpg import io
from rpg.errors import RPGInputError

ZOO_FORMAT = "rpg-zoo/1"
RUN_FORMAT = "rpg-run/1"
GENERATED_FORMAT = "rpg-generated/1"
EVAL_FORMAT = "rpg-eval/1"
MEMORY_FORMAT = "rpg-memory/1"   # rpg memory-study (paper Fig. 8)
MANIFEST = "manifest.json"
NUM_TASK_BITS = 10          # binary relabellings of 10 classes (paper §4.1)
STAT_KEYS = ("best", "mean", "min", "median", "std")


# ------------------------------------------------------------------------------------------------ tasks
def check_task(bits: Any, where: str) -> list[int]:
    """A task condition as stored on disk: a list of 10 ints, each 0 or 1, not all equal."""
    if (not isinstance(bits, (list, tuple)) or len(bits) != NUM_TASK_BITS
            or any(isinstance(b, bool) or b not in (0, 1) for b in bits)):
        raise RPGInputError(f"{where}: expected a task as a list of {NUM_TASK_BITS} integers 0/1, got {bits!r}")
    if len(set(bits)) == 1:
        raise RPGInputError(f"{where}: task {list(bits)} labels every class the same (not a binary task)")
    return [int(b) for b in bits]


def task_string(bits: list[int]) -> str:
    return "".join(str(int(b)) for b in bits)


# ------------------------------------------------------------------------------------------------ model refs
@dataclass
class ModelRef:
    """One weight file of a zoo or a generated set, with its condition."""

    path: Path
    task: list[int] | None = None
    permutation: int | None = None
    condition: str | None = None     # the generated subfolder / condition label, if any

    @property
    def group(self) -> str | None:
        """Models are compared (similarity) only within one group: the same task."""
        return task_string(self.task) if self.task is not None else None


def _permutation(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RPGInputError(f"{where}: permutation must be an integer >= 0, got {value!r}")
    return value


def _model_ref(entry: Any, where: str, folder: Path, default_permutation: int | None = None) -> ModelRef:
    """One entry of a manifest's file list ({file, permutation?, task?, condition?}), checked."""
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise RPGInputError(f"{where}: needs a 'file'")
    task = check_task(entry["task"], f"{where}.task") if entry.get("task") is not None else None
    perm = _permutation(entry.get("permutation", default_permutation), f"{where}.permutation")
    return ModelRef(folder / entry["file"], task, perm, entry.get("condition"))


def manifest_format(folder: str | os.PathLike) -> str | None:
    """The `format` of FOLDER/manifest.json (None when there is no manifest)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    d = io.read_json(path)
    return d.get("format") if isinstance(d, dict) else None


# ------------------------------------------------------------------------------------------------ zoo
@dataclass
class Zoo:
    """A checkpoint zoo read from its folder: the weight files in manifest order, and the manifest."""

    folder: Path
    manifest: dict
    refs: list[ModelRef]

    @property
    def architecture(self) -> dict | None:
        return self.manifest.get("architecture")

    @property
    def dataset(self) -> dict | None:
        return self.manifest.get("dataset")

    @property
    def domain(self) -> str:
        return self.manifest.get("domain") or "classification"

    @property
    def substitute_for(self) -> str | None:
        return self.manifest.get("substitute_for")

    @property
    def files(self) -> list[Path]:
        return [r.path for r in self.refs]

    @property
    def tasks(self) -> list[list[int] | None]:
        return [r.task for r in self.refs]

    @property
    def permutations(self) -> list[int]:
        return [r.permutation for r in self.refs]

    def fingerprint(self) -> str:
        """Identity of the zoo's content (what a generator was trained on): sha256 over manifest.json and, per
        weight file, its name, size, mtime (ns) and first `_FINGERPRINT_HEAD` bytes (the safetensors header: names,
        shapes, dtypes, and the first values). Reading every byte of a large zoo would cost minutes; a re-collected
        zoo changes mtimes and leading values, an edited one at least its mtime."""
        h = hashlib.sha256()
        man = self.folder / MANIFEST
        h.update(man.read_bytes() if man.is_file() else b"")
        for f in self.files:
            st = f.stat()
            h.update(f"\0{f.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
            with open(f, "rb") as fh:
                h.update(fh.read(_FINGERPRINT_HEAD))
        return "sha256:" + h.hexdigest()

    def state_dicts(self):
        """(file name, state_dict) of every checkpoint, in zoo order, loaded one at a time."""
        for f in self.files:
            yield str(f), io.load_state_dict(f)


_FINGERPRINT_HEAD = 1 << 20  # bytes of each checkpoint hashed into the zoo fingerprint


def read_zoo(folder: str | os.PathLike, *, evaluable: bool = False, trainable: bool = False) -> Zoo:
    """Read a zoo folder. With a manifest (rpg-zoo/1) its checkpoint list is authoritative; a plain folder of
    weight files (a user's own checkpoints) is read in sorted name order, permutation = position.
    `evaluable=True` also requires the architecture and dataset that evaluation needs; `trainable=True` the
    permutation ids a generator embeds (each below the number of checkpoints)."""
    zoo = _read_zoo(folder, evaluable)
    if trainable:
        where = zoo.folder / MANIFEST
        for r in zoo.refs:
            # a permutation state is one training run with >= 1 checkpoint, so ids are < the checkpoint count;
            # the bound also keeps a corrupt id from sizing the embedding table (1e15 ids: a 1 PB allocation)
            if not 0 <= r.permutation < len(zoo.refs):
                raise RPGInputError(f"{where}: checkpoints[{r.path.name}].permutation={r.permutation!r}: must be an "
                                    f"integer in 0..{len(zoo.refs) - 1} (below the number of checkpoints)")
    return zoo


def _read_zoo(folder: str | os.PathLike, evaluable: bool) -> Zoo:
    folder = Path(folder)
    if not folder.is_dir():
        raise RPGInputError(f"{folder}: zoo folder not found")
    path = folder / MANIFEST
    if not path.is_file():
        if evaluable:
            raise RPGInputError(f"{path}: file not found (evaluation needs a zoo written by `rpg collect`)")
        files = io.list_weight_files(folder)
        return Zoo(folder, {}, [ModelRef(f, None, i) for i, f in enumerate(files)])
    m = io.read_json(path)
    if not isinstance(m, dict) or m.get("format") != ZOO_FORMAT:
        got = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise RPGInputError(f"{path}: format {got!r} is not a zoo manifest ({ZOO_FORMAT!r})")
    keys = ("architecture", "dataset", "checkpoints") if evaluable else ("checkpoints",)
    for key in keys:
        if key not in m:
            raise RPGInputError(f"{path}: missing key {key!r}")
    cks = m["checkpoints"]
    if not isinstance(cks, list) or not cks:
        raise RPGInputError(f"{path}: 'checkpoints' must be a non-empty list")
    refs = [_model_ref(c, f"{path}: checkpoints[{i}]", folder, default_permutation=i) for i, c in enumerate(cks)]
    for i, r in enumerate(refs):
        if not r.path.is_file():
            raise RPGInputError(f"{path}: checkpoints[{i}].file: {r.path} not found")
    return Zoo(folder, m, refs)


# ------------------------------------------------------------------------------------------------ run
def write_run(run_dir: str | os.PathLike, method: str, zoo: str | os.PathLike, zoo_fingerprint: str,
              **extra: Any) -> None:
    io.write_json(Path(run_dir) / "run.json", {"format": RUN_FORMAT, "method": method, "zoo": str(zoo),
                                               "zoo_fingerprint": zoo_fingerprint, **extra})


def read_run(run_dir: str | os.PathLike) -> dict:
    """RUN/run.json -> {method, zoo, zoo_fingerprint, ...}. Run folders written before run.json existed are
    RPG runs (they hold config.json + generator.safetensors)."""
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if not path.is_file():
        if (run_dir / "config.json").is_file():
            return {"format": RUN_FORMAT, "method": "rpg"}
        raise RPGInputError(f"{path}: file not found (is {run_dir} a run folder written by `rpg train`?)")
    d = io.read_json(path)
    if not isinstance(d, dict) or d.get("format") != RUN_FORMAT:
        got = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise RPGInputError(f"{path}: format {got!r} is not a run record ({RUN_FORMAT!r})")
    if not isinstance(d.get("method"), str):
        raise RPGInputError(f"{path}: missing key 'method'")
    return d


def run_digest(run_dir: str | os.PathLike) -> str:
    """Identity of a fitted run: sha256 over the JSON records at the top of its folder (config, meta, run, zoo
    records), which `rpg train` rewrites and `dvc pull` restores byte for byte. meta.json's `training` block
    (wall time, memory) is left out: it says how the run went, not what it was made from, so retraining the
    same config on the same zoo keeps the identity. A generated set records it, so a generator retrained from
    something else makes the set visibly stale (hashing the weights would cost minutes at paper scale)."""
    h = hashlib.sha256()
    for f in sorted(Path(run_dir).glob("*.json")):
        data = f.read_bytes()
        if f.name == "meta.json":
            try:
                meta = io.read_json(f)
            except RPGInputError:
                meta = None
            if isinstance(meta, dict):
                meta.pop("training", None)
                data = json.dumps(meta, sort_keys=True).encode()
        h.update(f"\0{f.name}\0".encode())
        h.update(data)
    return "sha256:" + h.hexdigest()


def _run_record(run_dir: str | os.PathLike, name: str, required: bool) -> dict | None:
    path = Path(run_dir) / name
    if not path.is_file():
        if required:
            raise RPGInputError(f"{path}: file not found (is {run_dir} a run folder written by `rpg train`?)")
        return None
    d = io.read_json(path)
    if not isinstance(d, dict):
        raise RPGInputError(f"{path}: expected a JSON object, got {type(d).__name__}")
    return d


def read_run_config(run_dir: str | os.PathLike, *, required: bool = True) -> dict | None:
    """RUN/config.json: the generator's settings as `rpg train` resolved them (RPGConfig.to_dict()). None where
    the run has none and not `required` (a baseline method records its settings elsewhere)."""
    return _run_record(run_dir, "config.json", required)


def read_run_meta(run_dir: str | os.PathLike, *, required: bool = True) -> dict | None:
    """RUN/meta.json: what training recorded (num_tokens, num_params, and `training`: wall time, s/step, peak
    memory, where training measured them). None where the run has none and not `required`."""
    return _run_record(run_dir, "meta.json", required)


def read_generator_sizes(path: str | os.PathLike) -> dict[str, Any]:
    """A stored generator (.safetensors) -> {"bytes", "params", "tensors": {name: numel}} from the file's
    header; no tensor is loaded."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise RPGInputError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: math.prod(f.get_slice(k).get_shape()) for k in f.keys()}
    except SafetensorError as e:
        raise RPGInputError(f"{path}: not a readable safetensors file ({e})") from None
    return {"bytes": path.stat().st_size, "params": sum(tensors.values()), "tensors": tensors}


# ------------------------------------------------------------------------------------------------ generated
@dataclass
class GeneratedModel:
    """One generated state_dict and its condition, as handed to `write_generated`."""

    state_dict: dict[str, torch.Tensor]
    permutation: int | None = None
    task: list[int] | None = None
    condition: str | None = None       # subfolder name when a set holds several conditions


@dataclass
class GeneratedSet:
    folder: Path
    manifest: dict
    refs: list[ModelRef] = field(default_factory=list)


_GENERATED_FILE = re.compile(r"generated_\d{3,}\.safetensors")


def _manifestless_set(out: Path) -> bool:
    """A generated set that lost only its manifest: nothing but generated_NNN.safetensors files, at the top or
    one condition folder down. Snakemake deletes a job's declared output (the manifest) before it reruns the
    job, so replacing this is how a workflow regenerates; a folder with anything else stays refused."""
    files = [p for p in out.rglob("*") if not p.is_dir()]
    return bool(files) and all(_GENERATED_FILE.fullmatch(p.name) and len(p.relative_to(out).parts) <= 2
                               for p in files)


def check_writable(out: str | os.PathLike) -> None:
    """Fail before any expensive work if `write_generated(out, ...)` could not write there: a writable place
    (`io.check_output_dir`; the set is swapped in from a sibling, so the parent must be writable too) that holds
    no other format (a zoo, a run, loose weights) which the swap would replace."""
    out = io.check_output_dir(out, swapped=True)
    if out.is_dir():
        fmt = manifest_format(out)
        if fmt is not None and fmt != GENERATED_FORMAT:
            raise RPGInputError(f"{out / MANIFEST}: --out holds a {fmt!r} folder; refusing to replace it with "
                                "generated models (choose another --out)")
        if fmt is None and not _manifestless_set(out) and (
                (out / "run.json").is_file()
                or any(p.suffix in io.WEIGHT_SUFFIXES for p in out.rglob("*") if p.is_file())):
            raise RPGInputError(f"{out}: --out holds other files (weights or a run) and no generated-set "
                                "manifest; refusing to replace it (choose an empty or new folder)")


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Fail before any work when a file cannot be written at `path` (it is written through a sibling temporary
    file, `io.atomic_path`): not a folder, and its nearest existing ancestor a writable folder, not a file."""
    path = Path(path)
    if path.is_dir():
        raise RPGInputError(f"{flag} {path}: is a folder (expected a file path)")
    parent = next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise RPGInputError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RPGInputError(f"{flag} {path}: {parent} is not writable")
    return path


def check_replaceable(out: str | os.PathLike, own: Callable[[str], bool], what: str, flag: str = "--out",
                      swapped: bool = False) -> Path:
    """Fail before any work unless the folder `out` is new, empty, or holds only files this command writes
    (`own(name)` for every entry, no subfolders): a command that replaces or writes into a folder must neither
    destroy nor litter one it did not write (a zoo, a run, someone's notes)."""
    out = io.check_output_dir(out, flag, swapped=swapped)
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.is_dir() or not own(p.name))
        if foreign:
            raise RPGInputError(f"{flag} {out}: holds {foreign[0]!r}, which {what} does not write; refusing to "
                                "write there (choose an empty or new folder)")
    return out


def write_generated(out: str | os.PathLike, models: Iterable[GeneratedModel],
                    info: dict[str, Any] | Callable[[], dict[str, Any]]) -> list[Path]:
    """Write a generated set: GEN/[condition/]generated_NNN.safetensors + GEN/manifest.json (rpg-generated/1).
    `info` holds the provenance (method, run, architecture, dataset, substitute_for, domain, sampler, steps, mode,
    seed, precision, cost, ...); a callable is called once every model is written, so provenance measured while
    a lazy `models` was consumed (the sampling cost) is complete. Files are numbered per condition. The set is
    built in a temporary sibling folder and swapped in whole."""
    out = Path(out)
    check_writable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        entries, counts = [], {}
        for m in models:
            k = counts.get(m.condition, 0)
            counts[m.condition] = k + 1
            rel = Path(m.condition or ".") / f"generated_{k:03d}.safetensors"
            io.save_state_dict(tmp / rel, m.state_dict)
            entries.append({"file": rel.as_posix(), "permutation": m.permutation,
                            "task": None if m.task is None else check_task(m.task, f"{out}: task"),
                            "condition": m.condition})
        provenance = info() if callable(info) else info
        io.write_json(tmp / MANIFEST, {"format": GENERATED_FORMAT, **provenance, "files": entries})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)        # mkdtemp makes 0700; users of a shared DVC cache must read the set
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "set")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return [out / e["file"] for e in entries]


def read_generated(path: str | os.PathLike, zoo: Zoo | None = None) -> GeneratedSet:
    """A generated set (rpg-generated/1), a plain folder of weight files, or a single weight file.
    With `zoo`, the set's architecture must be the zoo's."""
    path = Path(path)
    if path.is_file():
        return GeneratedSet(path.parent, {}, [ModelRef(path)])
    mpath = path / MANIFEST
    if not path.is_dir():
        raise RPGInputError(f"{path}: generated folder not found")
    if not mpath.is_file():
        return GeneratedSet(path, {}, [ModelRef(p) for p in io.list_weight_files(path)])
    m = io.read_json(mpath)
    if not isinstance(m, dict) or m.get("format") != GENERATED_FORMAT:
        got = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise RPGInputError(f"{mpath}: format {got!r} is not a generated set ({GENERATED_FORMAT!r})")
    if zoo is not None and m.get("architecture") is not None and zoo.architecture is not None \
            and m["architecture"] != zoo.architecture:
        raise RPGInputError(f"{mpath}: architecture {m['architecture']} differs from the zoo's {zoo.architecture}")
    files = m.get("files")
    if not isinstance(files, list) or not files:
        raise RPGInputError(f"{mpath}: 'files' must be a non-empty list")
    refs = [_model_ref(f, f"{mpath}: files[{i}]", path) for i, f in enumerate(files)]
    return GeneratedSet(path, m, refs)


# ------------------------------------------------------------------------------------------------ eval
def write_eval(path: str | os.PathLike, result: dict[str, Any]) -> None:
    io.write_json(path, {**result, "format": EVAL_FORMAT})


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RPGInputError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _stats(block: Any, where: str) -> dict[str, Any]:
    """Check one `original` / `generated` summary block (accuracies in percent + best/mean/min/median/std)."""
    if not isinstance(block, dict):
        raise RPGInputError(f"{where}: expected an object with accuracies and statistics")
    missing = [k for k in ("accuracies", *STAT_KEYS, "n") if k not in block]
    if missing:
        raise RPGInputError(f"{where}: missing key(s) {', '.join(missing)}")
    accs = block["accuracies"]
    if not isinstance(accs, list) or not accs:
        raise RPGInputError(f"{where}.accuracies: expected a non-empty list")
    out = {k: _number(block[k], f"{where}.{k}") for k in STAT_KEYS}
    out["accuracies"] = [_number(a, f"{where}.accuracies[{i}]") for i, a in enumerate(accs)]
    for i, a in enumerate(out["accuracies"]):
        if not 0.0 <= a <= 100.0:
            raise RPGInputError(f"{where}.accuracies[{i}]={a}: accuracies are percentages (0-100)")
    if block["n"] != len(accs):
        raise RPGInputError(f"{where}.n={block['n']!r} but {len(accs)} accuracies are listed")
    out["n"] = len(accs)
    _check_summary(out, where)
    return out


# `rpg evaluate` rounds every per-model value and every statistic (of the unrounded values) to 2 decimals, so a
# statistic recomputed from the listed values may differ by two half-units of that rounding; more is a summary
# that does not describe its own values (hand-edited or mixed from two files) and would be copied into a table.
SUMMARY_TOLERANCE = 0.0101


def _check_summary(block: dict[str, Any], where: str) -> None:
    a = block["accuracies"]
    recomputed = {"best": max(a), "mean": statistics.fmean(a), "min": min(a), "median": statistics.median(a),
                  "std": statistics.pstdev(a)}
    for key, value in recomputed.items():
        if abs(block[key] - value) > SUMMARY_TOLERANCE:
            raise RPGInputError(f"{where}.{key}={block[key]} disagrees with its {len(a)} accuracies "
                                f"({key} {value:.4f})")


def read_eval(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check one `rpg evaluate` output (rpg-eval/1); the summaries come back validated, the rest of
    the file (similarity, per_task, ...) as it is."""
    d = io.read_json(path)
    if not isinstance(d, dict) or d.get("format") != EVAL_FORMAT:
        got = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise RPGInputError(f"{path}: not an evaluation file (format {got!r}, expected {EVAL_FORMAT!r})")
    for key in ("params", "dataset", "original", "generated"):
        if key not in d:
            raise RPGInputError(f"{path}: missing key {key!r}")
    if isinstance(d["params"], bool) or not isinstance(d["params"], int) or d["params"] <= 0:
        raise RPGInputError(f"{path}: params must be a positive integer, got {d['params']!r}")
    if not isinstance(d["dataset"], str):
        raise RPGInputError(f"{path}: dataset must be a string, got {d['dataset']!r}")
    return {**d, "original": _stats(d["original"], f"{path}: original"),
            "generated": _stats(d["generated"], f"{path}: generated")}


# ------------------------------------------------------------------------------------------------ memory study
MEMORY_STATUSES = ("ok", "oom", "timeout", "error", "skipped")


def write_memory_study(path: str | os.PathLike, study: dict[str, Any]) -> None:
    """The Fig. 8 memory study (rpg memory-study): settings, summary and one record per (method, size)."""
    io.write_json(path, {"format": MEMORY_FORMAT, **study})


def read_memory_study(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a memory study (rpg-memory/1): every record names its method, preset, size and status."""
    d = io.read_json(path)
    if not isinstance(d, dict) or d.get("format") != MEMORY_FORMAT:
        got = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise RPGInputError(f"{path}: not a memory study (format {got!r}, expected {MEMORY_FORMAT!r})")
    if not isinstance(d.get("records"), list):
        raise RPGInputError(f"{path}: missing key 'records' (a list)")
    for i, r in enumerate(d["records"]):
        missing = [k for k in ("method", "preset", "size", "status") if not isinstance(r, dict) or k not in r]
        if missing:
            raise RPGInputError(f"{path}: records[{i}]: missing key(s) {', '.join(missing)}")
        if r["status"] not in MEMORY_STATUSES:
            raise RPGInputError(f"{path}: records[{i}].status={r['status']!r} (known: {', '.join(MEMORY_STATUSES)})")
    return d
