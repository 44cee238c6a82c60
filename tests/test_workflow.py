"""The Snakemake workflow and the DVC manifest.

- schema: the shipped configs validate, unknown keys at every level are errors, reported as ONE line
  naming the key (no schema dump), and so are cross-references (a table row naming no experiment);
- `snakemake -n` on every declared target (mini, paper overlay, smoke) with the expected jobs, and the
  shell commands it would run (threads, torchrun, paper seeds, a forced retrain that starts over);
- `snakemake --lint` is clean;
- a tiny end-to-end Table 1 run (tests/smoke/config/config.yaml) in a temporary working directory
  (`--directory`): CSV + PNG, then "Nothing to be done" on the second run; then an ablation table
  (two generators on ONE zoo) and a sampling table (one generator, two DDIM step counts) added with
  config entries only, where the zoo is collected once and the generator trained once; a changed
  `set` retrains that experiment only;
- a DVC round trip: commit + push the smoke artefacts to a temporary local remote, `git clone` +
  `dvc pull`, and Snakemake reruns nothing that DVC restored.

Nothing here writes to the repository's results/.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from snakemake.utils import update_config

from rpg.generator.config import RPGConfig
from rpg.zoos.recipes import recipe_files

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
MINI = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
PAPER_OVERLAY = REPO / "config" / "paper.yaml"
SMOKE_CONFIG = REPO / "tests" / "smoke" / "config" / "config.yaml"
SMOKE = yaml.safe_load(SMOKE_CONFIG.read_text())
TABLE1_IDS = ["resnet18", "resnet50", "vit_tiny", "vit_small", "vit_base", "convnext_atto", "convnext_large"]

# The rules call `python -m rpg ...`: the venv's python must come first on PATH.
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
       "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
       "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}


def run(cmd: list, cwd: Path = REPO, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    cmd = [str(c) for c in cmd]
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def snakemake(workdir: Path, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    """The repo's workflow run in `workdir` (its own config/config.yaml), from the repo root so the
    workflow profile profiles/default applies as it does for users."""
    cmd = [BIN / "snakemake", "--snakefile", REPO / "Snakefile", "--directory", workdir, *args]
    return run(cmd, check=check)


def dvc(cwd: Path, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([BIN / "dvc", *args], cwd=cwd, check=check)


def git(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return run(["git", *args], cwd=cwd)


def job_counts(output: str) -> dict[str, int]:
    """Parse Snakemake's "Job stats" table (printed by dry runs and real runs)."""
    if "Job stats:" not in output:
        return {}
    block = output.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    counts.pop("total", None)
    return counts


def shell_commands(output: str) -> list[str]:
    prefix = "Shell command: "
    return [line[len(prefix):] for line in output.splitlines() if line.startswith(prefix)]


def actionless_rules(output: str) -> set[str]:
    """Rules of a dry run's jobs that print no shell command, or `Shell command: None` (no action declared)."""
    out = set()
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \S+:\n)", output)[1:]:
        name = re.match(r"(?:local)?(?:rule|checkpoint) (\S+):", block).group(1)
        cmds = shell_commands(block.split("\n\n[", 1)[0])
        if not cmds or cmds == ["None"]:
            out.add(name)
    return out


def workdir_with(tmp_path: Path, config: Path | dict) -> Path:
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    text = config.read_text() if isinstance(config, Path) else yaml.safe_dump(config)
    (work / "config" / "config.yaml").write_text(text)
    return work


