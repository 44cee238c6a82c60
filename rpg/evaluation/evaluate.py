"""`rpg evaluate`: the metric of original and generated models, their summaries and their similarity.

Domain-agnostic: the zoo manifest's `domain` picks a `Domain` (rpg.domains) that builds the model,
loads the data and scores one state_dict; everything here sees only its `Outcome`s.

- Summary over a set of models (paper §3.1: "we repeat the above process 10 times and report the best, average,
  medium, minimum, and standard deviation"): best / mean / min / median / std (population std) of the metric,
  in percent. The lists keep today's key `accuracies` whatever the metric (its name is the JSON's `metric`).
- Similarity (App. B.4): rpg.evaluation.similarity.
- Task zoos (unseen-task study): each model is scored on its own task, similarity is computed among models of
  the same task, and a per-task breakdown is added. A generated set with several conditions (one subfolder
  each) gets a per-condition breakdown. With a tasks zoo's top-level manifest (`parts`: seen/, unseen/) the
  originals are the checkpoints of the generated set's own tasks, from whichever part holds them (per_task
  `part`), so generated models of an unseen task meet that task's held-out originals; per_task summaries carry
  the domain's `breakdown` (classification: accuracy per original class), and `label_counts` the test samples
  per original class.

Output: the rpg-eval/1 dict (written by formats.write_eval, read by formats.read_eval).
"""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from rpg import formats, io
from rpg.domains import Outcome, make_domain
from rpg.errors import RPGInputError
from rpg.evaluation.cache import cached_scores
from rpg.evaluation.classification import predict  # noqa: F401  (rpg.zoos.collection imports it from here)
from rpg.evaluation.similarity import PAPER_NOISE_LEVELS, similarity
from rpg.runtime import resolve_device

# provenance of a generated set copied into the eval JSON (`generation`): what the sampling tables group by
GENERATION_KEYS = ("method", "run", "sampler", "steps", "mode", "seed", "chunk_size", "num", "cost")


def summarize(values: list[float]) -> dict:
    """The paper's summary of a set of metrics (percent): best, mean, min, median, std (ddof=0)."""
    if not values:
        return {"accuracies": [], "best": None, "mean": None, "min": None, "median": None, "std": None, "n": 0}
    a = [float(x) for x in values]
    return {
        "accuracies": [round(x, 2) for x in a],
        "best": round(max(a), 2),
        "mean": round(statistics.fmean(a), 2),
        "min": round(min(a), 2),
        "median": round(statistics.median(a), 2),
        "std": round(statistics.pstdev(a), 2),
        "n": len(a),
    }


def _name(ref: formats.ModelRef, folder: Path) -> str:
    """A model's name in the eval JSON: its path inside its zoo / generated folder (conditions are subfolders)."""
    return Path(os.path.relpath(ref.path, folder)).as_posix()


def _check_tasks(gen: formats.GeneratedSet, generated: str | os.PathLike) -> None:
    for i, r in enumerate(gen.refs):
        if r.task is None:
            where = (f"{gen.folder / formats.MANIFEST}: files[{i}].task" if gen.manifest
                     else f"{generated}")
            raise RPGInputError(f"{where}: this is a task zoo; every generated model needs a 'task' "
                                "(a generated set written by `rpg generate --conditions tasks:...`)")


def _per_condition(refs: list[formats.ModelRef], outcomes: list[Outcome]) -> dict[str, dict]:
    """{condition: {"generated": summary, "task": task string shared by its models or None}}."""
    groups: dict[str, list[tuple[formats.ModelRef, Outcome]]] = {}
    for r, o in zip(refs, outcomes):
        groups.setdefault("none" if r.condition is None else str(r.condition), []).append((r, o))
    out = {}
    for cond, items in groups.items():
        tasks = {r.group for r, _ in items}
        out[cond] = {"generated": summarize([o.metric for _, o in items]),
                     "task": tasks.pop() if len(tasks) == 1 else None}
    return out


