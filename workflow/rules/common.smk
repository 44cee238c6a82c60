# Helpers only (no rules): config lookups and cross-checks, wildcard constraints, pinned() and the
# input/param functions. The root Snakefile includes this file before the rule files.

import functools
import hashlib
import json
import os
import re
import shlex
import sys
from pathlib import Path

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from snakemake.settings.types import DeploymentMethod

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
# the root Snakefile, also when Snakemake runs in another working directory (--directory tests/smoke).
REPO = Path(workflow.basedir)
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def validation_error(err):
    """jsonschema's error (message + a dump of the schema) -> one line naming the config key."""
    cause = (
        err.__cause__ or err.__context__
    )  # snakemake.utils.validate raises inside `except`
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
BENCHMARKS = config["benchmarks"]  # issue 10: rule memory (paper Fig. 7)
# figures published by their own rule (results/fig8.csv/.png by publish_fig8) when configured
FIGURES = ["fig8"] if config.get("fig8") else []
ROWS = {
    **EXPERIMENTS,
    **VARIANTS,
}  # every id that has a generated folder and a metrics file


def config_error(key, message):
    """One line naming the config key (Snakemake prints it under a `WorkflowError in file` header)."""
    raise WorkflowError(f"config {key}: {message}")


# Cross-references the JSON schema cannot express.
for _id in set(EXPERIMENTS) & set(VARIANTS):
    config_error(
        f"variants.{_id}", "the id is also an experiment (they share one namespace)"
    )
for _id, _exp in EXPERIMENTS.items():
    if _exp["zoo"] not in ZOOS:
        config_error(
            f"experiments.{_id}.zoo",
            f"{_exp['zoo']} is not in zoos (known: {', '.join(ZOOS)})",
        )
for _id, _var in VARIANTS.items():
    if _var["generator"] not in EXPERIMENTS:
        config_error(
            f"variants.{_id}.generator",
            f"{_var['generator']} is not in experiments (known: {', '.join(EXPERIMENTS)})",
        )
for _table, _spec in TABLES.items():
    _unknown = [row for row in _spec["rows"] if row not in ROWS]
    if _unknown:
        config_error(
            f"tables.{_table}.rows",
            f"{', '.join(_unknown)} not in experiments or variants (known: {', '.join(ROWS)})",
        )
    if "paper" in _spec and not (REPO / _spec["paper"]).is_file():
        config_error(
            f"tables.{_table}.paper", f"{REPO / _spec['paper']} does not exist"
        )


for _id, _bench in BENCHMARKS.items():
    if _bench["zoo"] not in ZOOS:
        config_error(
            f"benchmarks.{_id}.zoo",
            f"{_bench['zoo']} is not in zoos (known: {', '.join(ZOOS)})",
        )
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
    up to date. Retrain deliberately: config/README.md, "Retraining on purpose".
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


# ------------------------------------------------------------------------------------------ threads
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
    return "" if workflow._cores == 1 else f"--threads {threads}"


# ------------------------------------------------------------------------------------------- zoos
def data_overrides():
    """Dataset locations (config `data`) as overrides; unset keys keep the CLI/env default."""
    return [f"{key}={value}" for key, value in config["data"].items()]


def data_flags(wildcards):
    return set_flags(data_overrides())


def collect_flags(wildcards):
    """`collect.set` and the zoo's own `set` (after data_flags and lm_flags: collect_overrides)."""
    return set_flags(config["collect"]["set"] + ZOOS[wildcards.zoo].get("set", []))


def zoo_recipe(wildcards):
    return ZOOS[wildcards.zoo]["recipe"]


def recipe_digest(wildcards, input):
    """Param: a hash of the recipe files' content. Inputs are pinned() like the artefacts (a fresh
    clone gives them fresh mtimes); this param makes a content change recollect the zoo anyway.
    """
    h = hashlib.sha256()
    for path in input.recipes:
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16] if input.recipes else "none"


def recipe_inputs(wildcards):
    """Input function: the recipe files of this zoo, so editing a recipe recollects what uses it.

    Recipes are YAML data under rpg/zoos/recipes/ (`recipe_files(name)` lists a recipe's files, its
    shared base families included). A checkout whose recipes are still Python declares none.
    """
    if not (REPO / "rpg" / "zoos" / "recipes").is_dir():
        return []
    try:
        from rpg.zoos.recipes import recipe_files
    except ImportError:
        return []
    return [pinned(str(REPO / p)) for p in recipe_files(zoo_recipe(wildcards))]


