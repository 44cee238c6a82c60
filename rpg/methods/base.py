"""The generation-method seam: fit a method on a zoo into a run folder, then sample state_dicts from it.

A method is a class with the members of `Method` below; adding one is that class plus one line in
`rpg.methods.METHODS`. Everything around it is shared:

- `rpg train --method NAME` calls `METHODS[NAME]().fit(zoo, run, FitSettings)`; the method writes RUN/run.json
  (`rpg.formats.write_run`) once the fit is complete, naming itself, so later steps need only the run folder.
- `generate` (here, the only caller of `sample`) reads the method from RUN/run.json, expands the conditions
  (`ConditionSpec`) against what the run was fitted on (`RunInfo`), samples `num` models per condition and writes
  them as one generated set (rpg-generated/1, `rpg.formats.write_generated`) with the settings as actually run
  and the sampling's cost (`cost`: wall time per model, peak memory, machine; `rpg.measure`).

Every condition is sampled from a generator seeded with the same `seed`: the models of a condition do not depend
on which other conditions were asked for (`--permutation 3` equals the perm_003 subfolder of `--conditions
permutations`), and models of different conditions share their starting noise, so they differ by the condition.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from rpg import formats
from rpg.errors import RPGInputError
from rpg.formats import GeneratedModel
from rpg.measure import machine, measure

EvalFn = Callable[[list[dict]], dict]          # generated state_dicts -> metrics (the periodic evaluation hook)


# ------------------------------------------------------------------------------------------------ conditions
@dataclass(frozen=True)
class Condition:
    """What one group of generated models is conditioned on. Neither field set: no condition (a method with
    permutation states draws one uniformly per model); `permutation`: that state for every model; `task`: a
    binary task, 10 ints 0/1 (MSB = class 0, as `rpg.zoos.recipes.task_bits`)."""

    permutation: int | None = None
    task: tuple[int, ...] | None = None
    label: str | None = None       # subfolder of the generated set when the spec is a list of conditions


SPEC_HELP = ("none (default) | permutations (every permutation state of the run's zoo, subfolders perm_NNN) | "
             "permutation:K | tasks:ID,ID,... (task ids 1..1022, subfolders task_NNNN) | task:BITS (e.g. "
             "task:0111110110)")


@dataclass(frozen=True)
class ConditionSpec:
    """Which conditions to sample: `none`, `permutations` (every state), `permutation:K`, `tasks:ID,...`,
    `task:BITS`. The list forms (`permutations`, `tasks`) put each condition in its own subfolder, even when the
    list has one entry, so paths do not change shape with the list's length; the single forms write flat."""

    kind: str                         # none | permutations | permutation | tasks | task
    values: tuple = ()                # permutation: (K,); tasks: task ids; task: the bits

    @classmethod
    def parse(cls, text: str, where: str = "--conditions") -> ConditionSpec:
        from rpg.zoos.recipes import task_bits
        text = str(text).strip()
        head, sep, rest = text.partition(":")
        if text in ("none", "permutations"):
            return cls(text)
        if head == "permutation" and sep:
            try:
                k = int(rest)
            except ValueError:
                k = -1
            if k < 0:
                raise RPGInputError(f"{where} {text!r}: permutation must be an integer >= 0")
            return cls("permutation", (k,))
        if head == "tasks" and sep:
            try:
                ids = tuple(int(x) for x in rest.split(","))
            except ValueError:
                raise RPGInputError(f"{where} {text!r}: expected tasks:ID,ID,... with integer task ids") from None
            for i in ids:
                task_bits(i)                       # checks the id range
            if len(set(ids)) != len(ids):
                raise RPGInputError(f"{where} {text!r}: a task id is listed twice")
            return cls("tasks", ids)
        if head == "task" and sep:
            if len(rest) != formats.NUM_TASK_BITS or set(rest) - {"0", "1"}:
                raise RPGInputError(f"{where} {rest!r}: expected {formats.NUM_TASK_BITS} characters of 0/1")
            return cls("task", tuple(formats.check_task([int(c) for c in rest], f"{where} {rest!r}")))
        raise RPGInputError(f"{where} {text!r}: expected {SPEC_HELP}")

    def __str__(self) -> str:
        if self.kind == "permutation":
            return f"permutation:{self.values[0]}"
        if self.kind == "tasks":
            return "tasks:" + ",".join(str(i) for i in self.values)
        if self.kind == "task":
            return "task:" + formats.task_string(list(self.values))
        return self.kind


