# Input and param functions of the stages (collect.smk ... tables.smk, benchmarks.smk), in stage order: a job's
# config entry turned into its command's flags, and its inputs pinned unless the library
# (rpg.provenance, from the records the artefacts keep) finds them stale. Snakemake's lint wants
# functions apart from the rules; the shared lookups are in common.smk.

import functools
import hashlib
import json

from rpg import provenance
from rpg.errors import RPGInputError
from rpg.methods import get_method
from rpg.tables.claims import CLAIMS
from rpg.tables.config import config_problems, expected_rows, row_groups
from rpg.zoos.recipes import recipe_files


# ---------------------------------------------------------------------------- collect (stage 1)
def data_overrides():
    """Dataset locations (config `data`) as overrides; unset keys keep the CLI/env default."""
    return [f"{key}={value}" for key, value in config["data"].items()]


def data_flags(wildcards):
    return set_flags(data_overrides())


def collect_flags(wildcards):
    """`collect.set` and the zoo's own `set` (after data_flags and lm_flags: collect_overrides)."""
    return set_flags(config["collect"]["set"] + ZOOS[wildcards.zoo].get("set", []))


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


def zoo_recipe(wildcards):
    return ZOOS[wildcards.zoo]["recipe"]


def recipe_inputs(wildcards):
    """Input function: the recipe files of this zoo (rpg/zoos/recipes/, its shared base families
    included), so editing a recipe recollects what uses it."""
    return [pinned(str(REPO / p)) for p in recipe_files(zoo_recipe(wildcards))]


def recipe_digest(wildcards, input):
    """Param: a hash of the recipe files' content. Inputs are pinned() like the artefacts (a fresh
    clone gives them fresh mtimes); this param makes a content change recollect the zoo anyway.
    """
    h = hashlib.sha256()
    for path in input.recipes:
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16] if input.recipes else "none"


@functools.lru_cache(maxsize=None)
def zoo_is_stale(zoo, scale):
    """The zoo manifest records another resolved recipe than the collect job would use now: it is
    recollected (its recipe digest or flags changed), so what was trained on it is stale too.
    """
    return provenance.zoo_is_stale(
        f"results/{scale}/zoos/{zoo}",
        ZOOS[zoo]["recipe"],
        collect_overrides(zoo, scale),
    )


# ------------------------------------------------------------------------------ train (stage 2)
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


def train_overrides(exp):
    return config["train"]["set"] + EXPERIMENTS[exp].get("set", [])


def train_flags(wildcards):
    return set_flags(train_overrides(wildcards.exp))


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


def resolved_config(exp):
    """The experiment's full config (its method's, from preset + `train.set` + its `set`), as JSON.

    Checked for every experiment when the workflow loads, so a bad `set` key fails the dry run in
    one line.
    """
    spec = EXPERIMENTS[exp]
    preset, overrides = spec.get("preset", config["preset"]), train_overrides(exp)
    try:
        resolved = get_method(spec["method"]).resolved_config(preset, overrides)
    except (RPGInputError, KeyError) as e:  # a bad `set`, an unknown preset or method
        config_error(f"experiments.{exp}", f"preset {preset} with set {overrides}: {e}")
    return json.dumps(resolved, sort_keys=True)


TRAIN_CONFIGS = {exp: resolved_config(exp) for exp in EXPERIMENTS}


def train_config(wildcards):
    """Param (not used by the command): the experiment's resolved config.

    Snakemake reruns a job whose params changed, so editing an experiment's `set`, the top-level
    `train.set` or a preset's definition retrains exactly the experiments whose config changes,
    while a comment or an unrelated preset does not.
    """
    return TRAIN_CONFIGS[wildcards.exp]


@functools.lru_cache(maxsize=None)
def run_is_stale(exp, scale):
    """The run will be (or was, without its dependants) retrained: its zoo is stale, or its records
    disagree with the experiment's resolved config or with the zoo it was trained on."""
    zoo = EXPERIMENTS[exp]["zoo"]
    return zoo_is_stale(zoo, scale) or provenance.run_is_stale(
        f"results/{scale}/runs/{exp}",
        f"results/{scale}/zoos/{zoo}",
        get_method(EXPERIMENTS[exp]["method"]),
        json.loads(TRAIN_CONFIGS[exp]),
    )