# -------------------------------------------------------------------------------------- experiments
def experiment_of(row):
    """The experiment whose run folder a row (experiment or variant id) samples."""
    return VARIANTS[row]["generator"] if row in VARIANTS else row


def zoo_of(row):
    return EXPERIMENTS[experiment_of(row)]["zoo"]


def train_method(wildcards):
    return EXPERIMENTS[wildcards.exp]["method"]


def train_preset(wildcards):
    return EXPERIMENTS[wildcards.exp].get("preset", config["preset"])


def train_gpus(wildcards):
    return EXPERIMENTS[wildcards.exp].get("gpus", config["gpus_per_job"])


def train_launcher(wildcards):
    """`python -m rpg` for one GPU (or CPU); torchrun with one process per GPU of the job otherwise."""
    n = train_gpus(wildcards)
    if n > 1:
        return f"torchrun --standalone --nproc_per_node {n} -m rpg"
    return "python -m rpg"


def train_overrides(wildcards):
    return config["train"]["set"] + EXPERIMENTS[wildcards.exp].get("set", [])


# Runs whose generator exists when Snakemake starts, i.e. finished ones (generator.safetensors is
# written last). Snakemake deletes a job's outputs before running it, so this is recorded first.
FINISHED_RUNS = {
    p.parent.name
    for p in Path("results", SCALE, "runs").glob("*/generator.safetensors")
}


def fresh_start(wildcards, output):
    """Shell prefix: drop the saved training state of a finished run that Snakemake reruns (forced,
    or its params/inputs changed), so the job retrains from step 0 instead of resuming; a run
    interrupted by kill -9 or Ctrl-C has no generator yet and resumes. Derived from `output`, so
    it is not itself a rerun trigger."""
    if wildcards.exp not in FINISHED_RUNS:
        return ""
    state = Path(output.generator).parent / "train_state.pt"
    return f"rm -f {shlex.quote(str(state))} && "


def train_flags(wildcards):
    return set_flags(train_overrides(wildcards))


try:  # the generator presets, to resolve an experiment's full config (see train_config)
    from rpg.errors import RPGInputError
    from rpg.generator.config import preset_config as _preset_config
except ImportError:
    _preset_config = None


def resolved_config(exp):
    """The experiment's full generator config (preset + `train.set` + its `set`), as JSON.

    Checked for every experiment when the workflow loads, so a bad `set` key fails the dry run in
    one line. Methods other than rpg (and checkouts without the presets) keep preset + overrides.
    """
    spec = EXPERIMENTS[exp]
    preset = spec.get("preset", config["preset"])
    overrides = config["train"]["set"] + spec.get("set", [])
    if _preset_config is None:
        return json.dumps({"preset": preset, "set": overrides})
    pairs = dict(kv.split("=", 1) for kv in overrides)
    try:
        # the Table 8 baselines: presets in rpg/methods/presets/
        if spec["method"] != "rpg":
            from rpg.methods import get_method
            from rpg.methods.baseline import resolved_config as _baseline_config

            if not hasattr(get_method(spec["method"]), "config_class"):
                # a method without presets (e.g. retrieval): its preset and overrides are the config
                return json.dumps({"preset": preset, "set": overrides})
            return json.dumps(
                _baseline_config(spec["method"], preset, pairs), sort_keys=True
            )
        resolved = _preset_config(preset, pairs)
    except (RPGInputError, KeyError) as e:  # a bad `set`, an unknown preset or method
        config_error(f"experiments.{exp}", f"preset {preset} with set {overrides}: {e}")
    return json.dumps(resolved.to_dict(), sort_keys=True)


TRAIN_CONFIGS = {exp: resolved_config(exp) for exp in EXPERIMENTS}


def train_config(wildcards):
    """Param (not used by the command): the experiment's resolved generator config.

    Snakemake reruns a job whose params changed, so editing an experiment's `set`, the top-level
    `train.set` or a preset's definition in rpg/generator/config.py retrains exactly the
    experiments whose config changes, while a comment or an unrelated preset does not.
    """
    return TRAIN_CONFIGS[wildcards.exp]


def sample_settings(row):
    """Top-level `sample`, then the generator experiment's `sample`, then the variant's own."""
    settings = dict(config["sample"])
    settings.update(EXPERIMENTS[experiment_of(row)].get("sample", {}))
    if row in VARIANTS:
        settings.update(VARIANTS[row].get("sample", {}))
    return settings


def sample_param(key):
    return lambda wildcards: sample_settings(wildcards.row)[key]


