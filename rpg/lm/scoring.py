"""Scoring an adapter with lm-eval's Python API (the user asked for lm-eval by name).

`Scorer` holds one base model with one DoRA adapter slot (peft) wrapped once in lm-eval's `HFLM`; scoring an
adapter writes its tensors into the slot (strict: rpg.lm.models.load_adapter_state) and runs
`lm_eval.simple_evaluate` on the configured tasks, zero-shot, with per-item samples logged. Nothing is merged
into the base weights, so scoring many adapters one after the other never accumulates rounding error.

The result per task is lm-eval's `acc` (percent) and which items the model got wrong (the IoU similarity of
App. B.4 compares these sets); the overall metric is the unweighted mean over tasks (the paper's Tab. 3 prints
one column per task; the table builder reads the per-task numbers).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from rpg.errors import RPGInputError
from rpg.lm import models
from rpg.lm.config import DoraZooConfig

METRIC = "acc"


@dataclass
class TaskScores:
    """acc per task (percent), their mean, and the wrong items of every task in order ((N_items,) bool)."""

    per_task: dict[str, float]
    mistakes: torch.Tensor

    @property
    def mean(self) -> float:
        return sum(self.per_task.values()) / len(self.per_task)


def _quiet() -> None:
    """lm-eval logs every request batch and warns that a model object (not a name) was passed: keep job logs
    readable. Errors still show."""
    for name in ("lm_eval", "lm-eval", "transformers", "datasets", "peft"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Scorer:
    def __init__(self, cfg: DoraZooConfig, device: str | torch.device = "cpu", batch_size: int | None = None,
                 model=None, tokenizer=None):
        """`model`/`tokenizer`: an already built base model (tests; the collector's own); else cfg.model_dir."""
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        _quiet()
        self.cfg = cfg
        if model is None:
            model, tokenizer = models.load_base(cfg.model_dir, cfg.dtype, device)
        self.peft_model = model if hasattr(model, "peft_config") else models.add_dora(model, cfg.adapter)
        self.peft_model.eval()
        self.tokenizer = tokenizer
        self.params = models.count_adapter_params(self.peft_model)
        # the freshly initialised adapter: B = 0, m = ||W||, i.e. the base model itself ("w/o adapter" row)
        self.identity = models.adapter_state(self.peft_model)
        self.lm = HFLM(pretrained=self.peft_model, tokenizer=tokenizer, backend="causal",
                       batch_size=batch_size or cfg.eval_batch_size, max_length=cfg.max_length * 4,
                       device=str(device))
        include = str(cfg.task_dir) if cfg.task_dir is not None else None
        if include is not None and not Path(include).is_dir():
            raise RPGInputError(f"{include}: local task folder not found (run `rpg lm task --name {cfg.task}`)")
        # indexing lm-eval's ~14k built-in task YAMLs costs ~25 CPU seconds: skip it when every task is local
        self.task_manager = TaskManager(include_path=include, include_defaults=set(cfg.eval_tasks) != {cfg.task})
        self.tasks = list(cfg.eval_tasks)

    @torch.inference_mode()
    def score(self, adapter: dict[str, torch.Tensor] | None, source: str) -> TaskScores:
        """lm-eval accuracy of the base model with `adapter` (None: without adapter)."""
        from lm_eval import simple_evaluate

        models.load_adapter_state(self.peft_model, self.identity if adapter is None else adapter, source)
        was_training = self.peft_model.training
        self.peft_model.eval()
        out = simple_evaluate(model=self.lm, tasks=self.tasks, task_manager=self.task_manager, num_fewshot=0,
                              limit=self.cfg.eval_limit, log_samples=True, bootstrap_iters=0,
                              random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                              fewshot_random_seed=0)
        self.peft_model.train(was_training)
        per_task, wrong = {}, []
        for task in self.tasks:
            res = out["results"].get(task, {})
            key = next((k for k in res if k.split(",")[0] == METRIC), None)
            if key is None:
                raise RPGInputError(f"lm-eval task {task!r}: no {METRIC!r} metric in its results "
                                    f"({', '.join(res) or 'no results'})")
            per_task[task] = 100.0 * float(res[key])
            samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
            wrong.append(torch.tensor([float(s[METRIC]) < 0.5 for s in samples], dtype=torch.bool))
        return TaskScores(per_task, torch.cat(wrong))
