"""The domain seam: "build the model, load its data, score a state_dict", one class per domain.

Evaluation, similarity and the summaries (rpg.evaluation.evaluate / .similarity) see only `Outcome`s, so a new
domain (segmentation, language-model adapters, ...) is one class implementing `Domain` plus one line in `DOMAINS`.
The zoo manifest's `domain` key picks the class (formats.Zoo.domain; default "classification").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import torch

from rpg import formats
from rpg.errors import RPGInputError


@dataclass
class Outcome:
    """The score of one state_dict.

    metric: the domain's metric in percent, higher is better (classification: top-1 accuracy).
    mistakes: (N_test,) bool, which test samples the model gets wrong (the IoU similarity of App. B.4 compares
        these sets); None for a domain without per-sample errors (no similarity analysis then).
    breakdown: the metric per part, e.g. per lm-eval task (rpg-eval/1 then holds a `breakdown` summary per part).
    A domain may also offer `baseline() -> Outcome` (the model the zoo starts from, e.g. an LM without adapter);
    `rpg evaluate` then writes it as `baseline`.
    """

    metric: float
    mistakes: torch.Tensor | None = None
    extra: dict[str, float] | None = None   # further metrics in percent (segmentation: mAcc, aAcc), summarized too
    # the metric per part of the test data, in percent: per original class (classification; the unseen-task
    # study's Tab. 10 reads it) or per lm-eval task (language models); None where a domain has no parts
    breakdown: dict[str, float] | None = None


class Domain(Protocol):
    metric_name: str     # e.g. "top-1 accuracy"; written into the eval JSON as `metric`
    params: int          # parameters of the evaluated network (floating tensors of its state_dict)
    dataset: str         # registry name of the test data, written into the eval JSON as `dataset`
    split: str           # which split is scored (e.g. "test")

    def __init__(self, zoo: formats.Zoo, data_cfg, device: str | torch.device, batch_size: int | None): ...

    def score(self, state_dict: dict[str, torch.Tensor], source: str, ref: formats.ModelRef) -> Outcome:
        """Load `state_dict` strictly (errors name `source`) and score it; `ref` carries the task/condition."""
        ...


# domain name (the zoo manifest's `domain`) -> "module:Class" (or the class), imported on use so that one
# domain's heavy dependencies (mmsegmentation, peft, ...) are never needed by another.
DOMAINS: dict[str, str | type] = {
    "classification": "rpg.evaluation.classification:ClassificationDomain",
    "segmentation": "rpg.segmentation.domain:SegmentationDomain",
    "language_model": "rpg.evaluation.language_model:LanguageModelDomain",
}


def domain_class(zoo: formats.Zoo) -> type[Domain]:
    """The Domain class named by the zoo manifest's `domain` key."""
    name = zoo.domain
    if not isinstance(name, str) or name not in DOMAINS:
        raise RPGInputError(f"{zoo.folder / formats.MANIFEST}: domain: unknown domain {name!r} "
                            f"(known: {', '.join(sorted(DOMAINS))})")
    entry = DOMAINS[name]
    if not isinstance(entry, str):
        return entry
    module, cls = entry.split(":")
    return getattr(importlib.import_module(module), cls)


def make_domain(zoo: formats.Zoo, data_cfg=None, device: str | torch.device = "cpu",
                batch_size: int | None = None) -> Domain:
    return domain_class(zoo)(zoo, data_cfg, device, batch_size)
