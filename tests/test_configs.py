"""The one typed config loader (rpg.configs): train, collect and the data settings read `--set` the same way,
and the zoo recipes are YAML data with `extends` chains."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpg.errors import RPGInputError
from rpg.generator.config import preset_config
from rpg.zoos import recipes
from rpg.zoos.datasets import DataConfig
from rpg.zoos.recipes import apply_overrides, get_zoo, load_recipe, recipe_files


# ---- one --set semantics for the three entry points -----------------------------------------------------------
def test_none_is_a_string_for_str_fields_everywhere():
    # str fields keep the text "none" (train: recurrent.kind; collect: substitute_for is str | None, description str)
    assert preset_config("mini", {"recurrent.kind": "none"}).recurrent.kind == "none"
    assert apply_overrides(get_zoo("mini/cnn_s"), {"description": "none"}).description == "none"
    assert DataConfig.from_sources({"cifar_root": "none"}, env={}).cifar_root == "none"


def test_none_is_none_for_optional_fields_everywhere():
    # Optional fields: none/null -> None, in train (diffusion.diffusion_batch) and collect (num_seen_tasks,
    # phases.0.lr_end, dataset.normalize, substitute_for) alike
    assert preset_config("mini", {"diffusion.diffusion_batch": "none"}).diffusion.diffusion_batch is None
    tasks = get_zoo("mini/vit_tiny_tasks")
    assert tasks.num_seen_tasks is not None
    cfg = apply_overrides(tasks, {"num_seen_tasks": "none", "phases.0.lr_end": "NULL", "substitute_for": "none"})
    assert cfg.num_seen_tasks is None and cfg.phases[0].lr_end is None and cfg.substitute_for is None
    cfg = apply_overrides(get_zoo("paper/cifar10_cnn_s"), {"dataset.normalize": "none"})
    assert cfg.dataset["normalize"] is None


def test_same_type_same_input_same_value():
    # bool: train.* has none, so the data setting and a zoo field; int and float in all three
    assert DataConfig.from_sources({"download": "yes"}, env={}).download is True
    assert apply_overrides(get_zoo("mini/cnn_s"), {"channels_last": "no"}).channels_last is False
    assert preset_config("mini", {"train.steps": "7"}).train.steps == 7
    assert apply_overrides(get_zoo("mini/cnn_s"), {"batch_size": "7"}).batch_size == 7
    assert DataConfig.from_sources({"num_workers": "7"}, env={}).num_workers == 7
    assert preset_config("mini", {"train.lr": "1e-4"}).train.lr == 1e-4
    assert apply_overrides(get_zoo("mini/cnn_s"), {"save.lr": "1e-4"}).save.lr == 1e-4
    # the same text, read from the environment or --set, is the same value
    assert DataConfig.from_sources({}, env={"RPG_NUM_WORKERS": "3"}) == DataConfig.from_sources({"num_workers": "3"},
                                                                                                   env={})


def test_lists_by_json_or_index():
    a = preset_config("mini", {"recurrent.d_model": "[128, 128]"})
    b = preset_config("mini", {"recurrent.d_model.0": "128", "recurrent.d_model.1": "128"})
    assert a == b and a.recurrent.d_model == [128, 128]
    cfg = apply_overrides(get_zoo("mini/cnn_s"), {"phases.0.epochs": "2", "unseen_tasks": "[1, 2]"})
    assert cfg.phases[0].epochs == 2 and cfg.unseen_tasks == [1, 2]


@pytest.mark.parametrize("bad", [
    {"train.steps": "many"}, {"train.bogus": "1"}, {"recurrent.d_model.9": "1"}, {"train.steps.x": "1"},
])
def test_bad_train_overrides(bad):
    with pytest.raises(RPGInputError, match=next(iter(bad)).split(".")[1]):
        preset_config("mini", bad)


@pytest.mark.parametrize("bad", [{"batch_size": "none"}, {"bogus": "1"}, {"phases.3.lr": "1"}, {"save.lr": "x"}])
def test_bad_collect_overrides(bad):
    with pytest.raises(RPGInputError):
        apply_overrides(get_zoo("mini/cnn_s"), bad)


# ---- recipes as YAML data -------------------------------------------------------------------------------------
def test_registry_names_map_to_files_and_extends_chains():
    files = recipe_files("mini/resnet18")
    assert files[0] == recipes.RECIPE_DIR / "mini" / "resnet18.yaml"
    assert len(files) >= 2 and all(f.is_file() for f in files) and files[-1].parent.name == "_base"
    assert get_zoo("mini/resnet18").name == "mini/resnet18"
    assert set(recipes.ZOOS) == set(recipes.registry_names()) and not any(n.startswith("_base") for n in recipes.ZOOS)
    with pytest.raises(RPGInputError, match="unknown zoo"):
        get_zoo("_base/mini_fmnist")


def test_a_base_edit_reaches_every_row_that_extends_it(tmp_path, monkeypatch):
    root = tmp_path / "recipes"
    (root / "_base").mkdir(parents=True)
    (root / "rows").mkdir()
    (root / "_base" / "fam.yaml").write_text(
        "dataset: {name: digits}\narchitecture: {name: cnn_s, kwargs: {in_chans: 1, num_classes: 10}}\n"
        "phases:\n- {epochs: 1, lr: 3e-3}\nsave: {lr: 1e-4}\n")
    (root / "rows" / "a.yaml").write_text("extends: _base/fam\nbatch_size: 32\nsave: {every: 3}\n")
    monkeypatch.setattr(recipes, "RECIPE_DIR", root)
    cfg = get_zoo("rows/a")
    # the row's own keys, the base's keys, and nested mappings merged key by key; 3e-3 is a number, not a string
    assert (cfg.batch_size, cfg.save.every, cfg.save.lr, cfg.phases[0].lr) == (32, 3, 1e-4, 3e-3)
    assert recipe_files("rows/a") == [root / "rows" / "a.yaml", root / "_base" / "fam.yaml"]
    (root / "_base" / "fam.yaml").write_text((root / "_base" / "fam.yaml").read_text().replace("1e-4", "2e-4"))
    assert get_zoo("rows/a").save.lr == 2e-4


def test_recipe_file_path_and_errors(tmp_path):
    f = tmp_path / "my_zoo.yaml"
    f.write_text("extends: mini/cnn_s\nnum_checkpoints: 4\n")
    cfg = get_zoo(str(f))
    base = get_zoo("mini/cnn_s")
    assert cfg.name == "my_zoo" and cfg.num_checkpoints == 4 and cfg.architecture == base.architecture
    assert recipe_files(str(f))[:2] == [f, recipes.RECIPE_DIR / "mini" / "cnn_s.yaml"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: mini/cnn_s\nbatch_sise: 4\n")
    with pytest.raises(RPGInputError, match=r"bad\.yaml: unknown key 'batch_sise'"):
        load_recipe(str(bad))
    bad.write_text("extends: mini/cnn_s\nsave: {lr: fast}\n")
    with pytest.raises(RPGInputError, match=r"bad\.yaml: .*save\.lr"):
        load_recipe(str(bad))
    bad.write_text("extends: bad.yaml\n")
    with pytest.raises(RPGInputError, match="cycle"):
        recipe_files(str(bad))
    with pytest.raises(RPGInputError, match="no such recipe file"):
        get_zoo(str(Path(tmp_path) / "missing.yaml"))


def test_collect_cli_takes_a_recipe_file(tmp_path, capsys):
    import json

    from rpg.cli import collect as cli_collect
    f = tmp_path / "z.yaml"
    f.write_text("extends: mini/cnn_s\nnum_checkpoints: 4\n")
    assert cli_collect.main(["--zoo", str(f), "--print-config", "--set", "substitute_for=none"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_checkpoints"] == 4 and printed["name"] == "z" and printed["substitute_for"] is None


def test_a_switch_added_later_stays_out_of_recorded_configs_at_its_default():
    """tokenizer.center was added after runs were recorded: at its default the resolved config is what it was
    before (so Snakemake's params trigger does not retrain every run); set, it is recorded and read back."""
    from rpg.generator.config import RPGConfig, preset_config
    plain = preset_config("base").to_dict()
    assert "center" not in plain["tokenizer"]
    assert RPGConfig.from_dict(plain).tokenizer.center == []
    centred = preset_config("base", {"tokenizer.center": '["running_var"]'})
    rec = centred.to_dict()
    assert rec["tokenizer"]["center"] == ["running_var"]
    assert RPGConfig.from_dict(rec) == centred
    # the mini preset turns it on; `[]` turns it off again, and the record is then the plain one
    assert preset_config("mini").tokenizer.center == ["running_mean", "running_var"]
    assert "center" not in preset_config("mini", {"tokenizer.center": "[]"}).to_dict()["tokenizer"]
    with pytest.raises(RPGInputError, match="tokenizer.center"):
        preset_config("mini", {"tokenizer.center": '["1.running_mean"]'})
