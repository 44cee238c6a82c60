"""Every production table's rule declares what its command reads.

One dry run of every table of config/config.yaml (mini) and one of the paper overlay (config/paper.yaml): for each
`table` job, every path its `rpg table` command names is a declared input or output of the job (a folder counts
as declared when a declared input lies in it), and every row's evaluation, generated set, generator run and zoo
are among the inputs, so a builder never reads a file Snakemake does not know about. (The per-table dry runs that
also check which jobs each table schedules are in test_workflow.py, most of them marked slow.)
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MINI = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
PAPER_OVERLAY = REPO / "config" / "paper.yaml"


def merged(overlay: Path | None) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    if overlay is not None:
        update_config(cfg, yaml.safe_load(overlay.read_text()))
    return cfg


def table_jobs(output: str) -> dict[str, tuple[set[str], list[str]]]:
    """Each `table` job of a dry run: table id -> (declared input and output paths, its shell command's words)."""
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \S+:\n)", output):
        if not re.match(r"(?:local)?rule table:\n", block):
            continue
        fields = dict(re.findall(r"^    (input|output|wildcards): (.*)$", block, flags=re.M))
        declared = {p.strip() for key in ("input", "output") for p in fields.get(key, "").split(",") if p.strip()}
        table = re.search(r"table=([^,\s]+)", fields["wildcards"]).group(1)
        command = re.search(r"^Shell command: (.*)$", block, flags=re.M).group(1)
        jobs[table] = (declared, shlex.split(command.split(" > ", 1)[0]))
    return jobs


def named_paths(words: list[str]) -> list[str]:
    """The words of a command that name files or folders of the workflow (results/... or absolute paths)."""
    return [w for w in words if w.startswith(("results/", "/"))]


def covered(path: str, declared: set[str]) -> bool:
    """A path is declared itself, or is the folder of a declared file."""
    return path in declared or any(Path(d).parent == Path(path) for d in declared)


@pytest.mark.parametrize("overlay", [None, PAPER_OVERLAY], ids=["mini", "paper"])
def test_every_table_reads_only_declared_inputs(tmp_path, overlay):
    cfg = merged(overlay)
    scale = cfg["scale"]
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    extra = ["--configfile", str(overlay)] if overlay else []
    targets = [f"results/{scale}/{t}.csv" for t in cfg["tables"]]
    proc = subprocess.run([str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
                           *targets, *extra, "-n"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = table_jobs(proc.stdout)
    assert set(jobs) == set(cfg["tables"])
    experiments, variants = cfg["experiments"], cfg.get("variants", {})
    for table, (declared, words) in jobs.items():
        undeclared = [p for p in named_paths(words) if not covered(p, declared)]
        assert not undeclared, f"{table}: the command names {undeclared}, which the rule does not declare"
        for row in cfg["tables"][table]["rows"]:
            exp = variants[row]["generator"] if row in variants else row
            zoo = experiments[exp]["zoo"]
            wanted = {f"results/{scale}/metrics/{row}.json", f"results/{scale}/generated/{row}/manifest.json",
                      f"results/{scale}/runs/{exp}/generator.safetensors",
                      f"results/{scale}/zoos/{zoo}/manifest.json"}
            assert wanted <= declared, f"{table}, row {row}: {sorted(wanted - declared)} not declared"
