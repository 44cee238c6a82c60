"""Inputs of the recurrent model: position embeddings and conditions (paper §2.3;
official dataset/dataset.py `get_position_embedding`, model/__init__.py).

The recurrent model never sees parameter tokens. Its input for token j of layer i is
    e = PE(i, j) + bias + S[perm]          (unconditional / permutation-conditioned models)
    e = PE(i, j) + task term               (task-conditioned: no bias, no permutation state)
all of width d_model, *added* together (official code: ClassConditionMambaDiffusion has neither the
`to_condition` bias nor `to_permutation_state`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rpg.generator.config import ConditionConfig


def sinusoid_2d(layer_ids: torch.Tensor, token_ids: torch.Tensor, dim: int) -> torch.Tensor:
    """(L,) layer index i, (L,) token-in-layer index j -> (L, dim) 2D sinusoidal embedding.

    First half encodes j, second half encodes i; sin/cos interleaved; base 10000 over half the width
    (official dataset/dataset.py, `positional_embedding_2d`)."""
    if dim % 4:
        raise ValueError(f"2D position embedding needs a width divisible by 4, got {dim}")
    half = dim // 2
    k = torch.arange(half // 2, dtype=torch.float64)
    omega = torch.exp(-2 * k * math.log(10000.0) / half)            # (half/2,)
    pe = torch.empty(len(layer_ids), dim, dtype=torch.float64)
    aj = token_ids.double()[:, None] * omega[None]                    # (L, half/2)
    ai = layer_ids.double()[:, None] * omega[None]
    pe[:, 0:half:2], pe[:, 1:half:2] = torch.sin(aj), torch.cos(aj)
    pe[:, half::2], pe[:, half + 1::2] = torch.sin(ai), torch.cos(ai)
    return pe.float()


def sinusoid_1d(num_tokens: int, dim: int) -> torch.Tensor:
    """Transformer sinusoid over the flat token index, (L, dim) (the "encode by index" ablation)."""
    pos = torch.arange(num_tokens, dtype=torch.float64)[:, None]
    omega = torch.pow(10000.0, -torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)
    pe = torch.zeros(num_tokens, dim, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * omega), torch.cos(pos * omega)
    return pe.float()


class RecurrentInput(nn.Module):
    """Builds the (B, L, d_model) input sequence of the recurrent model from conditions."""

    def __init__(self, cfg: ConditionConfig, layer_ids: torch.Tensor, token_ids: torch.Tensor, d_model: int,
                 num_permutations: int, position: str | None = None):
        """`position`: the resolved embedding (RPGConfig.position); default cfg.position, `auto` = 2d."""
        super().__init__()
        self.cfg = cfg
        L = len(layer_ids)
        position = position or cfg.position
        position = "2d" if position == "auto" else position
        self.position = position
        if position in ("2d", "learnable"):
            pe = sinusoid_2d(layer_ids, token_ids, d_model)
        elif position == "1d":
            pe = sinusoid_1d(L, d_model)
        else:
            pe = torch.zeros(L, d_model)
        if position == "learnable":
            self.pe = nn.Parameter(pe)        # "learnable" ablation: initialised from the 2D sinusoid
        else:
            self.register_buffer("pe", pe, persistent=False)  # fixed; rebuilt from the layout on load
        conditioned = cfg.task != "none"
        # Official code: Linear(1, d_model) applied to a zero input == a learned global bias vector; the task
        # model has none.
        self.bias = None if conditioned else nn.Parameter(torch.empty(d_model).uniform_(-1.0, 1.0))
        self.num_permutations = num_permutations
        if conditioned:
            self.permutation = None          # the task model uses no permutation state (train: None, sample: False)
        elif cfg.permutation == "learned":
            # nn.Embedding(#ckpts, d_model) with every entry 1/d_model, trainable (official code).
            self.permutation = nn.Parameter(torch.full((num_permutations, d_model), 1.0 / d_model))
        elif cfg.permutation == "onehot":
            # Paper: a fixed one-hot state per checkpoint, embedded as the first `num_permutations` axes.
            if num_permutations > d_model:
                raise ValueError(f"onehot permutation states need #permutations ({num_permutations}) <= d_model")
            self.register_buffer("permutation", torch.eye(num_permutations, d_model), persistent=False)
        else:
            self.permutation = None
        if cfg.task != "none":
            self.task_encoder = nn.Sequential(
                nn.Linear(cfg.task_dim, cfg.task_hidden),
                nn.SiLU() if cfg.task == "gated" else nn.LayerNorm(cfg.task_hidden))
            self.task_proj = nn.Linear(cfg.task_hidden, d_model)
            if cfg.task == "gated":
                # only the last k positions see the task (official ClassConditionMambaDiffusion)
                gate = torch.zeros(L, 1)
                gate[-cfg.task_tokens:] = 1.0
                self.register_buffer("task_gate", gate, persistent=False)
            else:
                # whole-sequence form: one condition vector -> a per-position condition over all L tokens
                self.task_seq = nn.Sequential(nn.Conv1d(1, L, 9, padding=4), nn.GroupNorm(1, L),
                                              nn.Conv1d(L, L, 9, padding=4))

    def forward(self, batch: int, permutation: torch.Tensor | None = None,
                task: torch.Tensor | None = None) -> torch.Tensor:
        """permutation: (B,) long or None (adds nothing); task: (B, task_dim) or None -> (B, L, d_model)."""
        e = self.pe if self.bias is None else self.pe + self.bias
        e = e[None].expand(batch, -1, -1)                                # (B, L, d_model)
        if permutation is not None and self.permutation is not None:
            e = e + self.permutation[permutation][:, None, :]            # (B, 1, d_model) broadcast over L
        if self.cfg.task != "none":
            if task is None:
                raise ValueError("this generator is task-conditioned: pass a task vector")
            h = self.task_proj(self.task_encoder(task.float()))[:, None, :]  # (B, 1, d_model)
            if self.cfg.task == "gated":
                e = e + h * self.task_gate                               # (B, L, d_model), zero but last k
            else:
                e = e + self.task_seq(h)                                 # Conv1d over (B, 1, d) -> (B, L, d)
        return e