def validate(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    jsonschema.Draft202012Validator(SCHEMA).validate(cfg)
    return cfg


def overlay(base: dict, path: Path) -> dict:
    """What Snakemake does with --configfile: a key-by-key (recursive) update."""
    merged = copy.deepcopy(base)
    update_config(merged, yaml.safe_load(path.read_text()))
    return merged


# --------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------

def test_shipped_configs_validate():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    mini = validate(MINI)
    # (Table 1's entries; other tables add their own, e.g. table2 in tests/test_segmentation_config.py)
    assert mini["scale"] == "mini" and list(mini["experiments"])[:len(TABLE1_IDS)] == TABLE1_IDS
    assert {k: v for k, v in mini["tables"]["table1"].items() if k not in ("caption", "mini_substitute")} == {
        "builder": "table1", "rows": TABLE1_IDS, "paper": "resources/paper/table1.csv"}
    # every shipped table says, in its report caption, what it shows and what the mini scale substitutes
    assert all(entry.get("caption") and entry.get("mini_substitute") for entry in mini["tables"].values())
    # Table 1 as before this layout: one zoo per row, mini recipes, resnet18 trains 3000 steps
    assert {mini["experiments"][k]["zoo"] for k in TABLE1_IDS} == set(TABLE1_IDS) <= set(mini["zoos"])
    assert all(mini["zoos"][k]["recipe"] == f"mini/{k}" for k in TABLE1_IDS)
    assert mini["experiments"]["resnet18"]["set"] == ["train.steps=3000"]
    paper = validate(overlay(MINI, PAPER_OVERLAY))
    assert paper["scale"] == "paper" and paper["device"] == "cuda"
    # The overlay keeps the ids and names a paper recipe for every zoo.
    assert list(paper["experiments"])[:len(TABLE1_IDS)] == TABLE1_IDS == list(paper["zoos"])[:len(TABLE1_IDS)]
    assert set(mini["experiments"]) <= set(paper["experiments"]) and set(mini["zoos"]) <= set(paper["zoos"])
    assert all(paper["zoos"][k]["recipe"].startswith("paper/imagenet_") for k in TABLE1_IDS)
    assert all(z["recipe"].startswith("paper/") for z in paper["zoos"].values())
    large = {k for k in TABLE1_IDS if paper["experiments"][k].get("preset") == "large"}
    assert large == {"vit_base", "convnext_large"}
    assert all(paper["experiments"][k]["gpus"] == 4 for k in large)
    # the mini-only 3000-step override does not leak into the paper run (lists replace, not merge)
    assert "train.steps=3000" not in paper["experiments"]["resnet18"].get("set", [])
    validate(SMOKE)


def _set(cfg: dict, path: tuple, value) -> dict:
    d = cfg
    for key in path[:-1]:
        d = d.setdefault(key, {})
    d[path[-1]] = value
    return cfg


@pytest.mark.parametrize("path", [
    ("scael",),                                     # top level
    ("experiments", "resnet18", "lable"),           # inside an experiment entry
    ("experiments", "resnet18", "sample", "stpes"),
    ("zoos", "resnet18", "recipie"),
    ("sample", "nmu"),
    ("train", "steps"),
    ("collect", "num_checkpoints"),
    ("data", "imagenet"),
    ("tables", "table1", "row"),
])
def test_unknown_keys_are_errors_at_every_level(path):
    with pytest.raises(jsonschema.ValidationError):
        validate(_set(copy.deepcopy(MINI), path, 1))


@pytest.mark.parametrize("path, value", [
    (("device",), "gpu"),
    (("experiments", "Bad-Id"), {"zoo": "resnet18", "label": "x"}),   # ids become paths and wildcards
    (("experiments", "x"), {"label": "x"}),                           # no zoo
    (("variants", "x"), {"generator": "resnet18", "label": "x", "zoo": "resnet18"}),  # a variant has no zoo
    (("tables", "t"), {"rows": ["resnet18"]}),                        # no builder
    (("sample", "sampler"), "euler"),
    (("sample", "conditions"), "tasks:"),
    (("train", "set"), ["no_equals_sign"]),
    (("experiments", "vit_base", "gpus"), 0),
])
def test_bad_values_are_errors(path, value):
    with pytest.raises(jsonschema.ValidationError):
        validate(_set(copy.deepcopy(MINI), path, value))


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("config ")]


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c["sample"].update(nmu=3), "config sample: unknown key(s) nmu"),
    (lambda c: c["experiments"]["resnet18"].update(lable="x"), "config experiments.resnet18: unknown key(s) lable"),
    (lambda c: c["tables"]["table1"]["rows"].append("lenet"),
     "config tables.table1.rows: lenet not in experiments or variants"),
    (lambda c: c["experiments"]["resnet18"].update(zoo="lenet"),
     "config experiments.resnet18.zoo: lenet is not in zoos"),
    (lambda c: c["variants"].update(v={"generator": "lenet", "label": "v"}),
     "config variants.v.generator: lenet is not in experiments"),
    (lambda c: c["experiments"]["resnet18"].update(set=["train.stpes=3"]), "config experiments.resnet18: "),
])
def test_snakemake_config_errors_are_one_line(tmp_path, edit, expected):
    """A bad config fails the dry run with one line naming the key: no traceback-sized schema dump."""
    cfg = copy.deepcopy(MINI)
    edit(cfg)
    proc = snakemake(workdir_with(tmp_path, cfg), "-n", check=False)
    assert proc.returncode != 0
    lines = _error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith(expected), proc.stdout + proc.stderr
    assert "Failed validating" not in proc.stdout + proc.stderr       # jsonschema's dump of the schema
    assert len((proc.stdout + proc.stderr).splitlines()) < 12


# --------------------------------------------------------------------------------------------------
# Dry runs and lint
# --------------------------------------------------------------------------------------------------

SEVEN = {"collect": 7, "train": 7, "generate": 7, "evaluate": 7, "table": 1}


def table_jobs(cfg: dict, tables, extra_zoos: frozenset = frozenset()) -> dict[str, int]:
    """Jobs that building these tables (and collecting `extra_zoos`) needs, from the config alone: their rows
    (a shared zoo or generator once), the memory study a table reads, the language-model preparations of their
    zoos, the tables."""
    rows = {r for t in tables for r in cfg["tables"][t]["rows"]}
    variants = cfg.get("variants") or {}
    exps = {variants[r]["generator"] if r in variants else r for r in rows}
    zoos = {cfg["experiments"][e]["zoo"] for e in exps} | set(extra_zoos)
    counts = {"collect": len(zoos), "train": len(exps), "generate": len(rows), "evaluate": len(rows),
              "table": len(tables), "publish_table": len(tables)}
    for study in {cfg["tables"][t]["memory"]["study"] for t in tables if cfg["tables"][t].get("memory")}:
        counts[study] = 1            # a memory study a table reads (Table 8: rule fig8)
    # language-model zoos (Tab. 3) also need their converted base model and local lm-eval task, once each
    from rpg.lm.config import LM_MODELS, DoraZooConfig
    from rpg.zoos.recipes import load_recipe
    lm = [c for z in sorted(zoos) if isinstance(c := load_recipe(cfg["zoos"][z]["recipe"]), DoraZooConfig)]
    for kind, names in (("lm_model", {c.base_model for c in lm if c.base_model in LM_MODELS}),
                        ("lm_task", {c.task for c in lm if c.task})):
        if names:
            counts[kind] = len(names)
    return {k: v for k, v in counts.items() if v}


