"""The language-model domain (paper Tab. 3): lm-eval accuracy of a base causal LM with a DoRA adapter.

A zoo of this domain holds adapter tensors only; its manifest's `config` is the DoraZooConfig it was collected
with, which names the base model, the adapter config (peft LoraConfig(use_dora=True)) and the lm-eval tasks. Every
state_dict scored here is an adapter: it is written strictly into the peft model's adapter slot and scored with
lm-eval (rpg.lm.scoring). The metric is the mean accuracy over the tasks; `breakdown` holds each task's, and
`baseline()` scores the base model without adapter (the first row of Tab. 3's mini table).
"""

from __future__ import annotations

import torch

from rpg import formats
from rpg.domains import Domain, Outcome
from rpg.errors import RPGInputError
from rpg.lm.config import DoraZooConfig


class LanguageModelDomain(Domain):
    """`Domain` of DoRA adapters: metric = mean lm-eval accuracy (%), mistakes = the wrongly answered items."""

    metric_name = "accuracy"
    recipe_class = DoraZooConfig
    table_module = "rpg.lm.table"                        # Table 3

    def __init__(self, zoo: formats.Zoo, data_cfg=None, device: str | torch.device = "cpu",
                 batch_size: int | None = None):
        from rpg.lm.scoring import Scorer

        cfg = (zoo.manifest or {}).get("config")
        if not isinstance(cfg, dict):
            raise RPGInputError(f"{zoo.folder / formats.MANIFEST}: config: a language_model zoo records its DoRA "
                                "recipe (written by `rpg collect`)")
        try:
            self.cfg = DoraZooConfig.from_dict(cfg)
        except RPGInputError as e:
            raise RPGInputError(f"{zoo.folder / formats.MANIFEST}: config: {e}") from None
        self.scorer = Scorer(self.cfg, device, batch_size)
        self.params = self.scorer.params
        self.dataset = "+".join(self.cfg.eval_tasks)
        self.split = "test"

    def _outcome(self, adapter: dict[str, torch.Tensor] | None, source: str) -> Outcome:
        s = self.scorer.score(adapter, source)
        return Outcome(metric=s.mean, mistakes=s.mistakes, breakdown=s.per_task)

    def score(self, state_dict: dict[str, torch.Tensor], source: str, ref: formats.ModelRef) -> Outcome:
        return self._outcome(state_dict, source)

    def baseline(self) -> Outcome:
        """The base model without adapter (the peft slot holds the identity adapter: B = 0, m = ||W||)."""
        return self._outcome(None, "base model (no adapter)")
