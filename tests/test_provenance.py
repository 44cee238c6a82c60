"""rpg.provenance: what makes a workflow artefact stale, from real record files (no Snakemake).

Each staleness reason has a case that flips the verdict, and an absent or unreadable record is trusted.
"""

from __future__ import annotations

import json
from pathlib import Path

from rpg import formats, provenance
from rpg.methods import get_method
from rpg.zoos.recipes import resolve_recipe

RECIPE = "mini/resnet18"


def write(path: Path, record) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def zoo_with(tmp_path: Path, overrides: list[str], name: str = "zoo") -> Path:
    """A zoo folder whose manifest records the recipe resolved with `overrides` (what `rpg collect` writes)."""
    folder = tmp_path / name
    write(folder / "manifest.json", {"config": resolve_recipe(RECIPE, overrides).to_dict(), "checkpoints": []})
    return folder


def test_read_record_trusts_what_it_cannot_read(tmp_path):
    assert provenance.read_record(tmp_path / "absent.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert provenance.read_record(tmp_path / "bad.json") is None
    assert provenance.read_record(write(tmp_path / "ok.json", {"a": 1})) == {"a": 1}


# ------------------------------------------------------------------------------------------------ zoos
def test_zoo_is_stale_when_the_recipe_resolves_differently(tmp_path):
    zoo = zoo_with(tmp_path, ["seed=1"])
    assert not provenance.zoo_is_stale(zoo, RECIPE, ["seed=1"])
    assert provenance.zoo_is_stale(zoo, RECIPE, [])                       # the zoo's `set` was dropped
    assert provenance.zoo_is_stale(zoo, RECIPE, ["seed=2"])
    # data locations say where data lives, not what the zoo is
    assert not provenance.zoo_is_stale(zoo, RECIPE, ["cifar_root=/elsewhere", "seed=1"])


def test_zoo_record_is_read_back_through_its_class(tmp_path):
    """A manifest written before a recipe field existed is filled with the default: not stale."""
    zoo = zoo_with(tmp_path, [])
    manifest = json.loads((zoo / "manifest.json").read_text())
    assert manifest["config"].pop("focal_gamma") == 2.0
    write(zoo / "manifest.json", manifest)
    assert not provenance.zoo_is_stale(zoo, RECIPE, [])
    manifest["config"]["num_checkpoints"] += 1
    write(zoo / "manifest.json", manifest)
    assert provenance.zoo_is_stale(zoo, RECIPE, [])


def test_zoo_without_a_record_or_with_a_bad_recipe_is_trusted(tmp_path):
    assert not provenance.zoo_is_stale(tmp_path / "none", RECIPE, ["seed=3"])
    zoo = zoo_with(tmp_path, [])
    assert not provenance.zoo_is_stale(zoo, "mini/no_such_recipe", [])
    assert not provenance.zoo_is_stale(zoo, RECIPE, ["no_such_key=1"])    # the collect job reports it


# ------------------------------------------------------------------------------------------------ runs
def run_with(tmp_path: Path, method: str, overrides: list[str], zoo: Path) -> Path:
    """A run folder as `rpg train` leaves it: config.json (the resolved config) and meta.json (the zoo)."""
    run = tmp_path / f"run_{method}"
    write(run / "config.json", get_method(method).resolved_config("mini", overrides))
    manifest = json.loads((zoo / "manifest.json").read_text())
    write(run / "meta.json", {"zoo_manifest": {k: v for k, v in manifest.items() if k != "checkpoints"}})
    return run


def test_run_is_stale_when_its_config_differs(tmp_path):
    zoo = zoo_with(tmp_path, [])
    rpg = get_method("rpg")
    run = run_with(tmp_path, "rpg", ["train.lr=0.002"], zoo)
    assert not provenance.run_is_stale(run, zoo, rpg, rpg.resolved_config("mini", ["train.lr=0.002"]))
    assert provenance.run_is_stale(run, zoo, rpg, rpg.resolved_config("mini", []))


def test_run_config_is_read_back_through_the_method(tmp_path):
    """RPG fills fields added since a config.json was written; a baseline's record is compared as written."""
    zoo = zoo_with(tmp_path, [])
    for name in ("rpg", "pdiff"):
        method = get_method(name)
        run = run_with(tmp_path, name, [], zoo)
        record = json.loads((run / "config.json").read_text())
        stage = record["train"] if name == "rpg" else record["diffusion"]["train"]
        del stage["warmup_steps"]                   # at its default in both configs
        write(run / "config.json", record)
        assert provenance.run_is_stale(run, zoo, method, method.resolved_config("mini", [])) is (name == "pdiff")


def test_run_is_stale_when_trained_on_another_zoo_config(tmp_path):
    old = zoo_with(tmp_path, [], name="old")
    rpg = get_method("rpg")
    run = run_with(tmp_path, "rpg", [], old)
    wanted = rpg.resolved_config("mini", [])
    assert not provenance.run_is_stale(run, old, rpg, wanted)
    recollected = zoo_with(tmp_path, ["seed=1"], name="new")
    assert provenance.run_is_stale(run, recollected, rpg, wanted)
    # no record of the zoo's config (older runs, other methods): trusted
    write(run / "meta.json", {"zoo_manifest": {}})
    assert not provenance.run_is_stale(run, recollected, rpg, wanted)


def test_run_without_records_is_trusted(tmp_path):
    zoo = zoo_with(tmp_path, [])
    retrieval = get_method("retrieval")
    assert not provenance.run_is_stale(tmp_path / "empty", zoo, retrieval, retrieval.resolved_config("mini", []))


# ------------------------------------------------------------------------------------------------ generated sets
SETTINGS = {"num": 2, "seed": 0, "sampler": None, "steps": 5, "mode": None, "chunk_size": None, "conditions": None}


def generated_with(tmp_path: Path, **record) -> Path:
    folder = tmp_path / "generated"
    write(folder / "manifest.json", {"num": 2, "seed": 0, "sampler": "ddim", "steps": 5, "mode": "partial",
                                     "chunk_size": 256, "conditions": "none", **record})
    return folder


def test_samples_are_stale_when_a_set_sample_setting_differs(tmp_path):
    gen = generated_with(tmp_path)
    assert not provenance.samples_are_stale(gen, SETTINGS)
    assert provenance.samples_are_stale(gen, {**SETTINGS, "steps": 6})
    assert provenance.samples_are_stale(gen, {**SETTINGS, "num": 3})
    # an unset setting keeps the run's own choice, recorded resolved: not compared
    assert not provenance.samples_are_stale(gen, {**SETTINGS, "steps": None})


def test_samples_are_stale_when_the_conditions_differ(tmp_path):
    gen = generated_with(tmp_path, conditions="permutation:1")
    assert not provenance.samples_are_stale(gen, {**SETTINGS, "conditions": "permutation:1"})
    assert provenance.samples_are_stale(gen, SETTINGS)                     # none asked now
    assert not provenance.samples_are_stale(gen, {**SETTINGS, "conditions": "nonsense"})   # generate reports it
    assert not provenance.samples_are_stale(tmp_path / "absent", {**SETTINGS, "steps": 9})


def test_sampled_another_run_follows_the_run_digest(tmp_path):
    run = tmp_path / "run"
    write(run / "config.json", {"a": 1})
    gen = generated_with(tmp_path, run_digest=formats.run_digest(run))
    assert not provenance.sampled_another_run(gen, run)
    write(run / "config.json", {"a": 2})                                   # retrained from another config
    assert provenance.sampled_another_run(gen, run)
    assert not provenance.sampled_another_run(gen, tmp_path / "no_run")
    assert not provenance.sampled_another_run(generated_with(tmp_path), run)    # no digest recorded


def test_metrics_are_stale_when_they_scored_another_set(tmp_path):
    gen = generated_with(tmp_path, run_digest="sha256:1")
    metrics = write(tmp_path / "metrics.json", {"generation": {"run_digest": "sha256:1", "steps": 5}})
    assert not provenance.metrics_are_stale(metrics, gen)
    generated_with(tmp_path, run_digest="sha256:2")                       # regenerated, not yet evaluated
    assert provenance.metrics_are_stale(metrics, gen)
    write(metrics, {"generation": {}})
    assert not provenance.metrics_are_stale(metrics, gen)
    assert not provenance.metrics_are_stale(tmp_path / "absent.json", gen)