def all_jobs(cfg: dict) -> dict[str, int]:
    """Jobs of `rule all` for a config: every table's, plus the benchmarks, Fig. 8, the 198M generation and claims."""
    benches = cfg.get("benchmarks") or {}
    counts = {**table_jobs(cfg, list(cfg["tables"]), frozenset(b["zoo"] for b in benches.values())), "all": 1}
    if benches:
        counts.update(memory=len(benches), publish_memory=len(benches))
    fig8 = cfg.get("fig8") or {}
    if fig8:  # Fig. 8 is published on its own (and its memory study is built once, whoever reads it)
        counts.update(fig8=1, publish_fig8=1)
    if fig8.get("rpg_generate"):
        counts["fig8_generation"] = 1  # the untrained 198M generation, its own benchmark rule
    from rpg.tables.claims import CLAIMS
    if {n for c in CLAIMS for n in c.tables} & {*cfg["tables"], *(["fig8"] if fig8 else [])}:
        counts["claims"] = 1
    return counts


@pytest.mark.parametrize("targets, overlay_paper, expected", [
    ([], False, "all"),                                                        # default target: rule all
    (["results/table1.csv"], False, {**SEVEN, "publish_table": 1}),
    (["results/mini/table1.csv"], False, SEVEN),
    (["results/mini/generated/vit_base/manifest.json"], False, {"collect": 1, "train": 1, "generate": 1}),
    (["results/mini/runs/vit_base/generator.safetensors"], False, {"collect": 1, "train": 1}),
    (["results/mini/zoos/vit_base/manifest.json"], False, {"collect": 1}),
    (["results/table1.csv"], True, {**SEVEN, "publish_table": 1}),
    (["results/paper/table1.csv"], True, SEVEN),
    (["results/paper/metrics/convnext_large.json"], True, {"collect": 1, "train": 1, "generate": 1, "evaluate": 1}),
    # Table 8: 5 architectures' zoos, 25 generators (4 baselines + RPG per column), and the Fig. 8 memory study
    # whose paper-size records its cells report
    (["results/table8.csv"], False, {"collect": 5, "train": 25, "generate": 25, "evaluate": 25, "fig8": 1,
                                     "table": 1, "publish_table": 1}),
    (["results/table8.csv"], True, {"collect": 5, "train": 25, "generate": 25, "evaluate": 25, "fig8": 1,
                                    "table": 1, "publish_table": 1}),
    # §4 and Tab. 15 at paper scale: the task zoo and 4 seeds zoos; 3 task generators (gated, whole sequence,
    # retrieval) + 8 permutation-study ones; 5 task rows (2 of them `_seen` variants) + 8; 6 tables
    (["results/table9.csv", "results/table14.csv", "results/table10.csv", "results/fig6.png", "results/fig10.png",
      "results/table15.csv"], True,
     {"collect": 5, "train": 11, "generate": 13, "evaluate": 13, "table": 6, "publish_table": 6}),
])
def test_dry_run_every_target(tmp_path, targets, overlay_paper, expected):
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    extra = ["--configfile", PAPER_OVERLAY] if overlay_paper else []
    out = snakemake(work, *targets, *extra, "-n").stdout
    assert job_counts(out) == (all_jobs(MINI) if expected == "all" else expected)
    assert actionless_rules(out) <= {"all"}     # every other job runs something (a rule without shell did not)
    scale = "paper" if overlay_paper else "mini"
    assert f"results/{scale}/zoos/" in out and f"results/{'mini' if overlay_paper else 'paper'}/" not in out


# Each mini table alone schedules exactly the jobs its config entries need (nothing of another table).
# Three in the default suite (a table of trained generators, one of sampling variants, one of DoRA adapters);
# every table with -m slow (each dry run of the mini DAG takes seconds).
EVERY_TABLE = [pytest.param(t, marks=[] if t in ("table4a", "table7", "table3") else pytest.mark.slow)
               for t in MINI["tables"]]


@pytest.mark.parametrize("table", EVERY_TABLE)
def test_dry_run_one_table_schedules_only_what_it_needs(tmp_path, table):
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    out = snakemake(work, f"results/{table}.csv", "-n").stdout
    assert job_counts(out) == table_jobs(MINI, [table])


SMOKE_TABLES = {"table1": {"collect": 2, "train": 2, "generate": 2, "evaluate": 2},
                "ablation_pos": {"collect": 1, "train": 2, "generate": 2, "evaluate": 2},
                "sampling_ddim": {"collect": 1, "train": 1, "generate": 2, "evaluate": 2}}


@pytest.mark.parametrize("table", list(SMOKE_TABLES))
def test_dry_run_smoke_tables(tmp_path, table):
    """Every table of the smoke config: a shared zoo is collected once, a variant trains nothing of its own."""
    work = workdir_with(tmp_path, SMOKE_CONFIG)
    out = snakemake(work, f"results/{table}.csv", "-n").stdout
    assert job_counts(out) == {**SMOKE_TABLES[table], "table": 1, "publish_table": 1}
    cmds = shell_commands(out)
    builder = SMOKE["tables"][table]["builder"]
    assert any(c.startswith(f"python -m rpg table {builder} ") for c in cmds)
    if table == "sampling_ddim":   # both variants sample the one vit_tiny run, with their own steps
        gen = sorted(c for c in cmds if c.startswith("python -m rpg generate"))
        assert all("--run results/smoke/runs/vit_tiny " in c for c in gen)
        assert ["--steps 2" in c for c in gen] == [True, False] and "--steps 5" in gen[1]