def pinned_zoo(wildcards):
    """train's input: the experiment's zoo manifest, pinned unless the run is stale."""
    zoo = EXPERIMENTS[wildcards.exp]["zoo"]
    path = f"results/{wildcards.scale}/zoos/{zoo}/manifest.json"
    return path if run_is_stale(wildcards.exp, wildcards.scale) else pinned(path)


# --------------------------------------------------------------------------- generate (stage 3)
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


def generator_of(wildcards):
    return f"results/{wildcards.scale}/runs/{experiment_of(wildcards.row)}/generator.safetensors"


def sampled_another_run(row, scale):
    """The row's generated set was sampled from another state of its run (retrained since)."""
    return provenance.sampled_another_run(
        f"results/{scale}/generated/{row}", f"results/{scale}/runs/{experiment_of(row)}"
    )


def pinned_generator(wildcards):
    """generate's input: the row's generator, pinned unless its run is stale."""
    row, scale = wildcards.row, wildcards.scale
    stale = run_is_stale(experiment_of(row), scale) or sampled_another_run(row, scale)
    return generator_of(wildcards) if stale else pinned(generator_of(wildcards))


# --------------------------------------------------------------------------- evaluate (stage 4)
def zoo_manifest_of(wildcards):
    return f"results/{wildcards.scale}/zoos/{zoo_of(wildcards.row)}/manifest.json"


def pinned_samples(wildcards):
    """evaluate's input: the row's generated set, pinned unless it or its generator is stale."""
    row, scale = wildcards.row, wildcards.scale
    generated = f"results/{scale}/generated/{row}"
    stale = (
        run_is_stale(experiment_of(row), scale)
        or sampled_another_run(row, scale)
        or provenance.samples_are_stale(generated, sample_settings(row))
        or provenance.metrics_are_stale(
            f"results/{scale}/metrics/{row}.json", generated
        )
    )
    path = f"{generated}/manifest.json"
    return path if stale else pinned(path)


def evaluate_flags(wildcards):
    """The row's own `evaluate` analysis (similarity, noise baseline) as `rpg evaluate` flags."""
    e = ROWS[wildcards.row].get("evaluate", {})
    flags = ["--similarity"] if e.get("similarity") else []
    if "noise_levels" in e:
        levels = ",".join(str(x) for x in e["noise_levels"])
        flags.append(f"--noise-levels {shlex.quote(levels)}")
    if "noise_repeats" in e:
        flags.append(f"--noise-repeats {shlex.quote(str(e['noise_repeats']))}")
    return " ".join(flags)


# ------------------------------------------------------------------ benchmarks (Fig. 7, Fig. 8)
def bench_zoo(wildcards):
    """The benchmark's zoo manifest, pinned unless the zoo is being recollected."""
    zoo = BENCHMARKS[wildcards.bench]["zoo"]
    path = f"results/{wildcards.scale}/zoos/{zoo}/manifest.json"
    return path if zoo_is_stale(zoo, wildcards.scale) else pinned(path)


def bench_flags(wildcards):
    """--token-sizes, --preset, --steps and the --set overrides (`train.set`, then the entry's own);
    every config value shell-quoted (the schema's patterns are the first line of defence, not the only).
    """
    spec = BENCHMARKS[wildcards.bench]
    sizes = " ".join(shlex.quote(str(d)) for d in spec["token_sizes"])
    preset = shlex.quote(str(spec.get("preset", config["preset"])))
    overrides = config["train"]["set"] + spec.get("set", [])
    return (
        f"--token-sizes {sizes} --preset {preset}"
        f" --steps {shlex.quote(str(spec.get('steps', 2)))} {set_flags(overrides)}"
    )