def task_originals(zoo: formats.Zoo, tasks: set[str | None]
                    ) -> tuple[list[formats.ModelRef], dict[str | None, str]]:
    """The originals a task-conditioned generated set is compared with: the checkpoints of ITS tasks, from every
    part of a tasks zoo (`parts`: seen/ = the generator's training data, unseen/ = the held-out tasks), and which
    part holds each task. A zoo without parts, or none of the tasks collected: the zoo's own checkpoints."""
    parts = zoo.manifest.get("parts")
    if not isinstance(parts, dict) or not parts:
        return zoo.refs, {}
    refs, part_of = [], {}
    for name, sub in sorted(parts.items()):
        for r in formats.read_zoo(zoo.folder / sub, evaluable=True).refs:
            if r.group in tasks:
                refs.append(r)
                part_of[r.group] = name
    return (refs, part_of) if refs else (zoo.refs, {})


def _mean_breakdown(items: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.fmean(d[k] for d in items), 2) for k in items[0]}


def evaluate_zoo(
    zoo_dir: str | os.PathLike,
    generated: str | os.PathLike | None = None,
    *,
    with_similarity: bool = False,
    data_cfg=None,
    device: str = "auto",
    batch_size: int | None = None,
    noise_levels: tuple[float, ...] = PAPER_NOISE_LEVELS,
    noise_repeats: int = 5,
    progress: bool | None = None,
) -> dict:
    """Evaluate a zoo (and optionally a generated set, a folder of weight files or one file); returns the
    rpg-eval/1 dict."""
    zoo = formats.read_zoo(zoo_dir, evaluable=True)
    gen = formats.read_generated(generated, zoo) if generated is not None else None
    originals = zoo.refs
    gen_refs = gen.refs if gen is not None else []
    is_tasks = any(r.task is not None for r in originals)
    part_of: dict[str | None, str] = {}
    if is_tasks and gen is not None:
        _check_tasks(gen, generated)
        originals, part_of = task_originals(zoo, {r.group for r in gen_refs})
    domain = make_domain(zoo, data_cfg, torch.device(resolve_device(device)), batch_size)
    disable = None if progress is None else not progress

    def score_all(refs: list[formats.ModelRef], desc: str) -> list[Outcome]:
        return [domain.score(io.load_state_dict(r.path), str(r.path), r)
                for r in tqdm(refs, desc=desc, leave=False, disable=disable, file=sys.stderr)]

    out_o = cached_scores(domain, originals, lambda refs: score_all(refs, "originals"))
    out_g = score_all(gen_refs, "generated") if gen_refs else []
    result: dict[str, Any] = {
        "format": formats.EVAL_FORMAT,
        "domain": zoo.domain,
        "metric": domain.metric_name,
        "architecture": zoo.architecture,
        "params": domain.params,
        "dataset": domain.dataset,
        "substitute_for": zoo.substitute_for,
        "split": domain.split,
        "zoo": str(zoo_dir),
        "generated_dir": str(generated) if generated is not None else None,
        "generation": ({k: gen.manifest[k] for k in GENERATION_KEYS if k in gen.manifest}
                       if gen is not None and gen.manifest else None),
        "original": summarize([o.metric for o in out_o]),
        "generated": summarize([o.metric for o in out_g]) if gen is not None else None,
        "similarity": None,
    }
    if any(o.extra for o in out_o + out_g):
        # the domain's further metrics (segmentation: mAcc, aAcc), summarized like the main one
        names = sorted({k for o in out_o + out_g for k in (o.extra or {})})
        result["extra_metrics"] = {
            k: {"original": summarize([o.extra[k] for o in out_o if o.extra and k in o.extra]),
                "generated": summarize([o.extra[k] for o in out_g if o.extra and k in o.extra])
                if gen is not None else None} for k in names}
    if is_tasks:
        per_task: dict[str, dict] = {}
        for name, refs, outs in (("original", originals, out_o), ("generated", gen_refs, out_g)):
            for r, o in zip(refs, outs):
                per_task.setdefault(r.group, {}).setdefault(name, []).append(o.metric)
        result["per_task"] = {
            t: {k: summarize(v.get(k, [])) for k in ("original", "generated")} for t, v in sorted(per_task.items())
        }
        # which part of the zoo (seen / unseen) holds the task's originals, and the metric per subgroup
        # (classification: per original class) averaged over the task's models
        breakdown: dict[tuple[str | None, str], list[dict]] = {}
        for name, refs, outs in (("original", originals, out_o), ("generated", gen_refs, out_g)):
            for r, o in zip(refs, outs):
                if o.breakdown is not None:
                    breakdown.setdefault((r.group, name), []).append(o.breakdown)
        for t, entry in result["per_task"].items():
            if part_of:
                entry["part"] = part_of.get(t)
            for name in ("original", "generated"):
                if (t, name) in breakdown:
                    entry[name]["breakdown"] = _mean_breakdown(breakdown[(t, name)])
        if domain.label_counts is not None:
            result["label_counts"] = list(domain.label_counts)
    if len({r.condition for r in gen_refs}) > 1:
        result["per_condition"] = _per_condition(gen_refs, out_g)
    if any(o.breakdown for o in out_o + out_g):   # e.g. one lm-eval task each (language models, Tab. 3)
        result["breakdown"] = {
            part: {name: summarize([o.breakdown[part] for o in outs]) if outs else None
                   for name, outs in (("original", out_o), ("generated", out_g))}
            for part in out_o[0].breakdown}
    base = domain.baseline()   # the model without what the zoo trains (LM domain: no adapter)
    if base is not None:
        result["baseline"] = {"metric": round(base.metric, 2),
                              "breakdown": {k: round(v, 2) for k, v in (base.breakdown or {}).items()}}
    if with_similarity:
        if any(o.mistakes is None for o in out_o + out_g):
            raise RPGInputError(f"--similarity: the {zoo.domain!r} domain scores no per-sample mistakes, so the "
                                "IoU similarity is not defined for it")
        result["similarity"] = similarity(
            domain,
            originals, [_name(r, zoo.folder) for r in originals], [o.metric for o in out_o],
            torch.stack([o.mistakes for o in out_o]),   # (O, N_test) bool
            gen_refs, [_name(r, gen.folder) for r in gen_refs] if gen is not None else [],
            [o.metric for o in out_g],
            torch.stack([o.mistakes for o in out_g]) if out_g else None,  # (G, N_test) bool
            tuple(noise_levels), noise_repeats, progress,
        )
    return result