def test_dry_run_all_smoke(tmp_path):
    out = snakemake(workdir_with(tmp_path, SMOKE_CONFIG), "-n").stdout
    assert job_counts(out) == {"collect": 2, "train": 3, "generate": 5, "evaluate": 5, "table": 3,
                               "publish_table": 3, "claims": 1, "all": 1}


def test_dry_run_paper_commands(tmp_path):
    """Paper overlay: paper recipes and presets, the ImageNet root, torchrun on 4 GPUs for the Large
    rows, the official seed 995 on ViT-B's generator (rpg-reference.md §9.1) and no other seed."""
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    cmds = shell_commands(snakemake(work, "results/table1.csv", "--configfile", PAPER_OVERLAY, "-n").stdout)
    train = {re.search(r"--checkpoints results/paper/zoos/(\w+)", c).group(1): c
             for c in cmds if " train " in c}
    assert set(train) == set(TABLE1_IDS)
    for exp, cmd in train.items():
        if exp in ("vit_base", "convnext_large"):
            assert cmd.startswith("torchrun --standalone --nproc_per_node 4 -m rpg train --method rpg ")
            assert "--preset large" in cmd
        else:
            assert cmd.startswith("python -m rpg train --method rpg ") and "--preset base" in cmd
        assert "--device cuda" in cmd
        assert ("--set train.seed=995" in cmd) == (exp == "vit_base")
        assert "train.steps=3000" not in cmd
    collect = [c for c in cmds if "rpg collect" in c]
    assert len(collect) == 7
    assert all("--set imagenet_root=/data/imagenet" in c and "--zoo paper/imagenet_" in c for c in collect)


@pytest.mark.parametrize("cores, threads, expected", [
    (1, None, None),           # one job at a time: the CLI picks the idle cores itself
    (2, None, min(2, os.cpu_count() or 1)),   # each job gets what Snakemake reserved (<= --cores)
    (2, 1, 1),                 # two 1-thread jobs side by side
])
def test_threads_follow_snakemake(tmp_path, cores, threads, expected):
    cfg = copy.deepcopy(MINI)
    cfg["threads"] = threads
    out = snakemake(workdir_with(tmp_path, cfg), "results/mini/table1.csv", "--cores", cores, "-n").stdout
    cmds = [c for c in shell_commands(out) if re.match(r"python -m rpg (collect|train|generate|evaluate) ", c)]
    assert len(cmds) == 28
    flags = {m.group(1) if (m := re.search(r"--threads (\d+)", c)) else None for c in cmds}
    assert flags == {None if expected is None else str(expected)}


@pytest.mark.parametrize("overlay_paper", [False, True], ids=["mini", "paper"])
def test_collect_declares_its_recipe_files(tmp_path, overlay_paper):
    """Editing a recipe must recollect the zoos built from it: the files are inputs of `collect`."""
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    extra = ["--configfile", PAPER_OVERLAY] if overlay_paper else []
    cfg = overlay(MINI, PAPER_OVERLAY) if overlay_paper else MINI
    out = snakemake(work, "results/table1.csv", *extra, "-n").stdout
    blocks = out.split("rule collect:")[1:]
    assert len(blocks) == 7
    for zoo in (cfg["zoos"][k] for k in TABLE1_IDS):   # the zoos results/table1.csv collects
        files = [str(REPO / p) for p in recipe_files(zoo["recipe"])]
        assert files
        block = next(b for b in blocks if f"--zoo {zoo['recipe']} " in b)
        inputs = block.split("input:", 1)[1].splitlines()[0]
        assert all(f in inputs for f in files)


def test_scales_never_mix(tmp_path):
    """A paper-scale target without the paper overlay has no rule (the scale wildcard is pinned)."""
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    proc = snakemake(work, "results/paper/table1.csv", "-n", check=False)
    assert proc.returncode != 0 and "results/paper/table1.csv" in proc.stdout + proc.stderr


def test_documented_command_order(tmp_path):
    """The user's command works with the target first (--resources takes several values and would
    swallow a target written after it: README, the command line)."""
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    ok = snakemake(work, "results/table1.csv", "--cores", "1", "--resources", "gpu=1", "-n")
    assert job_counts(ok.stdout)["train"] == 7
    bad = snakemake(work, "-n", "--cores", "1", "--resources", "gpu=1", "results/table1.csv", check=False)
    assert bad.returncode != 0


@pytest.mark.parametrize("extra", [[], ["--configfile", PAPER_OVERLAY]], ids=["mini", "paper"])
def test_lint_is_clean(extra):
    proc = run([BIN / "snakemake", "--lint", *extra])
    assert "Lints for" not in proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_snakefmt_is_clean():
    run([BIN / "snakefmt", "--check", "Snakefile", "workflow/"])


# --------------------------------------------------------------------------------------------------
# DVC manifest
# --------------------------------------------------------------------------------------------------

