# Wiring every stage shares: the config (loaded, validated, cross-checked), wildcard constraints,
# pinned() and the row lookups. The input/param functions of the stages are in params.smk; what makes
# an artefact stale is the library's (rpg.provenance), from the records the artefacts keep.
# The root Snakefile includes this file before the others.

import os
import re
import shlex
import sys
from pathlib import Path

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

# Software: with --software-deployment-method conda every job runs in workflow/envs/rpg.yaml (the
# `conda:` directive of each rule, pinned to requirements.txt). Otherwise jobs run `python -m rpg`
# / `torchrun` from the environment that runs Snakemake (e.g. `.venv/bin/snakemake` without an
# activated venv), not whatever `python` is first on PATH. The PATH prefix is only set then: it
# would otherwise win over the activated conda env.
CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
if not CONDA:
    shell.prefix(
        f'export PATH={shlex.quote(os.path.dirname(sys.executable))}:"$PATH"; '
    )

# Files shipped with the workflow (resources/paper/*.csv, rpg/zoos/recipes/*.yaml) are found next to
# the root Snakefile, also when Snakemake runs in another working directory (--directory tests/smoke),
# and so is the library the rule files import (this checkout's `rpg`).
REPO = Path(workflow.basedir)
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def validation_error(err):
    """jsonschema's error (message + a dump of the schema) -> one line naming the config key."""
    # snakemake.utils.validate raises inside `except`
    cause = err.__cause__ or err.__context__
    if not isinstance(cause, jsonschema.ValidationError):
        return str(err).splitlines()[0]
    key = ".".join(str(p) for p in cause.absolute_path) or "(top level)"
    if cause.validator == "additionalProperties":
        allowed = sorted(cause.schema.get("properties", {}))
        unknown = sorted(set(cause.instance) - set(allowed))
        return f"config {key}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})"
    if cause.validator == "required":
        return f"config {key}: {cause.message}"
    return f"config {key}: {cause.instance!r} is not valid ({cause.validator}: {cause.validator_value!r})"


try:
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
except WorkflowError as e:
    raise WorkflowError(validation_error(e)) from None


SCALE = config["scale"]
ZOOS = config["zoos"]
EXPERIMENTS = config["experiments"]
VARIANTS = config["variants"]
TABLES = config["tables"]
BENCHMARKS = config["benchmarks"]  # rule memory (paper Fig. 7)
# figures published by their own rule (results/fig8.csv/.png by publish_fig8) when configured
FIGURES = ["fig8"] if config.get("fig8") else []
ROWS = {
    **EXPERIMENTS,
    **VARIANTS,
}  # every id that has a generated folder and a metrics file


def config_error(key, message):
    """One line naming the config key (Snakemake prints it under a `WorkflowError in file` header)."""
    raise WorkflowError(f"config {key}: {message}")


def check_ref(key, name, known, what):
    if name not in known:
        config_error(key, f"{name} is not in {what} (known: {', '.join(known)})")


# Cross-references the JSON schema cannot express.
for _id in set(EXPERIMENTS) & set(VARIANTS):
    config_error(
        f"variants.{_id}", "the id is also an experiment (they share one namespace)"
    )
for _id, _exp in EXPERIMENTS.items():
    check_ref(f"experiments.{_id}.zoo", _exp["zoo"], ZOOS, "zoos")
for _id, _var in VARIANTS.items():
    check_ref(
        f"variants.{_id}.generator", _var["generator"], EXPERIMENTS, "experiments"
    )
for _table, _spec in TABLES.items():
    _unknown = [row for row in _spec["rows"] if row not in ROWS]
    if _unknown:
        config_error(
            f"tables.{_table}.rows",
            f"{', '.join(_unknown)} not in experiments or variants (known: {', '.join(ROWS)})",
        )
    if "paper" in _spec:
        _paper = (REPO / _spec["paper"]).resolve()
        # the schema's pattern keeps the path in resources/paper/; this also stops a symlink out of it
        if not _paper.is_relative_to((REPO / "resources" / "paper").resolve()):
            config_error(
                f"tables.{_table}.paper",
                f"{_spec['paper']} is not a file in resources/paper/",
            )
        if not _paper.is_file():
            config_error(
                f"tables.{_table}.paper", f"{REPO / _spec['paper']} does not exist"
            )
for _id, _bench in BENCHMARKS.items():
    check_ref(f"benchmarks.{_id}.zoo", _bench["zoo"], ZOOS, "zoos")
    if _id in TABLES:
        config_error(
            f"benchmarks.{_id}",
            "the id is also a table (both publish results/<id>.png)",
        )


# Only the configured scale and ids can match, so a results/<other scale>/... target fails with
# "no rule to produce" instead of silently mixing scales.
def _one_of(names):
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


wildcard_constraints:
    scale=re.escape(SCALE),
    zoo=_one_of(ZOOS),
    exp=_one_of(EXPERIMENTS),
    row=_one_of(ROWS),
    table=_one_of(TABLES),
    bench=_one_of(BENCHMARKS) or "(?!)",  # no benchmarks: match nothing (an empty pattern matches all)


def pinned(path):
    """An input that DVC restores (zoo, generator, generated weights).

    `dvc pull` gives restored files fresh modification times, which would make Snakemake retrain
    everything downstream. While `reuse_artifacts` is true such inputs are ancient(): present means
    up to date. Retrain deliberately: config/README.md, "Retraining on purpose". A pinned input that
    a change upstream makes stale is not pinned (rpg.provenance; pinned_zoo and the like).
    """
    return ancient(path) if config["reuse_artifacts"] else path


def folder_of(name):
    """Param function: the folder of the input or output file called `name` (a zoo, run or
    generated folder is named after its manifest/generator file, never spelled out twice).
    """

    def folder(wildcards, input, output):
        files = input if name in input.keys() else output
        return str(Path(files[name]).parent)

    return folder


def set_flags(overrides):
    """['a.b=1', ...] -> "--set a.b=1 ..." (shell-quoted)."""
    return " ".join(f"--set {shlex.quote(kv)}" for kv in overrides)


def job_threads():
    """A job's `threads:`: config `threads`, else every core (Snakemake caps it at --cores)."""
    return config["threads"] or os.cpu_count() or 1


def threads_flag(wildcards, threads):
    """`--threads N` for the CLI, or nothing.

    `--cores 1`: one job at a time; pass nothing, so the CLI uses the machine's idle cores (what a
    user's plain command does). `--cores N > 1` (or an executor that sets no core count): several
    jobs may run at once, so each gets exactly the `threads` Snakemake reserved for it.
    Taking `threads` makes this a derived param: changing --cores never triggers a rerun.
    """
    try:
        one_at_a_time = workflow.cores == 1
    except WorkflowError:  # no core count (a cluster executor): workflow.cores says so
        one_at_a_time = False
    return "" if one_at_a_time else f"--threads {threads}"


def experiment_of(row):
    """The experiment whose run folder a row (experiment or variant id) samples."""
    return VARIANTS[row]["generator"] if row in VARIANTS else row


def zoo_of(row):
    return EXPERIMENTS[experiment_of(row)]["zoo"]