def make_eval_fn(zoo_folder: str | os.PathLike, device: str | torch.device = "cpu", data_cfg=None,
                 batch_size: int | None = None) -> Callable[[list[dict[str, torch.Tensor]]], dict]:
    """The training loop's periodic evaluation hook: state_dicts -> {"acc_mean", "acc_min", "acc_max"} of the
    zoo domain's metric (percent) on the zoo's own test data."""
    zoo = formats.read_zoo(zoo_folder, evaluable=True)
    if any(r.task is not None for r in zoo.refs):
        # the hook samples without a task condition, and a task model is only scored on its own task
        raise RPGInputError(f"{zoo.folder / formats.MANIFEST}: a task zoo cannot be scored by the training "
                            "evaluation hook (train.eval_every); evaluate its generated sets with `rpg evaluate`")
    domain = make_domain(zoo, data_cfg, torch.device(device), batch_size)

    def evaluate(state_dicts: list[dict[str, torch.Tensor]]) -> dict:
        metrics = [domain.score(sd, f"generated model {i} (training evaluation hook)",
                                formats.ModelRef(zoo.folder / f"generated_{i}")).metric
                   for i, sd in enumerate(state_dicts)]
        return {"acc_mean": round(statistics.fmean(metrics), 2), "acc_min": round(min(metrics), 2),
                "acc_max": round(max(metrics), 2)}

    return evaluate
