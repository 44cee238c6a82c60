"""RPG: recurrent prototypes + a token-wise conditional diffusion model (paper §2.3, Eq. 4–5).

    e      = PE + bias + S[perm]  or  PE + task           (B, L, d_model)    rpg.generator.embeddings
    P      = f(e)                                          (B, L, d_cond)     rpg.generator.recurrent
    L_diff = E || eps - eps_theta(K_t, t, P) ||^2 on a random subset of tokens    rpg.generator.denoiser

The noise schedule lives in rpg.generator.schedulers and the sampling loop in rpg.generator.sampling;
this module only holds the networks and computes the training loss.
"""

from __future__ import annotations

import torch
from torch import nn

from rpg.generator.config import RPGConfig
from rpg.generator.denoiser import ConditionalUNet1D
from rpg.generator.embeddings import RecurrentInput
from rpg.generator.recurrent import RecurrentModel
from rpg.generator.schedulers import DDPMScheduler


class RPG(nn.Module):
    def __init__(self, cfg: RPGConfig, layer_ids: torch.Tensor, token_ids: torch.Tensor, num_permutations: int):
        super().__init__()
        self.cfg = cfg
        self.num_tokens, self.token_size = len(layer_ids), cfg.tokenizer.token_size
        self.inputs = RecurrentInput(cfg.condition, layer_ids, token_ids, cfg.recurrent.d_model[0], num_permutations,
                                     position=cfg.position)
        self.recurrent = RecurrentModel(cfg.recurrent)
        self.denoiser = ConditionalUNet1D(cfg.denoiser, self.token_size, cfg.recurrent.d_model[-1])
        dc = cfg.diffusion
        self.noise_schedule = DDPMScheduler(dc.num_train_timesteps, dc.beta_start, dc.beta_end, dc.beta_schedule)

    def prototypes(self, batch: int, permutation: torch.Tensor | None = None,
                   task: torch.Tensor | None = None, segment: int | None = None) -> torch.Tensor:
        """One pass of the recurrent model: (B, L, d_cond); `segment` tokens at a time if given."""
        return self.recurrent(self.inputs(batch, permutation, task), segment=segment)

    def forward(self, x0: torch.Tensor, mask: torch.Tensor, permutation: torch.Tensor | None = None,
                task: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Diffusion loss. x0 (B, L, d) normalised tokens (padding 0), mask (L, d) True on real values."""
        B, L, d = x0.shape
        P = self.prototypes(B, permutation, task)                      # (B, L, d_cond)
        x0, P = x0.reshape(B * L, d), P.reshape(B * L, -1)             # tokens of all checkpoints pooled
        m = mask.expand(B, L, d).reshape(B * L, d)
        n = self.cfg.diffusion.diffusion_batch
        if n is not None and n < B * L:
            # "diffusion batch": a random subset of tokens, pooled over the mini-batch
            # (official model/diffusion.py, `DiffusionLoss.forward`);
            # the recurrent model still ran over every token, gradients reach it through the chosen ones.
            idx = torch.randperm(B * L, generator=generator, device="cpu")[:n].to(x0.device)
            x0, P, m = x0[idx], P[idx], m[idx]
        t = torch.randint(0, self.cfg.diffusion.num_train_timesteps, (x0.shape[0],), generator=generator,
                          device="cpu").to(x0.device)                  # one step per token
        eps = torch.randn(x0.shape, generator=generator, device="cpu").to(x0.device, x0.dtype)
        x_t = self.noise_schedule.add_noise(x0, eps, t)
        eps_hat = self.denoiser(x_t, t, P)
        # padded slots carry noise too but never enter the loss (official: NaN + nanmean)
        err = (eps_hat.float() - eps.float()).pow(2) * m
        return err.sum() / m.sum().clamp(min=1)