@dataclass
class RunInfo:
    """What a fitted run can be conditioned on, and the zoo it was fitted on (for the generated set's provenance)."""

    zoo: dict                              # the zoo manifest without its checkpoints: architecture, dataset, ...
    permutations: list[int]                # permutation states it was fitted on; [] = no permutation input
    num_permutations: int = 0              # valid ids for `permutation:K` are 0 .. num_permutations - 1
    task_conditioned: bool = False         # True: every model needs a task


def expand(spec: ConditionSpec, info: RunInfo, run_dir: str | os.PathLike) -> list[Condition]:
    """The conditions `spec` asks for, checked against what the run can take."""
    from rpg.zoos.recipes import task_bits
    if spec.kind in ("tasks", "task") and not info.task_conditioned:
        raise RPGInputError(f"--conditions {spec}: the generator in {run_dir} has no task condition")
    if spec.kind in ("none", "permutations", "permutation") and info.task_conditioned:
        raise RPGInputError(f"--conditions {spec}: the generator in {run_dir} is task-conditioned; pass "
                            "--conditions tasks:ID,... or --task BITS")
    if spec.kind in ("permutations", "permutation") and not info.permutations:
        raise RPGInputError(f"--conditions {spec}: the generator in {run_dir} has no permutation states")
    if spec.kind == "none":
        return [Condition()]
    if spec.kind == "permutations":
        return [Condition(permutation=k, label=f"perm_{k:03d}") for k in info.permutations]
    if spec.kind == "permutation":
        k = spec.values[0]
        if not 0 <= k < info.num_permutations:
            raise RPGInputError(f"--permutation {k}: must be in 0..{info.num_permutations - 1}")
        return [Condition(permutation=k)]
    if spec.kind == "tasks":
        return [Condition(task=tuple(task_bits(i)), label=f"task_{i:04d}") for i in spec.values]
    if spec.kind == "task":
        return [Condition(task=tuple(spec.values))]
    raise RPGInputError(f"--conditions {spec.kind!r}: expected {SPEC_HELP}")


# ------------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class SampleOptions:
    """How to sample. None = the run's own setting; `Method.resolve` fills every field as it will run."""

    sampler: str | None = None        # ddpm | ddim
    steps: int | None = None          # sampling steps
    mode: str | None = None           # sequential | partial | full (tokens denoised at once)
    chunk_size: int | None = None     # tokens per chunk in partial mode
    precision: str = "auto"           # auto | bf16 | fp32; resolved: bf16 | fp32
    progress: bool = False            # progress bars


@dataclass
class FitSettings:
    """How to fit a method on a zoo (what `rpg train` passes on; each method reads what applies to it)."""

    preset: str | None = None                     # size preset (method-specific names)
    config_file: str | None = None                # a full config file instead of a preset
    overrides: dict[str, str] = field(default_factory=dict)   # dotted `--set` overrides, values unparsed
    device: str = "cpu"
    restart_on_change: bool = False               # a run folder saved with other settings: start over
    eval_every: int | None = None                 # evaluate generated models every N steps (None: config's)
    eval_hook: Callable[[Path], EvalFn] | None = None   # zoo folder -> the evaluation hook, built when needed
    quiet: bool = False
    # A capped fit measures (the Fig. 8 memory study, rpg.memory_study) or tests resumption; it is not a run: a
    # stage it cuts leaves no generator and no run.json. `max_steps`: at most this many optimisation steps in each
    # training stage (RPG saves its state at the cap, so an uncapped fit resumes from it; a staged baseline saves
    # nothing, its later stages having trained on a cut earlier one). `memory_cap_bytes`: the fit's address space
    # may grow by at most this much past what the process maps when the fit starts (`rpg.memory.address_space_cap`),
    # so an allocation past it fails inside the fit (MemoryError or torch's RuntimeError), not the machine.
    max_steps: int | None = None
    memory_cap_bytes: int | None = None


