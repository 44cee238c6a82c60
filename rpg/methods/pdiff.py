"""p-diff (Wang et al. 2024, "Neural Network Diffusion") as a generation method: `rpg train --method pdiff`.

1. A 1-D convolutional autoencoder on the whole flattened parameter vector x (P values, zero-padded to a multiple
   of 2^n for n stride-2 stages): Conv1d(k, stride 2) -> BatchNorm -> LeakyReLU per stage, a dense layer to the
   latent; the decoder mirrors it with ConvTranspose1d -> BatchNorm -> ELU and a final Conv1d to one channel.
   p-diff's noise augmentation: x + sigma_in * eps before encoding and z = mu + sigma_z * eps before decoding
   (sigma_in = 0.001, sigma_z = 0.1). With both 0 it is the deterministic autoencoder RPG's authors ran for
   Table 8 (CNN(m), `use_var=False`): preset `rpg_cnn_m`.
2. A DDPM on the latents mu of the clean vectors (encoder frozen) with p-diff's `OneDimCNN` denoiser.
3. `ae.enabled=false`: no autoencoder, the DDPM runs on the normalised vector itself, padded to a multiple of
   `pad_multiple` with the padding masked out of the loss (RPG's CNN(s) reproduction): preset `rpg_cnn_s`.

Memory: the dense layers hold c_last * P / 2^n * latent_dim weights each, the activations grow with P: linear
in the number of generated parameters (without the autoencoder the time MLP alone has P^2 weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from rpg.errors import RPGInputError
from rpg.methods.baseline import BaselineMethod, DiffusionSpec, StageConfig, StagedFit, VectorDDPM, ZooData, pad_to


@dataclass
class AEConfig:
    enabled: bool = True
    channels: list[int] = field(default_factory=lambda: [64, 128, 256, 256, 32])
    latent_dim: int = 128
    kernel_size: int = 7
    input_noise: float = 0.001       # sigma_in; 0 with latent_noise 0 = RPG's deterministic reproduction
    latent_noise: float = 0.1        # sigma_z
    train: StageConfig = field(default_factory=lambda: StageConfig(steps=500, batch_size=50, lr=2e-5))


@dataclass
class PDiffConfig:
    ae: AEConfig = field(default_factory=AEConfig)
    diffusion: DiffusionSpec = field(default_factory=DiffusionSpec)
    pad_multiple: int = 64           # direct form: vector padded to a multiple of this (2864 -> 2880)
    seed: int = 0
    save_every: int = 500

    def validate(self) -> None:
        if self.ae.enabled and (not self.ae.channels or self.ae.kernel_size % 2 == 0 or self.ae.latent_dim < 1):
            raise RPGInputError("ae: needs channels, an odd kernel_size and latent_dim >= 1")
        if self.ae.input_noise < 0 or self.ae.latent_noise < 0 or self.pad_multiple < 1:
            raise RPGInputError("ae.input_noise/latent_noise must be >= 0, pad_multiple >= 1")
        self.ae.train.validate("ae.train")
        self.diffusion.validate("diffusion")


class OneDimAE(nn.Module):
    """p-diff's parameter autoencoder (the `OneDimVAE` of the updated code, with a fixed latent std)."""

    def __init__(self, cfg: AEConfig, length: int):
        super().__init__()
        ch, k, n = cfg.channels, cfg.kernel_size, len(cfg.channels)
        self.cfg, self.length = cfg, length
        self.inner = length >> n                              # length after n stride-2 stages
        enc, c_in = [], 1
        for h in ch:
            enc += [nn.Conv1d(c_in, h, k, stride=2, padding=k // 2), nn.BatchNorm1d(h), nn.LeakyReLU()]
            c_in = h
        self.encoder = nn.Sequential(*enc)
        self.to_latent = nn.Linear(ch[-1] * self.inner, cfg.latent_dim)
        self.fc_mu = nn.Linear(cfg.latent_dim, cfg.latent_dim)
        self.to_decode = nn.Linear(cfg.latent_dim, ch[-1] * self.inner)
        dec, rev = [], ch[::-1]
        for a, b in zip(rev[:-1], rev[1:]):
            dec += [nn.ConvTranspose1d(a, b, k, stride=2, padding=k // 2, output_padding=1), nn.BatchNorm1d(b),
                    nn.ELU()]
        dec += [nn.ConvTranspose1d(ch[0], ch[0], k, stride=2, padding=k // 2, output_padding=1),
                nn.BatchNorm1d(ch[0]), nn.ELU(), nn.Conv1d(ch[0], 1, k, padding=k // 2)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, length) -> mu (B, latent_dim)."""
        h = self.encoder(x[:, None, :])                                   # (B, c_last, length / 2^n)
        return self.fc_mu(self.to_latent(h.flatten(1)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, length)."""
        h = self.to_decode(z).view(len(z), self.cfg.channels[-1], self.inner)
        return self.decoder(h)[:, 0, :]


class PDiffMethod(BaselineMethod):
    name = "pdiff"
    display_name = "p-diff"
    stages = ("ae.train", "diffusion.train")   # dotted config keys of each training stage (steps, batch size)
    config_class = PDiffConfig

    def diffusion_spec(self, cfg: PDiffConfig) -> DiffusionSpec:
        return cfg.diffusion

    def _length(self, cfg: PDiffConfig, num_params: int) -> int:
        multiple = 2 ** len(cfg.ae.channels) if cfg.ae.enabled else cfg.pad_multiple
        return -(-num_params // multiple) * multiple

    def build(self, cfg: PDiffConfig, data: ZooData):
        length = self._length(cfg, data.num_params)
        modules: dict[str, nn.Module] = {}
        if cfg.ae.enabled:
            modules["ae"] = OneDimAE(cfg.ae, length)
        dim = cfg.ae.latent_dim if cfg.ae.enabled else length
        modules["denoiser"] = VectorDDPM.denoiser(cfg.diffusion, dim)
        return modules, {"length": length, "dim": dim}

    def fit_stages(self, cfg: PDiffConfig, data: ZooData, modules, fit: StagedFit, device: str) -> None:
        length = self._length(cfg, data.num_params)
        x = pad_to(data.x, length).to(device)                                      # (N, length)
        ddpm = VectorDDPM(cfg.diffusion, modules["denoiser"])
        if cfg.ae.enabled:
            ae = modules["ae"]
            real = data.num_params

            def ae_loss(g: torch.Generator) -> torch.Tensor:
                idx = torch.randint(0, len(x), (cfg.ae.train.batch_size,), generator=g)
                xb = x[idx.to(device)]
                noisy = xb + cfg.ae.input_noise * torch.randn(xb.shape, generator=g).to(device)
                mu = ae.encode(noisy)
                z = mu + cfg.ae.latent_noise * torch.randn(mu.shape, generator=g).to(device)
                return F.mse_loss(ae.decode(z)[:, :real], xb[:, :real])

            fit.run("autoencoder", ae.parameters(), cfg.ae.train, ae_loss, [ae])
            ae.eval()
            with torch.no_grad():
                target = ae.encode(x)                                            # (N, latent): mu of clean inputs
            mask = None
        else:
            target = x
            mask = (torch.arange(length) < data.num_params).to(device)           # padding is not in the loss
        scale = _latent_scale(cfg.diffusion, target)
        target = target / scale

        def ddpm_loss(g: torch.Generator) -> torch.Tensor:
            idx = torch.randint(0, len(target), (cfg.diffusion.train.batch_size,), generator=g)
            return ddpm.loss(target[idx.to(device)], g, mask)

        fit.run("diffusion", ddpm.net.parameters(), cfg.diffusion.train, ddpm_loss, [ddpm.net])
        self._scale = scale

    def finalize(self, cfg: PDiffConfig, data: ZooData, modules, device: str) -> dict[str, torch.Tensor]:
        return {"latent_scale": torch.tensor([self._scale])}

    def draw(self, cfg: PDiffConfig, tok, modules, extra, num: int, options, g, device: str) -> torch.Tensor:
        ddpm = VectorDDPM(cfg.diffusion, modules["denoiser"])
        z = ddpm.sample(num, options.sampler, options.steps, g, device) * extra["latent_scale"].to(device)
        return modules["ae"].decode(z) if cfg.ae.enabled else z


def _latent_scale(spec: DiffusionSpec, target: torch.Tensor) -> float:
    return float(target.std()) if spec.latent_scale == "std" else 1.0
