"""Table 2's workflow entries: the mini and paper zoos, experiment and table, and both dry runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rpg.zoos.recipes import get_zoo

ROOT = Path(__file__).resolve().parents[1]


def _overlay(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _overlay(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def test_table2_entries_at_both_scales():
    mini = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    paper = _overlay(mini, yaml.safe_load((ROOT / "config/paper.yaml").read_text()))
    table2 = {k: mini["tables"]["table2"][k] for k in ("builder", "rows", "paper")}
    assert table2 == {"builder": "table2", "rows": ["seg_upernet_vit"], "paper": "resources/paper/table2.csv"}
    for cfg, recipe in ((mini, "mini/seg_nuclei"), (paper, "paper/ade20k_upernet_vit_b")):
        assert cfg["experiments"]["seg_upernet_vit"]["zoo"] == "seg_upernet_vit"
        assert cfg["zoos"]["seg_upernet_vit"]["recipe"] == recipe
        assert get_zoo(recipe).domain == "segmentation" and get_zoo(recipe).num_checkpoints == 50
    exp = paper["experiments"]["seg_upernet_vit"]
    assert (exp["preset"], exp["gpus"]) == ("large", 4)
    assert paper["data"]["ade20k_root"]
    # the zoo's own pretrained= comes after collect.set's timm-hub, so the mmseg checkpoint wins
    assert paper["zoos"]["seg_upernet_vit"]["set"][-1].startswith("pretrained=/")
    assert "substitute_for" not in yaml.safe_load(
        (ROOT / "rpg/zoos/recipes/paper/ade20k_upernet_vit_b.yaml").read_text())
    assert get_zoo("mini/seg_nuclei").substitute_for == "ADE20K"


def test_collect_inputs_include_the_mmseg_config_file():
    from rpg.zoos.recipes import recipe_files

    files = recipe_files("mini/seg_nuclei")
    assert files[0].name == "seg_nuclei.yaml"
    assert files[-1] == ROOT / "rpg/segmentation/configs/mini_upernet_vit_nuclei.py"
    assert all(f.suffix == ".yaml" for f in recipe_files("mini/resnet18"))


@pytest.mark.slow   # tests/test_workflow.py dry-runs rule all at both scales; this one checks table2's commands
@pytest.mark.parametrize("overlay", [[], ["--configfile", "config/paper.yaml"]], ids=["mini", "paper"])
def test_table2_dry_run(overlay):
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([os.path.join(bindir, "snakemake"), "-n", "-p", "results/table2.csv", *overlay],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    recipe = "paper/ade20k_upernet_vit_b" if overlay else "mini/seg_nuclei"
    assert f"rpg collect --zoo {recipe}" in text and "rpg table table2" in text
    if overlay:
        assert "--preset large" in text and "--nproc_per_node 4" in text