def sample_flags(wildcards):
    """Optional sampler settings; unset ones leave the generator's own (preset) choice."""
    s = sample_settings(wildcards.row)
    keys = ("sampler", "steps", "mode", "chunk_size", "conditions")
    return " ".join(
        f"--{key.replace('_', '-')} {shlex.quote(str(s[key]))}"
        for key in keys
        if s.get(key) is not None
    )


# ------------------------------------------------------------------------------------ staleness
# pinned() inputs are ancient(), and Snakemake never propagates a rerun across an ancient input that
# exists: a generator retrained because its config changed would leave its samples and metrics
# stale. Every artefact records what it was made from, so an input is pinned only while
#   - the artefact's record agrees with what the config asks for now (a changed config: the upstream
#     job is rerun in this invocation, and the rerun now reaches its dependants), and
#   - the downstream artefact's record of it agrees with it (an earlier invocation remade it and
#     stopped before its dependants: the input is newer than their outputs, so mtimes rerun them).
# Absent or unreadable records are trusted (older artefacts, other methods).
try:
    from rpg.errors import RPGInputError as _RecordError
except ImportError:
    _RecordError = ValueError
try:
    from rpg import formats as _formats
    from rpg.cli import collect as _collect_cli
    from rpg.generator.config import RPGConfig as _RPGConfig
    from rpg.methods.base import ConditionSpec as _ConditionSpec
except ImportError:
    _formats = _collect_cli = _RPGConfig = _ConditionSpec = None


def _recorded(path):
    """A JSON record on disk, or None (absent or unreadable: nothing to compare, trust it)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _normalised(cls, record):
    """A config record read back through its class (fills fields added since it was written)."""
    try:
        return json.loads(json.dumps(cls.from_dict(record).to_dict()))
    except (_RecordError, KeyError, TypeError, ValueError):
        return record


def _zoo_config(zoo, scale):
    manifest = _recorded(Path("results", scale, "zoos", zoo, "manifest.json"))
    return manifest.get("config") if isinstance(manifest, dict) else None


def collect_overrides(zoo, scale):
    """The --set overrides of a zoo's `rpg collect`, in the rule's order (data_flags, lm_flags,
    collect_flags; a later one wins): data locations, a language-model zoo's lm_root, `collect.set`,
    the zoo's own `set`."""
    return (
        data_overrides()
        + lm_overrides(zoo, scale)
        + config["collect"]["set"]
        + ZOOS[zoo].get("set", [])
    )


@functools.lru_cache(maxsize=None)
def zoo_is_stale(zoo, scale):
    """The zoo manifest records another resolved recipe than the collect job would use now (the CLI's
    own resolution of recipe and overrides, any domain): Snakemake recollects it (its recipe digest or
    flags changed).
    """
    recorded = _zoo_config(zoo, scale)
    if _collect_cli is None or recorded is None:
        return False
    overrides = collect_overrides(zoo, scale)
    argv = ["--zoo", ZOOS[zoo]["recipe"]] + [
        a for kv in overrides for a in ("--set", kv)
    ]
    # a bad recipe or `set` is reported by the collect job itself, with its own message
    try:
        cfg = _collect_cli.resolved_recipe(_collect_cli.build_parser().parse_args(argv))
    except (_RecordError, SystemExit):
        return False
    now = json.loads(json.dumps(cfg.to_dict()))
    return now != _normalised(type(cfg), recorded)


@functools.lru_cache(maxsize=None)
def run_is_stale(exp, scale):
    """The run will be (or was, without its dependants) retrained: its zoo is stale, its config.json
    differs from the experiment's resolved config (the params trigger retrains it), or its meta.json
    records another zoo config than the zoo manifest now holds."""
    zoo = EXPERIMENTS[exp]["zoo"]
    if zoo_is_stale(zoo, scale):
        return True
    run = Path("results", scale, "runs", exp)
    recorded = _recorded(run / "config.json")
    wanted = json.loads(TRAIN_CONFIGS[exp])
    if recorded is not None and EXPERIMENTS[exp]["method"] == "rpg" and _RPGConfig:
        recorded = _normalised(_RPGConfig, recorded)
    if recorded is not None and recorded != wanted:
        return True
    meta = _recorded(run / "meta.json")
    trained_on = meta.get("zoo_manifest", {}) if isinstance(meta, dict) else {}
    now = _zoo_config(zoo, scale)
    return "config" in trained_on and now is not None and trained_on["config"] != now


