"""What makes an artefact of the workflow stale, decided from the records the artefacts keep.

Snakemake reruns a job when an input is newer than its outputs or a param changed. The workflow pins the inputs
DVC restores (`ancient()`: present means up to date, since `dvc pull` gives fresh mtimes), and Snakemake never
propagates a rerun across an ancient input that exists: a generator retrained because its config changed would
leave its samples and metrics stale. So an input is pinned only while the records say nothing changed. Each
artefact records what it was made from:

- a zoo folder: manifest.json `config`, the resolved recipe `rpg collect` ran (`zoo_is_stale`);
- a run folder: config.json, the method's resolved config, and meta.json `zoo_manifest.config`, the zoo it was
  trained on (`run_is_stale`);
- a generated set: manifest.json's sample settings and `conditions` (`samples_are_stale`) and the `run_digest`
  of the run it sampled (`sampled_another_run`);
- a metrics file: `generation`, the entries of the generated set's manifest it scored (`metrics_are_stale`).

Either the record disagrees with what the config asks for now (the upstream job reruns in this invocation, and
its dependants must follow), or a downstream record disagrees with its upstream artefact (an earlier invocation
remade the upstream one and stopped before its dependants). An absent or unreadable record is trusted: there is
nothing to compare (older artefacts, methods that keep no such record). A bad recipe, `set` or condition spec is
not stale either: the job itself reports it with its own message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rpg import formats
from rpg.errors import RPGInputError
from rpg.methods.base import ConditionSpec, Method
from rpg.zoos.recipes import resolve_recipe

# the sample settings a generated set's manifest records under the same key as the workflow's `sample` entry
SAMPLE_KEYS = ("num", "seed", "sampler", "steps", "mode", "chunk_size")


def read_record(path: str | os.PathLike) -> Any:
    """A JSON record on disk, or None (absent or unreadable: nothing to compare, trust it)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _as_json(value: Any) -> Any:
    """`value` as read back from JSON (tuples become lists), to compare with a record."""
    return json.loads(json.dumps(value))


def normalised(cls: type, record: Any) -> Any:
    """A config record read back through its class (fills fields added since it was written), or the record
    itself where the class cannot read it."""
    try:
        return _as_json(cls.from_dict(record).to_dict())
    except (RPGInputError, KeyError, TypeError, ValueError):
        return record


def zoo_config(zoo_dir: str | os.PathLike) -> Any:
    """The resolved recipe a zoo's manifest records (`config`), or None."""
    manifest = read_record(Path(zoo_dir) / formats.MANIFEST)
    return manifest.get("config") if isinstance(manifest, dict) else None


def zoo_is_stale(zoo_dir: str | os.PathLike, recipe: str, overrides: list[str]) -> bool:
    """The zoo's manifest records another resolved recipe than `rpg collect --zoo RECIPE --set k=v ...` would
    collect with now (any domain; data locations are not part of a recipe)."""
    recorded = zoo_config(zoo_dir)
    if recorded is None:
        return False
    try:
        cfg = resolve_recipe(recipe, overrides)
    except RPGInputError:
        return False
    return _as_json(cfg.to_dict()) != normalised(type(cfg), recorded)


def run_is_stale(run_dir: str | os.PathLike, zoo_dir: str | os.PathLike, method: Method, config: dict) -> bool:
    """The run was trained with another config than `config` (the method's `resolved_config` of the experiment
    now; its config.json read back through `method.normalised_config`), or on another zoo config than the zoo's
    manifest holds now (meta.json `zoo_manifest.config`). The zoo's own staleness is `zoo_is_stale`."""
    run_dir = Path(run_dir)
    recorded = read_record(run_dir / "config.json")
    if isinstance(recorded, dict):
        recorded = _as_json(method.normalised_config(recorded))
    if recorded is not None and recorded != _as_json(config):
        return True
    meta = read_record(run_dir / "meta.json")
    trained_on = meta.get("zoo_manifest") if isinstance(meta, dict) else None
    now = zoo_config(zoo_dir)
    return isinstance(trained_on, dict) and "config" in trained_on and now is not None and trained_on["config"] != now


def samples_are_stale(generated_dir: str | os.PathLike, settings: dict) -> bool:
    """The generated set's manifest records other sample settings than `settings` (the row's `sample` entry) or
    another condition spec. An unset (None) setting keeps the run's own choice, which the manifest records
    resolved: not compared."""
    recorded = read_record(Path(generated_dir) / formats.MANIFEST)
    if not isinstance(recorded, dict):
        return False
    if any(settings.get(k) is not None and k in recorded and recorded[k] != settings[k] for k in SAMPLE_KEYS):
        return True
    try:
        spec = str(ConditionSpec.parse(settings.get("conditions") or "none"))
    except RPGInputError:
        return False
    return "conditions" in recorded and spec != recorded["conditions"]


def sampled_another_run(generated_dir: str | os.PathLike, run_dir: str | os.PathLike) -> bool:
    """The generated set's manifest records another `run_digest` than the run folder has now (the run was
    retrained from another config or zoo after the set was sampled)."""
    recorded = read_record(Path(generated_dir) / formats.MANIFEST)
    if not isinstance(recorded, dict) or "run_digest" not in recorded or not Path(run_dir).is_dir():
        return False
    return recorded["run_digest"] != formats.run_digest(run_dir)


def metrics_are_stale(metrics_file: str | os.PathLike, generated_dir: str | os.PathLike) -> bool:
    """The metrics record (`generation`) another generated set than the set's manifest holds now."""
    metrics = read_record(metrics_file)
    manifest = read_record(Path(generated_dir) / formats.MANIFEST)
    if not isinstance(metrics, dict) or not isinstance(manifest, dict):
        return False
    generation = metrics.get("generation") or {}
    return any(manifest.get(k) != v for k, v in generation.items())