# `rpg memory-study` options from config `fig8` (unset keys keep the command's defaults)
FIG8_LIMITS = {
    "cap_gib": "--cap-gib",
    "steps": "--steps",
    "timeout_s": "--timeout",
    "threads": "--threads",
}


def fig8_options(keys):
    spec = config.get("fig8", {})
    return [
        f"{flag} {shlex.quote(str(spec[key]))}"
        for key, flag in keys.items()
        if spec.get(key) is not None
    ]


def fig8_flags(wildcards):
    """The curves: sizes, methods, the limits and the batch."""
    spec = config.get("fig8", {})
    lists = [
        f"--{key} {shlex.quote(','.join(spec[key]))}"
        for key in ("sizes", "methods")
        if spec.get(key)
    ]
    return " ".join(lists + fig8_options({**FIG8_LIMITS, "batch": "--batch"}))


def fig8_generation_flags(wildcards):
    """The untrained generation of `fig8.rpg_generate` alone, under Fig. 8's cap and step count."""
    keys = {**FIG8_LIMITS, "rpg_generate": "--rpg-generate", "rpg_chunk": "--rpg-chunk"}
    return " ".join(["--methods ''"] + fig8_options(keys))


# ------------------------------------------------------------------------------ tables (stage 5)
for _table, _spec in TABLES.items():
    for _key, _message in config_problems(_table, _spec):
        config_error(_key, _message)


def table_rows(wildcards):
    return TABLES[wildcards.table]["rows"]


def table_metrics(wildcards):
    """Input function: the evaluation JSON of every row of the table, in print order."""
    return [
        f"results/{wildcards.scale}/metrics/{row}.json" for row in table_rows(wildcards)
    ]


def table_runs(wildcards):
    """Input function: each row's generator (the run folder of its experiment; a variant's generator
    experiment), pinned like every generator input, in print order."""
    return [
        pinned(
            f"results/{wildcards.scale}/runs/{experiment_of(row)}/generator.safetensors"
        )
        for row in table_rows(wildcards)
    ]


def table_zoos(wildcards):
    """Input function: each row's zoo manifest, pinned like every zoo input, in print order."""
    return [
        pinned(f"results/{wildcards.scale}/zoos/{zoo_of(row)}/manifest.json")
        for row in table_rows(wildcards)
    ]


def table_generated(wildcards):
    """Input function: each row's generated manifest, pinned like every generated input, in print order."""
    return [
        pinned(f"results/{wildcards.scale}/generated/{row}/manifest.json")
        for row in table_rows(wildcards)
    ]


def folders_flag(option, name):
    """Param function: --<option> with the folder of every `name` input (a folder may repeat: variants
    share a generator and a zoo)."""

    def flag(wildcards, input):
        folders = [str(Path(p).parent) for p in input[name]]
        return f"--{option} " + " ".join(shlex.quote(f) for f in folders)

    return flag


def table_labels(wildcards):
    return [ROWS[row]["label"] for row in table_rows(wildcards)]


def groups_flag(wildcards):
    """--groups with each row's group (config `tables.<id>.groups`); nothing without groups."""
    groups = row_groups(TABLES[wildcards.table])
    return "--groups " + " ".join(shlex.quote(g) for g in groups) if groups else ""


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


# the configured tables and figures some claim reads: `rule claims` judges the claims from their
# published CSVs (Fig. 8 is a benchmark rule, published by publish_fig8, not a table entry)
CLAIM_TABLES = [
    t
    for t in dict.fromkeys(n for c in CLAIMS for n in c.tables)
    if t in TABLES or t in FIGURES
]


def claims_expect(wildcards):
    """--expect TABLE ROW ... per claimed table with a row column (rpg.tables.config.expected_rows), so a table
    with a row missing, duplicated or extra makes its claim inconclusive instead of holding on fewer.
    """
    labels = {row: spec["label"] for row, spec in ROWS.items()}
    flags = []
    for t in CLAIM_TABLES:
        rows = expected_rows(t, TABLES[t], labels) if t in TABLES else []
        if rows:
            flags.append("--expect " + " ".join(shlex.quote(x) for x in (t, *rows)))
    return " ".join(flags)