def pinned_zoo(wildcards):
    """train's input: the experiment's zoo manifest, pinned unless the run is stale."""
    zoo = EXPERIMENTS[wildcards.exp]["zoo"]
    path = f"results/{wildcards.scale}/zoos/{zoo}/manifest.json"
    return path if run_is_stale(wildcards.exp, wildcards.scale) else pinned(path)


# sample settings a generated set's manifest records under the same key
SAMPLE_KEYS = ("num", "seed", "sampler", "steps", "mode", "chunk_size")


def samples_are_stale(row, scale):
    """The generated set's manifest records other sample settings than the row asks for now (an
    unset key keeps the preset's choice, which the manifest records resolved: not compared).
    """
    recorded = _recorded(Path("results", scale, "generated", row, "manifest.json"))
    if not isinstance(recorded, dict):
        return False
    wanted = sample_settings(row)
    if any(
        wanted.get(k) is not None and k in recorded and recorded[k] != wanted[k]
        for k in SAMPLE_KEYS
    ):
        return True
    if _ConditionSpec is None:
        return False
    # a bad spec is reported by the generate job itself, with its own message
    try:
        spec = str(_ConditionSpec.parse(wanted.get("conditions") or "none"))
    except _RecordError:
        return False
    return "conditions" in recorded and spec != recorded["conditions"]


@functools.lru_cache(maxsize=None)
def _run_digest(exp, scale):
    """The run folder's digest, hashed once per experiment (variants share their generator's run)."""
    run = Path("results", scale, "runs", exp)
    return _formats.run_digest(run) if _formats is not None and run.is_dir() else None


def sampled_another_run(row, scale):
    """The generated set's manifest records another `run_digest` than its generator's run folder has
    now (the run was retrained from another config or zoo after the set was sampled)."""
    recorded = _recorded(Path("results", scale, "generated", row, "manifest.json"))
    digest = _run_digest(experiment_of(row), scale)
    if digest is None or not isinstance(recorded, dict):
        return False
    return "run_digest" in recorded and recorded["run_digest"] != digest


def metrics_are_stale(row, scale):
    """The metrics record (`generation`) another generated set than the row's manifest now holds."""
    metrics = _recorded(Path("results", scale, "metrics", f"{row}.json"))
    manifest = _recorded(Path("results", scale, "generated", row, "manifest.json"))
    if not isinstance(metrics, dict) or not isinstance(manifest, dict):
        return False
    generation = metrics.get("generation") or {}
    return any(manifest.get(k) != v for k, v in generation.items())


def pinned_generator(wildcards):
    """generate's input: the row's generator, pinned unless its run is stale."""
    path = generator_of(wildcards)
    row, scale = wildcards.row, wildcards.scale
    stale = run_is_stale(experiment_of(row), scale) or sampled_another_run(row, scale)
    return path if stale else pinned(path)


def pinned_samples(wildcards):
    """evaluate's input: the row's generated set, pinned unless it or its generator is stale."""
    path = f"results/{wildcards.scale}/generated/{wildcards.row}/manifest.json"
    row, scale = wildcards.row, wildcards.scale
    stale = (
        run_is_stale(experiment_of(row), scale)
        or sampled_another_run(row, scale)
        or samples_are_stale(row, scale)
        or metrics_are_stale(row, scale)
    )
    return path if stale else pinned(path)


def evaluate_flags(wildcards):
    """The row's own `evaluate` analysis (similarity, noise baseline) as `rpg evaluate` flags."""
    e = ROWS[wildcards.row].get("evaluate", {})
    flags = ["--similarity"] if e.get("similarity") else []
    if "noise_levels" in e:
        flags.append("--noise-levels " + ",".join(str(x) for x in e["noise_levels"]))
    if "noise_repeats" in e:
        flags.append(f"--noise-repeats {e['noise_repeats']}")
    return " ".join(flags)


def generator_of(wildcards):
    return f"results/{wildcards.scale}/runs/{experiment_of(wildcards.row)}/generator.safetensors"


def zoo_manifest_of(wildcards):
    return f"results/{wildcards.scale}/zoos/{zoo_of(wildcards.row)}/manifest.json"


# ------------------------------------------------------------------------------------------- tables
def table_metrics(wildcards):
    """Input function: the evaluation JSON of every row of the table, in print order."""
    return [
        f"results/{wildcards.scale}/metrics/{row}.json"
        for row in TABLES[wildcards.table]["rows"]
    ]