class Method(Protocol):
    """A generation method. `fit` writes RUN/run.json (`formats.write_run`, method = `name`) once complete."""

    name: str                     # the registry id (`rpg train --method NAME`, run.json, config `method:`)
    display_name: str             # as tables print it (e.g. "p-diff")
    stages: tuple[str, ...]       # dotted config keys of its training stages, each with `steps`/`batch_size`

    def resolved_config(self, preset: str, overrides: list[str]) -> dict:
        """The full config `rpg train --method NAME --preset PRESET --set k=v ...` trains with, as RUN/config.json
        records it (JSON types); a method without a config class returns {"preset": ..., "set": [...]}. A bad
        preset or override raises RPGInputError (or KeyError) naming it. The workflow's rerun trigger."""

    def normalised_config(self, record: dict) -> dict:
        """A RUN/config.json record as this version writes it (fields added since filled in), to compare with
        `resolved_config`; a record it cannot read comes back unchanged."""

    def fit(self, zoo_dir: str | os.PathLike, run_dir: str | os.PathLike, settings: FitSettings) -> Path:
        """Fit on the zoo into `run_dir` (resuming what is there); returns the run's main artefact (not yet
        written when `settings.max_steps` stopped the fit)."""

    def info(self, run_dir: str | os.PathLike) -> RunInfo:
        """What the finished run can be conditioned on (fails with one line if the run is not finished)."""

    def resolve(self, run_dir: str | os.PathLike, options: SampleOptions, device: str) -> SampleOptions:
        """`options` with every None replaced by the value sampling will use (recorded in the manifest)."""

    def sample(self, run_dir: str | os.PathLike, num: int, condition: Condition, options: SampleOptions,
               seed: int, device: str) -> list[GeneratedModel]:
        """`num` state_dicts for one condition (with the permutation each was drawn with); `options` resolved.
        The same arguments give the same weights."""


# ------------------------------------------------------------------------------------------------ generate
def _check_fits(run_dir: str | os.PathLike, num: int) -> None:
    """Refuse a --num whose models cannot fit in this machine's memory, before sampling: one condition's `num`
    models are sampled together and held until written, at least 4 bytes (float32) per generated parameter, so
    a huge --num would otherwise fail deep inside torch on a terabyte allocation."""
    meta = formats.read_run_meta(run_dir, required=False) or {}
    params = meta.get("num_params")
    if isinstance(params, bool) or not isinstance(params, int) or params <= 0:
        return                                     # a run without the count: nothing to estimate from
    need = num * params * 4
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return
    if need > memory:
        raise RPGInputError(f"--num {num}: {num} models of {params:,} parameters need at least {need / 2**30:,.1f} "
                            f"GiB at once, more than this machine's {memory / 2**30:,.1f} GiB of memory; "
                            "generate fewer per call (into separate --out folders)")


def generate(run_dir: str | os.PathLike, out_dir: str | os.PathLike, num: int, seed: int,
             conditions: ConditionSpec | str = "none", options: SampleOptions | None = None,
             device: str = "cpu") -> list[Path]:
    """Sample `num` models per condition from a fitted run into the generated set `out_dir` (rpg-generated/1,
    swapped in whole); returns the written weight files."""
    from rpg.methods import get_method
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise RPGInputError(f"--num {num}: must be an integer >= 1")
    formats.check_writable(out_dir)                # before any sampling
    spec = conditions if isinstance(conditions, ConditionSpec) else ConditionSpec.parse(conditions)
    run = formats.read_run(run_dir)
    method = get_method(run["method"], where=f"{Path(run_dir) / 'run.json'}: method")
    info = method.info(run_dir)
    conds = expand(spec, info, run_dir)
    _check_fits(run_dir, num)
    opts = method.resolve(run_dir, options or SampleOptions(), device)
    zoo = info.zoo
    provenance = {
        "method": method.name, "run": str(run_dir), "run_digest": formats.run_digest(run_dir),
        "architecture": zoo.get("architecture"),
        "dataset": zoo.get("dataset"), "substitute_for": zoo.get("substitute_for"),
        "domain": zoo.get("domain") or "classification", "conditions": str(spec), "num": num,
        "sampler": opts.sampler, "steps": opts.steps, "mode": opts.mode, "chunk_size": opts.chunk_size,
        "seed": seed, "precision": opts.precision}

    spent = {"wall_s": 0.0, "peak_bytes": 0, "models": 0, "memory": ""}

    def models() -> Iterator[GeneratedModel]:
        # lazily, one condition at a time: a thousand tasks' models never sit in memory together
        for c in conds:
            with measure(device) as usage:          # sampling only: not loading the run, not writing files
                batch = method.sample(run_dir, num, c, opts, seed, device)
            spent["wall_s"] += usage.wall_s
            spent["peak_bytes"] = max(spent["peak_bytes"], usage.peak_bytes)
            spent["models"] += len(batch)
            spent["memory"] = usage.memory
            for m in batch:
                yield replace(m, condition=c.label)

    def with_cost() -> dict:
        # the generation cost Tab. 7 / Tab. 13 report (rpg.measure says how memory is measured per device)
        n = max(spent["models"], 1)
        return {**provenance, "cost": {
            "sample_s": round(spent["wall_s"], 4), "per_model_s": round(spent["wall_s"] / n, 4),
            "models": spent["models"], "peak_memory_bytes": spent["peak_bytes"], "memory": spent["memory"],
            "device": str(device), "machine": machine(device)}}

    return formats.write_generated(out_dir, models(), with_cost)