def test_dvc_yaml_tracks_only_generated_artefacts():
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert spec["vars"] == ["config/config.yaml"]
    kinds_of = {"zoo": ["zoos"], "experiment": ["runs", "generated", "metrics"], "variant": ["generated", "metrics"],
                "benchmark": ["${key}.json", "${key}.png"], "fig8": ["fig8.json", "fig8.csv", "fig8.png"],
                "fig8_generation": ["fig8_generation.json"]}
    target_of = {"zoo": r"zoos/\$\{key\}/manifest\.json", "experiment": r"metrics/\$\{key\}\.json",
                 "variant": r"metrics/\$\{key\}\.json", "benchmark": r"\$\{key\}\.json", "fig8": r"fig8\.json",
                 "fig8_generation": r"fig8_generation\.json"}
    assert {name.removeprefix("paper_") for name in spec["stages"]} == set(kinds_of)
    for name, stage in spec["stages"].items():
        body = stage.get("do", stage)                  # a foreach group or a single stage
        kind = name.removeprefix("paper_")
        assert body["frozen"] is True
        assert "deps" not in body                      # DVC never decides what to rerun
        cmd = " ".join(body["cmd"].split())
        # the exact Snakemake call for the stage's first output, target first (before the variadic options)
        assert re.fullmatch(rf"snakemake results/\S+/{target_of[kind]}"
                            r"( --configfile config/paper\.yaml)? --cores 1 --resources gpu=1", cmd), cmd
        scale = "paper" if name.startswith("paper_") else "${scale}"
        kinds = []
        for out in body["outs"]:
            (path, opts), = out.items()
            assert opts == {"persist": True} and path.startswith(f"results/{scale}/")
            kinds.append(path.split("/")[2])
        assert kinds == kinds_of[kind]                 # never a dataset
    listed = dvc(REPO, "stage", "list", "--name-only").stdout.split()
    for group, ids in (("zoo", MINI["zoos"]), ("experiment", MINI["experiments"]), ("paper_zoo", MINI["zoos"]),
                       ("paper_experiment", MINI["experiments"])):
        assert [s for s in listed if s.startswith(f"{group}@")] == [f"{group}@{a}" for a in ids]


def test_dvc_stages_follow_the_config(tmp_path):
    """The smoke config: one stage per zoo, experiment and variant; a variant stores no run folder."""
    work = workdir_with(tmp_path, SMOKE_CONFIG)
    shutil.copy(REPO / "dvc.yaml", work / "dvc.yaml")
    git(work, "init", "-q")
    dvc(work, "init", "-q")
    listed = dvc(work, "stage", "list").stdout
    stages = dict(line.split(None, 1) for line in listed.splitlines() if line.strip())
    assert [s for s in stages if not s.startswith("paper_")] == (
        [f"zoo@{z}" for z in SMOKE["zoos"]] + [f"experiment@{e}" for e in SMOKE["experiments"]]
        + [f"variant@{v}" for v in SMOKE["variants"]] + ["fig8", "fig8_generation"])   # no `benchmarks` here
    for v in SMOKE["variants"]:
        assert "runs" not in stages[f"variant@{v}"]


def test_dvc_config_analytics_off_and_default_remote():
    cfg = (REPO / ".dvc" / "config").read_text()
    assert re.search(r"analytics\s*=\s*false", cfg)
    assert re.search(r"remote\s*=\s*storage", cfg)
    # relative to .dvc/: a sibling of the repository, outside the git tree
    assert re.search(r"url\s*=\s*\.\./\.\./rpg-dvc-remote", cfg)
    ignored = (REPO / ".dvcignore").read_text().split()
    assert "train_state.pt" in ignored


# --------------------------------------------------------------------------------------------------
# End to end (smoke scale) and the DVC round trip
# --------------------------------------------------------------------------------------------------

SMOKE_IDS = ["resnet18", "vit_tiny"]
USER_CALL = ("results/table1.csv", "--cores", "1", "--resources", "gpu=1")
PARALLEL = ("--cores", "2", "--resources", "gpu=2")   # two jobs at a time (most of a smoke job is start-up)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke-scale Table 1 run in a temporary working directory (shared by the tests below)."""
    root = tmp_path_factory.mktemp("smoke")
    work = workdir_with(root, SMOKE_CONFIG)
    t0 = time.monotonic()
    proc = snakemake(work, "results/table1.csv", *PARALLEL)
    return {"root": root, "work": work, "log": proc.stdout + proc.stderr, "seconds": time.monotonic() - t0}


def benchmarks(work: Path, rule: str) -> list[str]:
    """Ids a rule ran for: every job writes its benchmark file (results/<scale>/benchmarks/<rule>/<id>.tsv)."""
    return sorted(p.stem for p in (work / "results" / "smoke" / "benchmarks" / rule).glob("*.tsv"))


def test_smoke_end_to_end(smoke):
    work, log = smoke["work"], smoke["log"]
    print(f"smoke Table 1 run: {smoke['seconds']:.1f} s")
    assert job_counts(log) == {"collect": 2, "train": 2, "generate": 2, "evaluate": 2, "table": 1,
                               "publish_table": 1}
    table = work / "results" / "table1.csv"
    assert table.read_bytes() == (work / "results" / "smoke" / "table1.csv").read_bytes()
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["architecture"] for r in rows] == ["ResNet-18", "ViT-Tiny"]
    for r in rows:
        assert r["scale"] == "smoke"
        assert r["dataset"] == "Fashion-MNIST (substitute for ImageNet-1K)"
        assert (r["n_original"], r["n_generated"]) == ("3", "2")
        assert 0.0 <= float(r["minimum"]) <= float(r["median"]) <= float(r["best"]) <= 100.0
        assert float(r["params"]) > 0
    assert rows[0]["paper_original"] == "70.0" and rows[1]["paper_best"] == "75.4"
    assert (work / "results" / "table1.png").read_bytes()[:4] == b"\x89PNG"
    for exp in SMOKE_IDS:
        assert (work / "results" / "smoke" / "zoos" / exp / "manifest.json").is_file()
        assert (work / "results" / "smoke" / "runs" / exp / "generator.safetensors").is_file()
        assert len(list((work / "results" / "smoke" / "generated" / exp).glob("*.safetensors"))) == 2
        assert (work / "results" / "smoke" / "logs" / "train" / f"{exp}.log").is_file()
    # The second identical call has nothing to do, and the repository's results/ was never touched.
    again = snakemake(work, *USER_CALL)
    assert "Nothing to be done" in again.stdout + again.stderr
    # (Checked by content, not mtimes: a real run may be writing there at the same time.)
    assert not (REPO / "results" / "smoke").exists()
    for published in (REPO / "results").glob("table*.csv"):
        assert ",smoke," not in published.read_text()


