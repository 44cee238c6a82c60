"""DDPM and DDIM samplers as plain scheduler objects (no model inside), diffusers-style.

    scheduler.set_timesteps(K)
    for t in scheduler.timesteps:
        eps = model(x, t)
        x = scheduler.step(eps, t, x, generator=g).prev_sample

`add_noise` is the forward process used in training. Equations: DDPM, Ho et al. 2020 (arXiv 2006.11239);
DDIM, Song et al. 2020 (arXiv 2010.02502). Both match the official RPG samplers (official model/diffusion.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from rpg.errors import RPGInputError


@dataclass
class SchedulerOutput:
    prev_sample: torch.Tensor           # x_{t-1} (DDPM) or x at the previous grid point (DDIM)
    pred_original_sample: torch.Tensor  # x_0 estimate


@dataclass
class SchedulerConfig:
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"


class _Base:
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 beta_schedule: str = "linear"):
        # RPGInputError (a ValueError): a bad setting reaches the user as one line naming the config key
        if beta_schedule not in ("linear", "scaled_linear"):
            raise RPGInputError(f"diffusion.beta_schedule={beta_schedule!r}: expected 'linear' (the paper's) or "
                                "'scaled_linear' (LDM's, used by D2NWG)")
        if not (isinstance(num_train_timesteps, int) and num_train_timesteps >= 1):
            raise RPGInputError(f"diffusion.num_train_timesteps={num_train_timesteps!r}: must be an integer >= 1")
        if not 0 < beta_start < beta_end < 1:
            raise RPGInputError(f"diffusion.beta_start={beta_start}, beta_end={beta_end}: need "
                                "0 < beta_start < beta_end < 1")
        self.config = SchedulerConfig(num_train_timesteps, beta_start, beta_end, beta_schedule)
        # float64 tables, cast on use: keeps sqrt(1 - alpha_bar) accurate near t = 0
        self.betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        if beta_schedule == "scaled_linear":   # LDM "linear": linear in sqrt(beta), then squared
            self.betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps,
                                        dtype=torch.float64) ** 2
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)       # alpha_bar_t
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1)

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    def to_dict(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def add_noise(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps; timesteps (n,) for x (n, ...)."""
        ab = self.alphas_cumprod.to(original.device)[timesteps].to(original.dtype)
        shape = (-1,) + (1,) * (original.dim() - 1)
        return ab.sqrt().view(shape) * original + (1 - ab).sqrt().view(shape) * noise


class DDPMScheduler(_Base):
    def set_timesteps(self, num_inference_steps: int | None = None) -> None:
        n = self.config.num_train_timesteps
        if num_inference_steps not in (None, n):
            raise RPGInputError(f"--steps {num_inference_steps}: the DDPM sampler runs all {n} steps "
                                "(diffusion.num_train_timesteps); use --sampler ddim for fewer")
        self.timesteps = torch.arange(n - 1, -1, -1)

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> SchedulerOutput:
        t = int(timestep)
        beta, alpha, ab = float(self.betas[t]), float(self.alphas[t]), float(self.alphas_cumprod[t])
        ab_prev = float(self.alphas_cumprod[t - 1]) if t > 0 else 1.0
        # 1. x_0 estimate, eq. (15)
        pred_x0 = (sample - (1 - ab) ** 0.5 * model_output) / ab ** 0.5
        # 2. posterior mean, eq. (11): (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_t)
        mean = (sample - beta / (1 - ab) ** 0.5 * model_output) / alpha ** 0.5
        # 3. posterior variance beta~_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), eq. (7); none at t = 0
        if t > 0:
            var = beta * (1 - ab_prev) / (1 - ab)
            noise = torch.randn(sample.shape, generator=generator, dtype=sample.dtype, device=sample.device)
            mean = mean + var ** 0.5 * noise
        return SchedulerOutput(mean, pred_x0)


class DDIMScheduler(_Base):
    def __init__(self, *args, eta: float = 0.05, offset: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        if not eta >= 0:   # also rejects NaN
            raise RPGInputError(f"diffusion.ddim_eta={eta}: must be >= 0 (0 = deterministic DDIM, 1 = DDPM-like)")
        if not 0 <= offset < self.config.num_train_timesteps:
            raise RPGInputError(f"diffusion.ddim_offset={offset}: must be in 0..{self.config.num_train_timesteps - 1}")
        self.eta, self.offset = eta, offset
        self.set_timesteps(60)

    def to_dict(self) -> dict:
        return {**asdict(self.config), "eta": self.eta, "offset": self.offset}

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Official grid: arange(0, T, T // K) + offset, first K entries, run from the top down; the previous
        point of the lowest entry is t = 0 (so the last step lands on alpha_bar[0], a reference quirk)."""
        n = self.config.num_train_timesteps
        if not (isinstance(num_inference_steps, int) and 0 < num_inference_steps <= n):
            raise RPGInputError(f"--steps {num_inference_steps}: the DDIM sampler takes 1..{n} steps "
                                "(diffusion.num_train_timesteps)")
        grid = (torch.arange(0, n, n // num_inference_steps) + self.offset)[:num_inference_steps]
        grid = grid.clamp(max=n - 1)
        self.num_inference_steps = num_inference_steps
        self.timesteps = grid.flip(0)
        self._prev = {int(t): (int(grid[i - 1]) if i > 0 else 0) for i, t in enumerate(grid)}

    def prev_timestep(self, timestep: int) -> int:
        return self._prev[int(timestep)]

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> SchedulerOutput:
        t = int(timestep)
        ab = float(self.alphas_cumprod[t])
        ab_prev = float(self.alphas_cumprod[self._prev[t]])
        # 1. x_0 estimate, DDIM eq. (12)
        pred_x0 = (sample - (1 - ab) ** 0.5 * model_output) / ab ** 0.5
        # 2. sigma_t(eta), eq. (16)
        sigma = self.eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) ** 0.5
        # 3. x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z, written in x_t as the
        #    official code does: sqrt(ab_prev/ab) x_t + (sqrt(1-ab_prev-s^2) - sqrt(ab_prev (1-ab)/ab)) eps
        coef_eps = (1 - ab_prev - sigma ** 2) ** 0.5 - (ab_prev * (1 - ab) / ab) ** 0.5
        prev = (ab_prev / ab) ** 0.5 * sample + coef_eps * model_output
        if sigma > 0:
            prev = prev + sigma * torch.randn(sample.shape, generator=generator, dtype=sample.dtype,
                                              device=sample.device)
        return SchedulerOutput(prev, pred_x0)


def make_scheduler(sampler: str, num_train_timesteps: int = 1000, beta_start: float = 1e-4,
                   beta_end: float = 0.02, beta_schedule: str = "linear", steps: int | None = None,
                   eta: float = 0.05, offset: int = 1) -> DDPMScheduler | DDIMScheduler:
    base = dict(num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
                beta_schedule=beta_schedule)
    if sampler == "ddpm":
        s = DDPMScheduler(**base)
        s.set_timesteps(steps)
        return s
    if sampler == "ddim":
        s = DDIMScheduler(**base, eta=eta, offset=offset)
        s.set_timesteps(steps or 60)
        return s
    raise RPGInputError(f"--sampler {sampler!r}: unknown sampler (ddpm | ddim)")
