"""D2NWG (Soro et al., ICLR 2025, "Diffusion-based Neural Network Weights Generation") as a generation method:
`rpg train --method d2nwg`.

1. Chunking: the flattened vector is zero-padded and cut into C chunks of `chunk` values; a SHARED
   Linear(chunk -> fdim) + LeakyReLU maps every chunk, and the (C, fdim) result is read as an image of
   C * fdim / res^2 channels and res x res pixels (how the official code fits ResNet-18 into a conv VAE).
2. A KL-VAE on that image (Stable-Diffusion-style: conv_in, per level ResNet blocks with GroupNorm + SiLU and a
   stride-2 down-sampling, a middle block, a conv to 2 * z_channels for mean and log-variance; the decoder
   mirrors it), then the inverse chunk Linear(fdim -> chunk). Loss as the code's: L1 with a learned scalar
   log-variance (|x - x'| / e^s + s, summed, / B) + kl_weight * KL + mse_weight * MSE.
3. Latent diffusion: the latents (rescaled by 1 / std, LDM's scale_by_std) flattened to one vector, a DDPM with
   T = 1024 and LDM's "linear" schedule (linear in sqrt(beta) from 0.0015 to 0.0155). In Table 8's single-dataset
   setting the dataset condition is constant, so the diffusion is unconditional.

Departures (docs/faithfulness.md): the latent denoiser is p-diff's 1-D conv `OneDimCNN` over the flattened latent
instead of LDM's 2-D attention U-Net (the digest allows this simplification); no self-attention blocks in the VAE;
the vector is RPG's per-tensor normalised one instead of raw weights times a global scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from rpg.errors import RPGInputError
from rpg.methods.baseline import BaselineMethod, DiffusionSpec, StageConfig, StagedFit, VectorDDPM, ZooData, pad_to


@dataclass
class VAEConfig:
    chunk: int = 2864                # in_dim: values per chunk
    fdim: int = 4096                 # each chunk -> fdim features
    resolution: int = 64             # image side
    ch: int = 128
    ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2])
    num_res_blocks: int = 2
    z_channels: int = 4
    kl_weight: float = 1e-6
    mse_weight: float = 1000.0
    latent: str = "sample"           # sample (LDM encodes with a posterior draw) | mean
    train: StageConfig = field(default_factory=lambda: StageConfig(steps=2000, batch_size=64, lr=1.115e-3,
                                                                   schedule="constant"))


def _default_diffusion() -> DiffusionSpec:
    return DiffusionSpec(num_train_timesteps=1024, beta_start=0.0015, beta_end=0.0155, beta_schedule="scaled_linear",
                         sampling_steps=1024, latent_scale="std",
                         train=StageConfig(steps=2000, batch_size=64, lr=1.133e-4, warmup_steps=100,
                                           schedule="constant"))


@dataclass
class D2NWGConfig:
    vae: VAEConfig = field(default_factory=VAEConfig)
    diffusion: DiffusionSpec = field(default_factory=_default_diffusion)
    seed: int = 0
    save_every: int = 500

    def validate(self) -> None:
        v = self.vae
        if v.resolution % 2 ** (len(v.ch_mult) - 1):
            raise RPGInputError(f"vae.resolution={v.resolution}: must be divisible by 2^(len(ch_mult) - 1)")
        if min(v.chunk, v.fdim, v.ch, v.z_channels, v.num_res_blocks) < 1 or v.latent not in ("sample", "mean"):
            raise RPGInputError("vae: chunk, fdim, ch, z_channels, num_res_blocks >= 1; latent sample|mean")
        v.train.validate("vae.train")
        self.diffusion.validate("diffusion")


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, c), c, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.n1, self.c1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.n2, self.c2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        return self.skip(x) + self.c2(F.silu(self.n2(h)))


class ChunkVAE(nn.Module):
    def __init__(self, c: VAEConfig, num_params: int):
        super().__init__()
        self.c = c
        chunks = -(-num_params // c.chunk)
        pix = c.resolution ** 2
        step = pix // math.gcd(c.fdim, pix)              # chunks must fill whole image channels
        self.chunks = -(-chunks // step) * step
        self.in_ch = self.chunks * c.fdim // pix
        self.length = self.chunks * c.chunk
        self.proj_in, self.proj_out = nn.Linear(c.chunk, c.fdim), nn.Linear(c.fdim, c.chunk)
        widths = [c.ch * m for m in c.ch_mult]
        enc: list[nn.Module] = [nn.Conv2d(self.in_ch, c.ch, 3, padding=1)]
        w_prev = c.ch
        for i, w in enumerate(widths):
            for _ in range(c.num_res_blocks):
                enc.append(ResBlock(w_prev, w))
                w_prev = w
            if i < len(widths) - 1:
                enc.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
        enc += [ResBlock(w_prev, w_prev), _norm(w_prev), nn.SiLU(), nn.Conv2d(w_prev, 2 * c.z_channels, 3, padding=1),
                nn.Conv2d(2 * c.z_channels, 2 * c.z_channels, 1)]                       # + quant_conv
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(c.z_channels, c.z_channels, 1),                 # post_quant_conv
                                nn.Conv2d(c.z_channels, widths[-1], 3, padding=1), ResBlock(widths[-1], widths[-1])]
        w_prev = widths[-1]
        for i, w in reversed(list(enumerate(widths))):
            for _ in range(c.num_res_blocks):
                dec.append(ResBlock(w_prev, w))
                w_prev = w
            if i > 0:
                dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w, w, 3, padding=1)]
        dec += [_norm(w_prev), nn.SiLU(), nn.Conv2d(w_prev, self.in_ch, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.logvar = nn.Parameter(torch.zeros(()))          # the L1 term's learned log-variance s
        side = c.resolution // 2 ** (len(widths) - 1)
        self.latent_shape = (c.z_channels, side, side)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P) -> posterior mean and log-variance, each (B, z, h, w)."""
        c = self.c
        chunks = pad_to(x, c.chunk)
        chunks = F.pad(chunks, (0, self.length - chunks.shape[1])).view(len(x), self.chunks, c.chunk)
        img = F.leaky_relu(self.proj_in(chunks)).reshape(len(x), self.in_ch, c.resolution, c.resolution)
        mean, logvar = self.encoder(img).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z, h, w) -> (B, chunks * chunk)."""
        img = self.decoder(z).reshape(len(z), self.chunks, self.c.fdim)
        return self.proj_out(img).reshape(len(z), -1)


class D2NWGMethod(BaselineMethod):
    name = "d2nwg"
    display_name = "D2NWG"
    stages = ("vae.train", "diffusion.train")   # dotted config keys of each training stage (steps, batch size)
    config_class = D2NWGConfig

    def diffusion_spec(self, cfg: D2NWGConfig) -> DiffusionSpec:
        return cfg.diffusion

    def build(self, cfg: D2NWGConfig, data: ZooData):
        vae = ChunkVAE(cfg.vae, data.num_params)
        dim = math.prod(vae.latent_shape)
        return ({"vae": vae, "denoiser": VectorDDPM.denoiser(cfg.diffusion, dim)},
                {"chunks": vae.chunks, "image_channels": vae.in_ch, "latent_shape": list(vae.latent_shape)})

    def fit_stages(self, cfg: D2NWGConfig, data: ZooData, modules, fit: StagedFit, device: str) -> None:
        vae, v = modules["vae"], cfg.vae
        x = data.x.to(device)
        P = data.num_params

        def vae_loss(g: torch.Generator) -> torch.Tensor:
            xb = x[torch.randint(0, len(x), (v.train.batch_size,), generator=g).to(device)]
            mean, logvar = vae.encode(xb)
            z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=g).to(device)
            rec = vae.decode(z)[:, :P]
            b = len(xb)
            nll = ((rec - xb).abs() / vae.logvar.exp() + vae.logvar).sum() / b
            kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).sum() / b
            return nll + v.kl_weight * kl + v.mse_weight * F.mse_loss(rec, xb)

        fit.run("vae", vae.parameters(), v.train, vae_loss, [vae])
        vae.eval()
        g0 = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            mean, logvar = vae.encode(x)
            if v.latent == "sample":
                mean = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=g0).to(device)
        target = mean.flatten(1)                                                        # (N, z * h * w)
        self._scale = float(target.std()) if cfg.diffusion.latent_scale == "std" else 1.0
        target = target / self._scale
        ddpm = VectorDDPM(cfg.diffusion, modules["denoiser"])

        def ddpm_loss(g: torch.Generator) -> torch.Tensor:
            idx = torch.randint(0, len(target), (cfg.diffusion.train.batch_size,), generator=g).to(device)
            return ddpm.loss(target[idx], g)

        fit.run("diffusion", ddpm.net.parameters(), cfg.diffusion.train, ddpm_loss, [ddpm.net])

    def finalize(self, cfg: D2NWGConfig, data: ZooData, modules, device: str) -> dict[str, torch.Tensor]:
        return {"latent_scale": torch.tensor([self._scale])}

    def draw(self, cfg: D2NWGConfig, tok, modules, extra, num: int, options, g, device: str) -> torch.Tensor:
        vae = modules["vae"]
        z = VectorDDPM(cfg.diffusion, modules["denoiser"]).sample(num, options.sampler, options.steps, g, device)
        z = (z * extra["latent_scale"].to(device)).view(num, *vae.latent_shape)
        return vae.decode(z)