def test_smoke_ablation_and_sampling_tables(smoke):
    """Two tables added with config entries only (tests/smoke/config/config.yaml): an ablation on ONE
    zoo (2D vs 1D position embedding) and a sampling table (the vit_tiny generator with 2 and 5 DDIM
    steps). The shared zoo is not collected again, the shared generator is not trained again."""
    work = smoke["work"]
    proc = snakemake(work, "results/ablation_pos.csv", "results/sampling_ddim.csv", "results/claims.csv", *PARALLEL)
    assert job_counts(proc.stdout + proc.stderr) == {"train": 1, "generate": 3, "evaluate": 3, "table": 2,
                                                     "publish_table": 2, "claims": 1}
    # the claims report judges what the smoke config has of the paper's tables: Table 1, at smoke scale
    with (work / "results" / "claims.csv").open(newline="") as f:
        claims = {r["id"]: r for r in csv.DictReader(f)}
    assert claims["tab1"]["scale"] == "smoke" and claims["tab1"]["verdict"] in ("holds", "does not hold")
    assert claims["tab7"]["verdict"] == "inconclusive"
    # over both runs: each zoo collected once, each generator trained once, the variants never
    assert benchmarks(work, "collect") == sorted(SMOKE["zoos"])
    assert benchmarks(work, "train") == sorted(SMOKE["experiments"])
    assert benchmarks(work, "generate") == sorted([*SMOKE["experiments"], *SMOKE["variants"]])
    runs = work / "results" / "smoke" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == sorted(SMOKE["experiments"])
    # the position embedding in effect (condition.position `auto` resolves to 2d for the layer tokenizer)
    positions = {e: RPGConfig.from_dict(json.loads((runs / e / "config.json").read_text())).position
                 for e in ("vit_tiny", "pos_1d")}
    assert positions == {"vit_tiny": "2d", "pos_1d": "1d"}
    for variant, steps in (("vit_tiny_ddim2", 2), ("vit_tiny_ddim5", 5)):
        manifest = json.loads((work / "results" / "smoke" / "generated" / variant / "manifest.json").read_text())
        assert manifest["steps"] == steps and manifest["sampler"] == "ddim"
        assert len(manifest["files"]) == SMOKE["sample"]["num"]
    for table in ("ablation_pos", "sampling_ddim"):
        with (work / "results" / f"{table}.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 2
        labels = [SMOKE[kind][r]["label"] for r in SMOKE["tables"][table]["rows"]
                  for kind in ("experiments", "variants") if r in SMOKE[kind]]
        assert [next(v for v in row.values() if v in labels) for row in rows] == labels
        assert (work / "results" / f"{table}.png").read_bytes()[:4] == b"\x89PNG"
    again = snakemake(work, *PARALLEL)        # rule all: every table is up to date
    assert "Nothing to be done" in again.stdout + again.stderr


# --------------------------------------------------------------------------------------------------
# `snakemake --report`: every table and figure with its caption
# --------------------------------------------------------------------------------------------------

BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")

# Run inside the report page by a headless browser: for every result, click through the report's own
# navigation (Results > category > the file's info button) and record the text the page then shows.
REPORT_PROBE = """
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const click = text => {
    const hits = [...document.querySelectorAll('a,button,li,span,div,td,p')].filter(e => e.textContent.trim() === text);
    if (!hits.length) throw new Error('nothing to click: ' + text);
    hits[hits.length - 1].click();
  };
  const shown = {};
  try {
    for (let i = 0; i < 50 && !document.body.innerText.includes('Results'); i++) await sleep(100);   // app start
    for (const [category, groups] of Object.entries(categories)) {
      for (const files of Object.values(groups)) {
        for (const file of files) {
          click('Results'); await sleep(200);
          click(category); await sleep(200);
          const row = [...document.querySelectorAll('tr')].find(
            r => r.firstElementChild && r.firstElementChild.textContent.trim() === file);
          if (!row) throw new Error('no row for ' + file);
          row.querySelector('[iconname="information-circle"]').click(); await sleep(200);
          shown[file] = document.body.innerText;
        }
      }
    }
  } catch (e) { shown.__error = String(e); }
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(shown);
  document.body.appendChild(pre);
})();
"""


def report_data(html: str, name: str) -> dict:
    """A JSON object the report embeds as `var NAME = {...};` (results with captions, categories)."""
    start = html.index(f'var {name} = {{"') + len(f"var {name} = ")      # the data, not a library's variable
    return json.JSONDecoder().raw_decode(html, start)[0]


@pytest.fixture(scope="module")
def smoke_report(smoke):
    work = smoke["work"]
    snakemake(work, *PARALLEL)                        # every smoke table (a no-op after the tests above)
    path = work / "report.html"
    snakemake(work, "--report", path)
    return path


def _expected_captions() -> dict[str, list[str]]:
    """results/smoke/<table>.csv/.png -> the configured texts its caption must show."""
    expected = {}
    for table, entry in SMOKE["tables"].items():
        for ext in ("csv", "png"):
            expected[f"results/smoke/{table}.{ext}"] = [table, entry["caption"], entry["mini_substitute"]]
    return expected


def test_report_embeds_every_table_with_its_caption(smoke_report):
    """The report holds every table (CSV and plot) and the claims, each with the caption of its config
    entry: what it shows and what this scale substitutes."""
    html = smoke_report.read_text()
    results = report_data(html, "results")
    expected = _expected_captions()
    assert set(expected) | {"results/claims.csv"} == set(results)
    for path, texts in expected.items():
        caption = re.sub(r"<[^>]+>", "", results[path]["caption"])
        assert all(" ".join(t.split()) in " ".join(caption.split()) for t in texts), (path, caption)
    assert "smoke" in results["results/claims.csv"]["caption"]


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium (Debian chromium-headless-shell; scripts/setup.sh)")
def test_report_renders_in_a_headless_browser(smoke_report, tmp_path):
    """A real browser opens the report, and its own navigation shows each table's caption."""
    html = smoke_report.read_text()
    end = html.rindex("</body>")
    probe = tmp_path / "probe.html"
    probe.write_text(html[:end] + f"<script>{REPORT_PROBE}</script>" + html[end:])
    proc = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--virtual-time-budget=30000",
                           "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=300)
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    import html as html_lib
    shown = json.loads(html_lib.unescape(m.group(1)))
    assert "__error" not in shown, shown.get("__error")
    for path, texts in _expected_captions().items():
        page = " ".join(shown[path].split())
        assert path in page and all(" ".join(t.split()) in page for t in texts), (path, page[:500])


def test_changed_set_retrains_that_experiment_only(smoke, tmp_path):
    """Snakemake's params trigger sees the experiment's resolved generator config: a new `set` on one
    experiment retrains it (and what samples it), nothing else."""
    work = smoke["work"]
    cfg = copy.deepcopy(SMOKE)
    cfg["experiments"]["resnet18"]["set"] = ["train.lr=0.002"]
    (work / "config" / "changed.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(work, "results/table1.csv", "--configfile", work / "config" / "changed.yaml", "-n").stdout
    train = [c for c in shell_commands(out) if " train " in c]
    assert len(train) == 1 and "--out results/smoke/runs/resnet18 " in train[0]
    # the retrained generator's samples and metrics follow, although their inputs are pinned
    counts = job_counts(out)
    assert (counts["train"], counts["generate"], counts["evaluate"]) == (1, 1, 1)
    assert "collect" not in counts
    assert any("--run results/smoke/runs/resnet18 " in c for c in shell_commands(out) if " generate " in c)


def test_changed_sampling_or_zoo_reruns_what_depends_on_it(smoke):
    """Pinned (ancient) inputs still follow a real change upstream: new sample settings regenerate and
    re-evaluate that row only; a changed zoo recipe recollects the zoo, then retrains, regenerates and
    re-evaluates every row trained on it. The unchanged config schedules nothing."""
    work = smoke["work"]
    assert "Nothing to be done" in "".join(
        (r := snakemake(work, "results/table1.csv", "-n")).stdout + r.stderr
    )

    def plan(name, cfg):
        (work / "config" / name).write_text(yaml.safe_dump(cfg))
        out = snakemake(work, "results/table1.csv", "--configfile", work / "config" / name, "-n").stdout
        return job_counts(out), shell_commands(out)

    sampled = copy.deepcopy(SMOKE)
    sampled["experiments"]["vit_tiny"]["sample"] = {"steps": SMOKE["sample"]["steps"] + 1}
    counts, cmds = plan("sampled.yaml", sampled)
    assert (counts.get("train", 0), counts["generate"], counts["evaluate"]) == (0, 1, 1)
    assert any("--out results/smoke/generated/vit_tiny " in c for c in cmds if " generate " in c)

    recollected = copy.deepcopy(SMOKE)
    recollected["zoos"]["resnet18"]["set"] = ["seed=1"]
    counts, cmds = plan("recollected.yaml", recollected)
    assert (counts["collect"], counts["train"], counts["generate"], counts["evaluate"]) == (1, 1, 1, 1)
    assert any("--out results/smoke/runs/resnet18 " in c for c in cmds if " train " in c)


def test_an_interrupted_chain_resumes_downstream(smoke, tmp_path):
    """An invocation that regenerated a set and stopped before evaluating it (here: a narrower target) leaves
    metrics whose `generation` record is not the set's manifest: the next invocation re-evaluates that row
    although the config agrees with every artefact."""
    work = tmp_path / "work"
    shutil.copytree(smoke["work"], work)              # copy2 keeps mtimes; .snakemake metadata comes along
    sampled = copy.deepcopy(SMOKE)
    sampled["experiments"]["vit_tiny"]["sample"] = {"steps": SMOKE["sample"]["steps"] + 1}
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(sampled))
    snakemake(work, "results/smoke/generated/vit_tiny/manifest.json", *PARALLEL)
    counts = job_counts(snakemake(work, "results/table1.csv", "-n").stdout)
    assert counts.get("generate", 0) == 0 and counts["evaluate"] == 1


def test_forced_retrain_starts_over(smoke):
    """`--forcerun train` on a finished run drops its saved state, so training starts from step 0 instead
    of "resuming" the finished state; the generator equals the first one (same seed and threads)."""
    work = smoke["work"]
    run_dir = work / "results" / "smoke" / "runs" / "resnet18"
    before = (run_dir / "generator.safetensors").read_bytes()
    target = "results/smoke/runs/resnet18/generator.safetensors"
    plan = shell_commands(snakemake(work, target, "--forcerun", "train", *PARALLEL, "-n").stdout)
    assert plan[0].startswith("rm -f results/smoke/runs/resnet18/train_state.pt && python -m rpg train ")
    snakemake(work, target, "--forcerun", "train", *PARALLEL)
    log = (work / "results" / "smoke" / "logs" / "train" / "resnet18.log").read_text()
    assert "resuming" not in log and "step 1/" in log
    assert (run_dir / "generator.safetensors").read_bytes() == before


def test_dvc_round_trip(smoke, tmp_path):
    """commit + push the smoke artefacts, then a fresh clone + `dvc pull` restores them byte for byte
    and Snakemake recomputes none of them."""
    work, root = smoke["work"], smoke["root"]
    remote = tmp_path / "remote"
    # The working directory becomes a project checkout with the shipped DVC files; its
    # config/config.yaml (the smoke one) is what dvc.yaml's `vars` reads.
    git(work, "init", "-q")
    dvc(work, "init", "-q")
    shutil.copy(REPO / "dvc.yaml", work / "dvc.yaml")
    shutil.copy(REPO / ".dvcignore", work / ".dvcignore")
    shutil.copy(REPO / ".dvc" / "config", work / ".dvc" / "config")
    shutil.copy(REPO / ".gitignore", work / ".gitignore")           # results/ is git-ignored
    dvc(work, "remote", "add", "-d", "-f", "storage", remote)        # the documented repoint command
    snakemake(work, *PARALLEL)                        # every smoke table (a no-op after the tests above)
    stages = ["zoo", "experiment", "variant"]         # every stage group the smoke config fills
    dvc(work, "commit", "-f", *stages)                # the maintainer loop (dvc.yaml)
    dvc(work, "push", *stages)
    # What a maintainer commits: the DVC files and the config. results/ stays git-ignored (DVC writes
    # no .gitignore of its own there), so metrics and tables are recomputed, never cloned.
    assert not list((work / "results").rglob(".gitignore"))
    git(work, "add", "dvc.yaml", "dvc.lock", ".dvcignore", ".dvc", "config", ".gitignore")
    git(work, "commit", "-q", "-m", "smoke artefacts")
    assert "results/smoke/zoos/resnet18" in (work / "dvc.lock").read_text()

    clone = root / "clone"
    git(root, "clone", "-q", work, clone)
    assert not (clone / "results").exists()
    dvc(clone, "pull", *stages)
    for arch in SMOKE_IDS:
        for kind in ("zoos", "runs", "generated"):
            original, restored = (base / "results" / "smoke" / kind / arch for base in (work, clone))
            files = {p.relative_to(original) for p in original.rglob("*") if p.is_file()}
            # .dvcignore keeps training-resume state, the token cache and the run lock out of the remote
            kept = {f for f in files if f.name not in ("train_state.pt", "tokens.npy", ".lock")}
            assert {p.relative_to(restored) for p in restored.rglob("*") if p.is_file()} == kept
            assert all((restored / f).read_bytes() == (original / f).read_bytes() for f in kept)
        assert (clone / "results" / "smoke" / "runs" / arch / "generator.safetensors").is_file()
        metrics = Path("results", "smoke", "metrics", f"{arch}.json")
        assert (clone / metrics).read_bytes() == (work / metrics).read_bytes()
    # No .snakemake metadata and fresh mtimes: only the table is left.
    plan = snakemake(clone, *USER_CALL, "-n")
    assert job_counts(plan.stdout) == {"table": 1, "publish_table": 1}
    # `snakemake` with no target: only the tables (with their plots) and the claims report
    everything = job_counts(snakemake(clone, "--cores", "1", "-n").stdout)
    tables = len(SMOKE["tables"])
    assert everything == {"all": 1, "table": tables, "publish_table": tables, "claims": 1}
    # pinned() is what protects them: make a zoo manifest newer than its generator (a pull can
    # restore files in any order) and compare with reuse_artifacts=False.
    now = time.time()
    for p in (clone / "results").rglob("*"):
        os.utime(p, (now, now))
    # every input newer than what was made from it (zoo > generator > generated set > metrics); the
    # pulled records all agree, so all stay pinned
    smoke_dir = clone / "results" / "smoke"
    for later, path in enumerate(("generated/resnet18/manifest.json", "runs/resnet18/generator.safetensors",
                                  "zoos/resnet18/manifest.json"), start=1):
        os.utime(smoke_dir / path, (now + 60 * later, now + 60 * later))
    pinned_plan = job_counts(snakemake(clone, *USER_CALL, "-n").stdout)
    assert not {"train", "generate", "evaluate"} & set(pinned_plan)
    unpinned = job_counts(snakemake(clone, *USER_CALL, "-n", "--config", "reuse_artifacts=False").stdout)
    assert (unpinned["train"], unpinned["generate"], unpinned["evaluate"]) == (1, 1, 1)