def table_runs(wildcards):
    """Input function: each row's generator (the run folder of its experiment; a variant's generator
    experiment), pinned like every generator input, in print order."""
    return [
        pinned(
            f"results/{wildcards.scale}/runs/{experiment_of(row)}/generator.safetensors"
        )
        for row in TABLES[wildcards.table]["rows"]
    ]


def runs_flag(wildcards, input):
    """--runs with the run folder of every row (a folder may repeat: variants share a generator)."""
    folders = [str(Path(p).parent) for p in input.runs]
    return "--runs " + " ".join(shlex.quote(f) for f in folders)


def table_labels(wildcards):
    return [ROWS[row]["label"] for row in TABLES[wildcards.table]["rows"]]


def table_paper(wildcards):
    spec = TABLES[wildcards.table]
    return [str(REPO / spec["paper"])] if "paper" in spec else []


def table_builder(wildcards):
    return TABLES[wildcards.table]["builder"]


def paper_flag(wildcards, input):
    return f"--paper {shlex.quote(input.paper[0])}" if input.paper else ""


def table_memory(wildcards):
    """The memory study a table reads (config `memory.study`, e.g. fig8 for Table 8), built by its rule."""
    spec = TABLES[wildcards.table].get("memory")
    return [f"results/{wildcards.scale}/{spec['study']}.json"] if spec else []


def memory_flag(wildcards, input):
    """--memory JSON --memory-size COLUMN=SIZE ... from config `memory` (nothing without one)."""
    spec = TABLES[wildcards.table].get("memory")
    if not spec:
        return ""
    sizes = " ".join(shlex.quote(f"{c}={s}") for c, s in spec.get("sizes", {}).items())
    return f"--memory {shlex.quote(input.memory[0])}" + (
        f" --memory-size {sizes}" if sizes else ""
    )


# ------------------------------------------------------------------------------------------- claims
try:
    from rpg.tables.claims import CLAIMS as _CLAIMS
except ImportError:  # a checkout without the claims report
    _CLAIMS = ()
# the configured tables and figures some claim reads: `rule claims` judges the claims from their published CSVs
# (Fig. 8 is a benchmark rule, published by publish_fig8, not a table entry)
CLAIM_TABLES = [
    t
    for t in dict.fromkeys(n for c in _CLAIMS for n in c.tables)
    if t in TABLES or t in FIGURES
]


# --------------------------------------------------------------------------------------- benchmarks
def bench_zoo(wildcards):
    """The benchmark's zoo manifest, pinned unless the zoo is being recollected."""
    zoo = BENCHMARKS[wildcards.bench]["zoo"]
    path = f"results/{wildcards.scale}/zoos/{zoo}/manifest.json"
    return path if zoo_is_stale(zoo, wildcards.scale) else pinned(path)


def bench_flags(wildcards):
    """--token-sizes, --preset, --steps and the --set overrides (`train.set`, then the entry's own)."""
    spec = BENCHMARKS[wildcards.bench]
    sizes = " ".join(str(d) for d in spec["token_sizes"])
    overrides = config["train"]["set"] + spec.get("set", [])
    return (
        f"--token-sizes {sizes} --preset {spec.get('preset', config['preset'])}"
        f" --steps {spec.get('steps', 2)} {set_flags(overrides)}"
    )


# ------------------------------------------------------------------------------ Fig. 8 (issue 13)
def _memory_flags(spec, keys):
    flags = []
    for key, flag in keys:
        if spec.get(key) is not None:
            flags.append(f"{flag} {spec[key]}")
    return flags


_MEMORY_LIMITS = (
    ("cap_gib", "--cap-gib"),
    ("steps", "--steps"),
    ("timeout_s", "--timeout"),
    ("threads", "--threads"),
)


def fig8_flags(wildcards):
    """benchmarks/memory.py options from config `fig8` (unset keys keep the script's defaults)."""
    spec = config.get("fig8", {})
    flags = []
    for key in ("sizes", "methods"):
        if spec.get(key):
            flags.append(f"--{key} {shlex.quote(','.join(spec[key]))}")
    return " ".join(
        flags + _memory_flags(spec, _MEMORY_LIMITS + (("batch", "--batch"),))
    )


def fig8_generation_flags(wildcards):
    """The untrained generation of config `fig8.rpg_generate` alone, under Fig. 8's cap and step count."""
    spec = config.get("fig8", {})
    keys = _MEMORY_LIMITS + (
        ("rpg_generate", "--rpg-generate"),
        ("rpg_chunk", "--rpg-chunk"),
    )
    return " ".join(["--methods ''"] + _memory_flags(spec, keys))
