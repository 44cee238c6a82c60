"""The 1-D convolution denoiser shared by all tokens (paper §2.3, App. A.3; official model/denoiser.py).

One token is a 1-channel signal of length d. Every convolution sees ``(h + c) * t``: the prototype's
embedding c is added and the time embedding t multiplied, both broadcast over channels; convolutions keep
the full length (no down-sampling); encoder outputs are added back in the decoder (U-Net skips).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rpg.generator.config import DenoiserConfig


def timestep_sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(n,) integer steps -> (n, dim) [cos, sin] features with frequencies exp(-ln(10000) k / (dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ConditionalUNet1D(nn.Module):
    def __init__(self, cfg: DenoiserConfig, token_size: int, condition_dim: int):
        super().__init__()
        self.cfg, self.d = cfg, token_size
        ch, k = cfg.channels, cfg.kernel_size
        n_enc = len(ch) // 2 + 1
        self.n_skip = n_enc - 2           # encoder outputs kept for the decoder
        self.convs = nn.ModuleList(nn.Conv1d(ch[i], ch[i + 1], k, padding=k // 2) for i in range(len(ch) - 1))
        # BatchNorm over the token batch on every conv but the last (official code)
        self.norms = nn.ModuleList(nn.BatchNorm1d(ch[i + 1]) for i in range(len(ch) - 2))
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_embed_dim, token_size), nn.SiLU(),
                                      nn.Linear(token_size, token_size))
        self.cond_embed = nn.Linear(condition_dim, token_size)

    def embed_condition(self, prototypes: torch.Tensor) -> torch.Tensor:
        """(n, condition_dim) -> (n, 1, d). Computed once per token, outside the sampling loop."""
        return self.cond_embed(prototypes)[:, None, :]

    def embed_time(self, t: torch.Tensor) -> torch.Tensor:
        """(n,) or (1,) -> (n, 1, d)."""
        return self.time_mlp(timestep_sinusoid(t, self.cfg.time_embed_dim))[:, None, :]

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, prototypes: torch.Tensor | None = None, *,
                c_emb: torch.Tensor | None = None, t_emb: torch.Tensor | None = None) -> torch.Tensor:
        """x_t (n, d), t (n,) or (1,), prototypes (n, condition_dim) -> predicted noise (n, d).

        c_emb / t_emb may be passed precomputed (sampling reuses them across steps/tokens)."""
        c = self.embed_condition(prototypes) if c_emb is None else c_emb   # (n, 1, d)
        te = self.embed_time(t) if t_emb is None else t_emb                 # (n or 1, 1, d)
        h = x_t[:, None, :]                                                 # (n, 1, d): one channel
        skips = []
        last = len(self.convs) - 1
        n_enc = self.n_skip + 2
        for i, conv in enumerate(self.convs):
            if i >= n_enc:                                                  # decoder: add mirrored skip
                h = h + skips.pop()
            h = conv((h + c) * te)
            if i < last:
                h = F.elu(self.norms[i](h))
            if i < self.n_skip:
                skips.append(h)
        return h[:, 0, :]


def fold_batchnorm(unet: ConditionalUNet1D) -> ConditionalUNet1D:
    """A copy for sampling with each eval-mode BatchNorm folded into the conv before it
    (y = gamma (Wx + b - mu) / sqrt(var + eps) + beta is again a conv): one pass less per layer and step."""
    import copy
    # Only the convs change: every other tensor is shared with `unet` (memo), not copied. RPG-Large's
    # condition and time Linears are 1 GiB each, and a full copy ran ConvNeXt-L's CPU generation out of memory.
    own = {id(t) for conv in unet.convs for t in conv.parameters()}
    memo = {id(t): t for t in (*unet.parameters(), *unet.buffers()) if id(t) not in own}
    folded = copy.deepcopy(unet, memo).eval()
    with torch.no_grad():
        for conv, bn in zip(folded.convs, folded.norms):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)      # (C_out,)
            conv.weight.mul_(scale[:, None, None])
            conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
        folded.norms = nn.ModuleList(nn.Identity() for _ in folded.norms)
    return folded
