"""One optimizer and learning-rate schedule factory, used by zoo collection and generator training alike.

- `make_optimizer(params, name, lr, ...)`: `adamw` (torch), `sgd` (momentum), `adamw8bit` (bitsandbytes, the
  official ViT-T recipe; where it does not import, e.g. without a CUDA build, torch AdamW with a printed note).
- `lr_schedule(lr, ...)`: step -> learning rate. Linear warm-up over `warmup_steps` ((step + 1) / warmup of `lr`),
  then `constant`, or `cosine` (or `linear`) from `lr` to `lr_end` over `span` steps (held at `lr_end` afterwards).
  Generator training passes lr = 1 and uses it as the LambdaLR factor (cosine to 0 over the steps after warm-up,
  as CosineAnnealingLR(T_max=steps)); collection sets each step's lr directly, reaching `lr_end` on the phase's
  last step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

OPTIMIZERS = ("adamw", "adamw8bit", "sgd")
SCHEDULES = ("constant", "cosine", "linear")


def make_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    log: Callable[[str], None] = print,
) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw8bit":
        try:
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=weight_decay)
        except Exception as e:  # not installed, or no CUDA build: 32-bit AdamW, and say so
            log(f"note: optimizer adamw8bit unavailable ({type(e).__name__}); using torch AdamW")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def lr_schedule(
    lr: float,
    schedule: str = "constant",
    warmup_steps: int = 0,
    span: int = 1,
    lr_end: float = 0.0,
) -> Callable[[int], float]:
    """step (0-based) -> learning rate; see the module docstring."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")

    def at(step: int) -> float:
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps
        if schedule == "constant":
            return lr
        t = min(1.0, (step - warmup_steps) / span)
        if schedule == "linear":   # Hugging Face Trainer's default (DoRA adapter zoos, rpg.lm.collect)
            return lr_end + (lr - lr_end) * (1.0 - t)
        return lr_end + 0.5 * (lr - lr_end) * (1.0 + math.cos(math.pi * t))

    return at
