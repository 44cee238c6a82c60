# Helpers only (no rules): config lookups, wildcard constraints, pinned() and input/param functions.
# The root Snakefile includes this file before the rule files, which use these names.

import os
import re
import shlex
import sys
from pathlib import Path

# Jobs run `python -m rpg ...` / `torchrun`: resolve them in the environment that runs Snakemake
# (e.g. `.venv/bin/snakemake` without an activated venv), not whatever `python` is first on PATH.
shell.prefix(f'export PATH={shlex.quote(os.path.dirname(sys.executable))}:"$PATH"; ')

# Files shipped with the workflow (resources/paper/*.csv) are found next to the root Snakefile,
# also when Snakemake runs in another working directory (--directory tests/smoke).
REPO = Path(workflow.basedir)

SCALE = config["scale"]
ARCHITECTURES = config["architectures"]
TABLES = config["tables"]

# Cross-field checks the JSON schema cannot express.
for _table, _spec in TABLES.items():
    _unknown = [row for row in _spec["rows"] if row not in ARCHITECTURES]
    if _unknown:
        raise ValueError(
            f"config tables.{_table}.rows: {', '.join(_unknown)} not in architectures "
            f"(known: {', '.join(ARCHITECTURES)})"
        )
    if not (REPO / _spec["paper"]).is_file():
        raise ValueError(f"config tables.{_table}.paper: {REPO / _spec['paper']} does not exist")


# Only the configured scale and architectures can match, so a results/<other scale>/... target
# fails with "no rule to produce" instead of silently mixing scales.
wildcard_constraints:
    scale=re.escape(SCALE),
    arch="|".join(re.escape(a) for a in ARCHITECTURES),
    table="table[0-9]+",


def pinned(path):
    """An input that DVC restores (zoo, generator, generated weights).

    `dvc pull` gives restored files fresh modification times, which would make Snakemake retrain
    everything downstream. While `reuse_artifacts` is true such inputs are ancient(): present means
    up to date. Retrain deliberately with --config reuse_artifacts=False --forcerun train.
    """
    return ancient(path) if config["reuse_artifacts"] else path


def folder_of(name):
    """Param function: the folder of the input or output file called `name` (a zoo, run or
    generated folder is named after its manifest/generator file, never spelled out twice)."""

    def folder(wildcards, input, output):
        files = input if name in input.keys() else output
        return str(Path(files[name]).parent)

    return folder


def set_flags(overrides):
    """['a.b=1', ...] -> "--set a.b=1 ..." (shell-quoted)."""
    return " ".join(f"--set {shlex.quote(kv)}" for kv in overrides)


def zoo_name(wildcards):
    """Zoo registry name for `rpg collect --zoo`: architectures.<id>.zoo, else <scale>/<id>."""
    return ARCHITECTURES[wildcards.arch].get("zoo", f"{SCALE}/{wildcards.arch}")


def train_preset(wildcards):
    return ARCHITECTURES[wildcards.arch].get("preset", config["preset"])


def train_gpus(wildcards):
    return ARCHITECTURES[wildcards.arch].get("gpus", config["gpus_per_job"])


def train_launcher(wildcards):
    """`python -m rpg` for one GPU (or CPU); torchrun with one process per GPU of the job otherwise."""
    n = train_gpus(wildcards)
    if n > 1:
        return f"torchrun --standalone --nproc_per_node {n} -m rpg"
    return "python -m rpg"


def train_flags(wildcards):
    return set_flags(config["train"]["set"] + ARCHITECTURES[wildcards.arch].get("train_set", []))


def collect_flags(wildcards):
    return set_flags(config["collect"]["set"] + ARCHITECTURES[wildcards.arch].get("collect_set", []))


def data_flags(wildcards):
    """Dataset locations (config `data`) as --set overrides; unset keys keep the CLI/env default."""
    return set_flags(f"{key}={value}" for key, value in config["data"].items())


def generate_flags(wildcards):
    """Optional sampler settings; unset ones leave the generator's own (preset) choice."""
    gen = config["generate"]
    flags = [f"--{key} {gen[key]}" for key in ("sampler", "steps", "mode") if gen[key] is not None]
    return " ".join(flags)


def table_metrics(table):
    """Input function factory: the evaluation JSON of every row of `table`, in paper order."""

    def metrics(wildcards):
        return [f"results/{wildcards.scale}/metrics/{row}.json" for row in TABLES[table]["rows"]]

    return metrics


def table_labels(table):
    return [ARCHITECTURES[row]["label"] for row in TABLES[table]["rows"]]


def paper_numbers(table):
    return str(REPO / TABLES[table]["paper"])
