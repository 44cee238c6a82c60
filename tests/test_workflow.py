"""The Snakemake workflow and the DVC manifest.

- schema: the shipped configs validate, unknown keys at every level are errors;
- `snakemake -n` on every declared target (mini, paper overlay, smoke) with the expected jobs;
- `snakemake --lint` is clean;
- a tiny end-to-end Table 1 run (tests/smoke/config/config.yaml) in a temporary working directory
  (`--directory`, the way the anchors' template runs its .test/ config): CSV + PNG, then "Nothing to be
  done" on the second run;
- a DVC round trip: commit + push the smoke artefacts to a temporary local remote, `git clone` +
  `dvc pull`, and Snakemake reruns nothing that DVC restored.

Nothing here writes to the repository's results/.
"""

from __future__ import annotations

import copy
import csv
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

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
MINI = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
PAPER_OVERLAY = REPO / "config" / "paper.yaml"
SMOKE_CONFIG = REPO / "tests" / "smoke" / "config" / "config.yaml"
TABLE1_IDS = ["resnet18", "resnet50", "vit_tiny", "vit_small", "vit_base", "convnext_atto", "convnext_large"]

# The rules call `python -m rpg ...`: the venv's python must come first on PATH.
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
       "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
       "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}


def run(cmd: list, cwd: Path = REPO, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
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
    block = output.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    counts.pop("total", None)
    return counts


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
    assert mini["scale"] == "mini" and list(mini["architectures"]) == TABLE1_IDS
    assert mini["tables"]["table1"]["rows"] == TABLE1_IDS
    paper = validate(overlay(MINI, PAPER_OVERLAY))
    assert paper["scale"] == "paper" and paper["device"] == "cuda"
    # The overlay keeps the row ids and names a paper zoo for every one of them.
    assert list(paper["architectures"]) == TABLE1_IDS
    assert all(a["zoo"].startswith("paper/imagenet_") for a in paper["architectures"].values())
    large = {k for k, a in paper["architectures"].items() if a.get("preset") == "large"}
    assert large == {"vit_base", "convnext_large"}
    assert all(paper["architectures"][k]["gpus"] == 4 for k in large)
    validate(yaml.safe_load(SMOKE_CONFIG.read_text()))


def _set(cfg: dict, path: tuple, value) -> dict:
    d = cfg
    for key in path[:-1]:
        d = d.setdefault(key, {})
    d[path[-1]] = value
    return cfg


@pytest.mark.parametrize("path", [
    ("scael",),                                     # top level
    ("architectures", "resnet18", "lable"),         # inside an architecture entry
    ("generate", "nmu"),
    ("train", "steps"),
    ("collect", "num_checkpoints"),
    ("data", "imagenet"),
    ("tables", "table1", "row"),
])
def test_unknown_keys_are_errors_at_every_level(path):
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        validate(_set(copy.deepcopy(MINI), path, 1))


@pytest.mark.parametrize("path, value", [
    (("device",), "gpu"),
    (("architectures", "Bad-Id"), {"label": "x"}),   # row ids become paths and wildcards
    (("tables", "figure1"), {"rows": ["resnet18"], "paper": "x.csv"}),
    (("generate", "sampler"), "euler"),
    (("train", "set"), ["no_equals_sign"]),
    (("architectures", "vit_base", "gpus"), 0),
])
def test_bad_values_are_errors(path, value):
    with pytest.raises(jsonschema.ValidationError):
        validate(_set(copy.deepcopy(MINI), path, value))


def test_snakemake_applies_the_schema(tmp_path):
    work = workdir_with(tmp_path, {**MINI, "generate": {**MINI["generate"], "nmu": 3}})
    proc = snakemake(work, "-n", check=False)
    assert proc.returncode != 0
    assert "Additional properties are not allowed ('nmu' was unexpected)" in proc.stdout + proc.stderr
    bad_row = copy.deepcopy(MINI)
    bad_row["tables"]["table1"]["rows"].append("lenet")
    work2 = workdir_with(tmp_path / "b", bad_row)
    proc = snakemake(work2, "-n", check=False)
    assert proc.returncode != 0
    assert "tables.table1.rows: lenet not in architectures" in proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------------
# Dry runs and lint
# --------------------------------------------------------------------------------------------------

SEVEN = {"collect": 7, "train": 7, "generate": 7, "evaluate": 7, "table1": 1}


@pytest.mark.parametrize("targets, overlay_paper, expected", [
    ([], False, {**SEVEN, "publish_table": 1, "all": 1}),                      # default target: rule all
    (["results/table1.csv"], False, {**SEVEN, "publish_table": 1}),
    (["results/table1.png"], False, {**SEVEN, "publish_table": 1}),
    (["results/mini/table1.csv"], False, SEVEN),
    (["results/mini/generated/vit_base/manifest.json"], False, {"collect": 1, "train": 1, "generate": 1}),
    (["results/table1.csv"], True, {**SEVEN, "publish_table": 1}),
    (["results/paper/table1.csv"], True, SEVEN),
])
def test_dry_run_every_target(tmp_path, targets, overlay_paper, expected):
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    extra = ["--configfile", PAPER_OVERLAY] if overlay_paper else []
    out = snakemake(work, *targets, *extra, "-n").stdout
    assert job_counts(out) == expected
    scale = "paper" if overlay_paper else "mini"
    assert f"results/{scale}/zoos/" in out and f"results/{'mini' if overlay_paper else 'paper'}/" not in out


def test_dry_run_paper_commands(tmp_path):
    """Paper overlay: paper zoos and presets, the ImageNet root, torchrun on 4 GPUs for the Large rows."""
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    out = snakemake(work, "results/table1.csv", "--configfile", PAPER_OVERLAY, "-n").stdout
    prefix = "Shell command: "
    cmds = [line[len(prefix):] for line in out.splitlines() if line.startswith(prefix)]
    train = {re.search(r"--checkpoints results/paper/zoos/(\w+)", c).group(1): c
             for c in cmds if " train " in c}
    assert set(train) == set(TABLE1_IDS)
    for arch, cmd in train.items():
        if arch in ("vit_base", "convnext_large"):
            assert cmd.startswith("torchrun --standalone --nproc_per_node 4 -m rpg train")
            assert "--preset large" in cmd
        else:
            assert cmd.startswith("python -m rpg train") and "--preset base" in cmd
        assert "--device cuda" in cmd
    collect = [c for c in cmds if "rpg collect" in c]
    assert len(collect) == 7
    assert all("--set imagenet_root=/data/imagenet" in c and "--zoo paper/imagenet_" in c for c in collect)


def test_scales_never_mix(tmp_path):
    """A paper-scale target without the paper overlay has no rule (the scale wildcard is pinned)."""
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    proc = snakemake(work, "results/paper/table1.csv", "-n", check=False)
    assert proc.returncode != 0 and "No rule to produce results/paper/table1.csv" in proc.stdout + proc.stderr


def test_documented_command_order(tmp_path):
    """The user's command works; the design-card order (target after --resources) crashes Snakemake 9,
    because --resources takes several values and swallows the target (README: the command line)."""
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    ok = snakemake(work, "results/table1.csv", "--cores", "1", "--resources", "gpu=1", "-n")
    assert job_counts(ok.stdout)["train"] == 7
    bad = snakemake(work, "-n", "--cores", "1", "--resources", "gpu=1", "results/table1.csv", check=False)
    assert bad.returncode != 0
    assert "dictionary update sequence element #1 has length 1; 2 is required" in bad.stdout + bad.stderr


@pytest.mark.parametrize("extra", [[], ["--configfile", PAPER_OVERLAY]], ids=["mini", "paper"])
def test_lint_is_clean(extra):
    proc = run([BIN / "snakemake", "--lint", *extra])
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------------
# DVC manifest
# --------------------------------------------------------------------------------------------------

def test_dvc_yaml_tracks_only_generated_artefacts():
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert spec["vars"] == ["config/config.yaml"]
    for stage in spec["stages"].values():
        body = stage["do"]
        assert body["frozen"] is True
        assert "deps" not in body                      # DVC never decides what to rerun
        cmd = " ".join(body["cmd"].split())
        # the exact Snakemake call, target first (before the variadic --configfile/--resources)
        assert re.fullmatch(r"snakemake results/\S+/metrics/\$\{key\}\.json"
                            r"( --configfile config/paper\.yaml)? --cores 1 --resources gpu=1", cmd), cmd
        kinds = []
        for out in body["outs"]:
            (path, opts), = out.items()
            assert opts == {"persist": True}
            kinds.append(path.split("/")[2])
        assert kinds == ["zoos", "rpg", "generated", "metrics"]   # never a dataset
    listed = dvc(REPO, "stage", "list", "--name-only").stdout.split()
    assert [s for s in listed if s.startswith("artifacts@")] == [f"artifacts@{a}" for a in TABLE1_IDS]
    assert [s for s in listed if s.startswith("paper@")] == [f"paper@{a}" for a in TABLE1_IDS]


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


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke-scale Table 1 run in a temporary working directory (shared by the tests below)."""
    root = tmp_path_factory.mktemp("smoke")
    work = workdir_with(root, SMOKE_CONFIG)
    t0 = time.monotonic()
    # Two jobs at a time (most of a smoke job is Python start-up); the DAG is the user's.
    proc = snakemake(work, "results/table1.csv", "--cores", "2", "--resources", "gpu=2")
    return {"root": root, "work": work, "log": proc.stdout + proc.stderr, "seconds": time.monotonic() - t0}


def test_smoke_end_to_end(smoke):
    work, log = smoke["work"], smoke["log"]
    print(f"smoke Table 1 run: {smoke['seconds']:.1f} s")
    assert job_counts(log) == {"collect": 2, "train": 2, "generate": 2, "evaluate": 2, "table1": 1,
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
    for arch in SMOKE_IDS:
        assert (work / "results" / "smoke" / "zoos" / arch / "manifest.json").is_file()
        assert (work / "results" / "smoke" / "rpg" / arch / "generator.safetensors").is_file()
        assert len(list((work / "results" / "smoke" / "generated" / arch).glob("*.safetensors"))) == 2
        assert (work / "results" / "smoke" / "logs" / "train" / f"{arch}.log").is_file()
    # The second identical call has nothing to do, and the repository's results/ was never touched.
    again = snakemake(work, *USER_CALL)
    assert "Nothing to be done" in again.stdout + again.stderr
    # (Checked by content, not mtimes: a real run may be writing there at the same time.)
    assert not (REPO / "results" / "smoke").exists()
    for published in (REPO / "results").glob("table*.csv"):
        assert ",smoke," not in published.read_text()


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
    stages = [f"artifacts@{a}" for a in SMOKE_IDS]
    assert dvc(work, "stage", "list", "--name-only").stdout.split()[:2] == stages
    dvc(work, "commit", "-f", "artifacts")            # the maintainer loop in the README
    dvc(work, "push", "artifacts")
    # What a maintainer commits: the DVC files and the config. results/ stays git-ignored (DVC writes
    # no .gitignore of its own there), so metrics and tables are recomputed, never cloned.
    assert not list((work / "results").rglob(".gitignore"))
    git(work, "add", "dvc.yaml", "dvc.lock", ".dvcignore", ".dvc", "config", ".gitignore")
    git(work, "commit", "-q", "-m", "smoke artefacts")
    assert "results/smoke/zoos/resnet18" in (work / "dvc.lock").read_text()

    clone = root / "clone"
    git(root, "clone", "-q", work, clone)
    assert not (clone / "results").exists()
    dvc(clone, "pull", "artifacts")                  # the configured scale's stages (README)
    for arch in SMOKE_IDS:
        for kind in ("zoos", "rpg", "generated"):
            original, restored = (base / "results" / "smoke" / kind / arch for base in (work, clone))
            files = {p.relative_to(original) for p in original.rglob("*") if p.is_file()}
            # .dvcignore keeps training-resume state and the token cache out of the remote
            kept = {f for f in files if f.name not in ("train_state.pt", "tokens.npy")}
            assert {p.relative_to(restored) for p in restored.rglob("*") if p.is_file()} == kept
            assert all((restored / f).read_bytes() == (original / f).read_bytes() for f in kept)
        assert (clone / "results" / "smoke" / "rpg" / arch / "generator.safetensors").is_file()
        metrics = Path("results", "smoke", "metrics", f"{arch}.json")
        assert (clone / metrics).read_bytes() == (work / metrics).read_bytes()
    # No .snakemake metadata and fresh mtimes: only the table is left.
    plan = snakemake(clone, *USER_CALL, "-n")
    assert job_counts(plan.stdout) == {"table1": 1, "publish_table": 1}
    # pinned() is what protects them: make a zoo manifest newer than its generator (a pull can
    # restore files in any order) and compare with reuse_artifacts=False.
    now = time.time()
    for p in (clone / "results").rglob("*"):
        os.utime(p, (now, now))
    zoo_manifest = clone / "results" / "smoke" / "zoos" / "resnet18" / "manifest.json"
    os.utime(zoo_manifest, (now + 60, now + 60))
    assert "train" not in job_counts(snakemake(clone, *USER_CALL, "-n").stdout)
    unpinned = job_counts(snakemake(clone, *USER_CALL, "-n", "--config", "reuse_artifacts=False").stdout)
    assert unpinned["train"] == 1 and unpinned["generate"] == 1
