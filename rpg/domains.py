"""The domain seam: one registry line per kind of model (classification, segmentation, language-model adapters).

A domain is one package plus one line in `DOMAINS`. The line names its `Domain` class ("build the model, load its
data, score a state_dict"); the class declares everything else the rest of the code asks a domain for:

- `recipe_class`: the typed config of its zoo recipes. A recipe's `domain:` key (rpg.zoos.recipes) picks it; it
  has from_dict/to_dict/override, and `collect(out, data_cfg, device, progress)` collects the zoo (`rpg collect`
  takes one path for every domain);
- `metric_name`, `extra_metrics`, and `dataset_names` (how tables print the data sets it scores on);
- `table_module`: the module of its package that registers its own paper tables (rpg.tables imports it), if any;
- optional capabilities, with their "absent" defaults here: `fingerprint()` (None: its scores are not cached,
  rpg.evaluation.cache), `baseline()` (None: no model without what the zoo trains), `label_counts` (None: no
  per-class test counts).

Evaluation, similarity and the summaries (rpg.evaluation) see only `Outcome`s. The zoo manifest's `domain` key
picks the class (formats.Zoo.domain; default "classification"). Domain modules are imported on use, so one domain's
heavy dependencies (mmsegmentation, peft, ...) are never needed by another.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from rpg import formats
from rpg.errors import RPGInputError


@dataclass
class Outcome:
    """The score of one state_dict.

    metric: the domain's metric in percent, higher is better (classification: top-1 accuracy).
    mistakes: (N_test,) bool, which test samples the model gets wrong (the IoU similarity of App. B.4 compares
        these sets); None for a domain without per-sample errors (no similarity analysis then).
    """

    metric: float
    mistakes: torch.Tensor | None = None
    extra: dict[str, float] | None = None   # further metrics in percent (segmentation: mAcc, aAcc), summarized too
    # the metric per part of the test data, in percent: per original class (classification; the unseen-task
    # study's Tab. 10 reads it) or per lm-eval task (language models); None where a domain has no parts
    breakdown: dict[str, float] | None = None


class Domain:
    """What every domain's scoring class provides. Subclasses set the class attributes, and in `__init__`
    `params` (parameters of the evaluated network), `dataset` (name of the test data, written into the eval JSON)
    and `split` (which split is scored)."""

    metric_name: ClassVar[str]                         # e.g. "top-1 accuracy"; the eval JSON's `metric`
    extra_metrics: ClassVar[tuple[str, ...]] = ()      # names of Outcome.extra
    recipe_class: ClassVar[type]                       # its zoo recipe config (rpg.zoos.recipes)
    dataset_names: ClassVar[dict[str, str]] = {}       # dataset name -> display name in the tables
    table_module: ClassVar[str | None] = None          # e.g. "rpg.segmentation.table": registers its paper tables
    params: int
    dataset: str
    split: str
    label_counts: list[int] | None = None              # test samples per original class, where there are classes

    def __init__(self, zoo: formats.Zoo, data_cfg=None, device: str | torch.device = "cpu",
                 batch_size: int | None = None):
        raise NotImplementedError

    def score(self, state_dict: dict[str, torch.Tensor], source: str, ref: formats.ModelRef) -> Outcome:
        """Load `state_dict` strictly (errors name `source`) and score it; `ref` carries the task/condition."""
        raise NotImplementedError

    def fingerprint(self) -> str | None:
        """What a score depends on besides the weights (architecture, test data, settings), for the cache of the
        originals' scores; None: not cacheable (the data lives outside this process)."""
        return None

    def baseline(self) -> Outcome | None:
        """The model the zoo starts from, without what it trains (LM domain: no adapter); `rpg evaluate` writes it
        as `baseline`. None: no such model."""
        return None


# domain name (a zoo manifest's or recipe's `domain`) -> "module:Class" of its Domain (or the class itself)
DOMAINS: dict[str, str | type[Domain]] = {
    "classification": "rpg.evaluation.classification:ClassificationDomain",
    "segmentation": "rpg.segmentation.domain:SegmentationDomain",
    "language_model": "rpg.lm.domain:LanguageModelDomain",
}
DEFAULT_DOMAIN = "classification"


def domain_class(name: Any, where: Any = "domain") -> type[Domain]:
    """The Domain class registered as `name`; an unknown name is an error naming `where`."""
    if not isinstance(name, str) or name not in DOMAINS:
        raise RPGInputError(f"{where}: domain: unknown domain {name!r} (known: {', '.join(sorted(DOMAINS))})")
    entry = DOMAINS[name]
    if not isinstance(entry, str):
        return entry
    module, cls = entry.split(":")
    return getattr(importlib.import_module(module), cls)


def make_domain(zoo: formats.Zoo, data_cfg=None, device: str | torch.device = "cpu",
                batch_size: int | None = None) -> Domain:
    """The Domain named by the zoo manifest's `domain` key, built for this zoo."""
    return domain_class(zoo.domain, zoo.folder / formats.MANIFEST)(zoo, data_cfg, device, batch_size)


def recipe_class(name: Any, where: Any) -> type:
    """The recipe config class of domain `name` (a recipe's `domain:`)."""
    return domain_class(name, where).recipe_class


def domain_classes() -> list[type[Domain]]:
    """Every registered Domain class, in registry order."""
    return [domain_class(name) for name in DOMAINS]


def dataset_names() -> dict[str, str]:
    """Dataset name -> how tables print it, as the domains declare them (a name declared twice must agree)."""
    out: dict[str, str] = {}
    for cls in domain_classes():
        for key, name in cls.dataset_names.items():
            if out.setdefault(key, name) != name:
                raise ValueError(f"dataset {key!r}: printed as {out[key]!r} and as {name!r} ({cls.__name__})")
    return out


def table_modules() -> list[str]:
    """The modules in which domains register their own paper tables (Domain.table_module)."""
    return [cls.table_module for cls in domain_classes() if cls.table_module]
