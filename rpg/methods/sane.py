"""SANE (Schürholt, Mahoney, Borth 2024, "Towards Scalable and Versatile Weight Space Learning") as a generation
method: `rpg train --method sane`.

1. Tokens: one row per output neuron (weights with the bias appended), cut into tokens of `token_size` values and
   zero-padded per row; each token has a position (n: index in the sequence, l: layer, k: neuron).
2. A sequential autoencoder over WINDOWS of `window` consecutive tokens: Linear(token_size -> d) + position
   embedding [E_seq[n] + E_layer[l], E_chan[k]] (three learned tables of width d/2), a pre-LN transformer without
   causal mask, a Linear to one latent vector per token; the decoder mirrors it. Loss: (1 - gamma) * masked MSE
   + gamma * NT-Xent (temperature 0.1) between two views x * (1 + 0.1 eps) of the same window, gamma = 0.05.
3. Sampling: encode the training models ("anchors") window by window with halo context, fit a Gaussian KDE
   (bandwidth 0.2) per token position over the anchors' token embeddings (`kde.per: token`), draw, decode with
   the same halo windows.

Departures (docs/faithfulness.md): no permutation augmentation and no canonicalisation (our zoos are snapshots of
one run, which share a basin); weights are normalised per tensor (RPG's normalisation) rather than per layer
with the bias; BatchNorm tensors are tokens like any other instead of being left out and re-estimated; no top-k
selection of samples by validation accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from rpg.errors import RPGInputError
from rpg.methods.baseline import (
    BaselineMethod,
    NeuronLayout,
    StageConfig,
    StagedFit,
    ZooData,
    kde_sample,
    neuron_layout,
    nt_xent,
)


@dataclass
class SANEModelConfig:
    token_size: int = 289            # values per token (0: the longest neuron row)
    d_model: int = 1024
    heads: int = 8
    layers: int = 8
    latent_dim: int = 128
    dropout: float = 0.0
    window: int = 64                 # tokens per training window
    halo: int = 16                   # context tokens on each side when encoding/decoding whole models
    gamma: float = 0.05
    temperature: float = 0.1
    view_noise: float = 0.1          # multiplicative: x * (1 + view_noise * eps)
    projection: int = 30


@dataclass
class SANEKDEConfig:
    bandwidth: float = 0.2
    per: str = "token"               # token (one KDE per position) | coordinate (SANE's `individual`)


@dataclass
class SANEConfig:
    model: SANEModelConfig = field(default_factory=SANEModelConfig)
    kde: SANEKDEConfig = field(default_factory=SANEKDEConfig)
    train: StageConfig = field(default_factory=lambda: StageConfig(steps=2000, batch_size=32, lr=1e-4,
                                                                   weight_decay=3e-9, warmup_steps=100))
    seed: int = 0
    save_every: int = 500

    def validate(self) -> None:
        m = self.model
        if m.d_model % 2 or m.d_model % m.heads:
            raise RPGInputError(f"model.d_model={m.d_model}: must be even and divisible by model.heads")
        if m.window < 1 or m.halo < 0 or 2 * m.halo >= m.window or m.token_size < 0:
            raise RPGInputError("model.window >= 1, 0 <= 2 * model.halo < model.window, model.token_size >= 0")
        if self.kde.per not in ("token", "coordinate"):
            raise RPGInputError(f"kde.per={self.kde.per!r}: expected token or coordinate")
        self.train.validate("train")


class SANE(nn.Module):
    def __init__(self, c: SANEModelConfig, layout: NeuronLayout):
        super().__init__()
        self.c, d, half = c, c.d_model, c.d_model // 2
        self.register_buffer("pos", torch.stack([torch.arange(layout.num_tokens), layout.layer, layout.channel], 1),
                             persistent=False)                                             # (L, 3): n, l, k
        self.e_seq = nn.Embedding(layout.num_tokens, half)
        self.e_layer = nn.Embedding(int(layout.layer.max()) + 1, half)
        self.e_chan = nn.Embedding(int(layout.channel.max()) + 1, half)
        self.tok_in = nn.Linear(layout.token_size, d)
        self.tok_out = nn.Linear(d, layout.token_size)
        self.enc_comp = nn.Linear(d, c.latent_dim)
        self.dec_comp = nn.Linear(c.latent_dim, d)
        self.encoder, self.decoder = self._stack(), self._stack()
        self.project = nn.Sequential(nn.Linear(c.window * c.latent_dim, c.projection), nn.LayerNorm(c.projection),
                                     nn.ReLU(), nn.Linear(c.projection, c.projection), nn.LayerNorm(c.projection),
                                     nn.ReLU())

    def _stack(self) -> nn.TransformerEncoder:
        c = self.c
        layer = nn.TransformerEncoderLayer(c.d_model, c.heads, 4 * c.d_model, c.dropout, activation="gelu",
                                           batch_first=True, norm_first=True, bias=False)
        return nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)

    def embed_pos(self, pos: torch.Tensor) -> torch.Tensor:
        """(W, 3) positions -> (W, d)."""
        return torch.cat([self.e_seq(pos[:, 0]) + self.e_layer(pos[:, 1]), self.e_chan(pos[:, 2])], -1)

    def encode(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Tokens (B, W, token_size) at sequence positions start..start+W-1 -> (B, W, latent_dim)."""
        pe = self.embed_pos(self.pos[start:start + x.shape[1]])
        return self.enc_comp(self.encoder(self.tok_in(x) + pe))

    def decode(self, z: torch.Tensor, start: int) -> torch.Tensor:
        pe = self.embed_pos(self.pos[start:start + z.shape[1]])
        return self.tok_out(self.decoder(self.dec_comp(z) + pe))


def halo_windows(num_tokens: int, window: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Cover 0..L-1 with content windows of window - 2 * halo tokens, each run with up to `halo` context tokens on
    either side: (start, end) of the run and (lo, hi) of its content."""
    step = max(1, window - 2 * halo)
    out = []
    for lo in range(0, num_tokens, step):
        hi = min(num_tokens, lo + step)
        start, end = max(0, lo - halo), min(num_tokens, hi + halo)
        out.append((start, end, lo, hi))
    return out


class SANEMethod(BaselineMethod):
    name = "sane"
    display_name = "SANE"
    stages = ("train",)   # dotted config keys of each training stage (steps, batch size)
    config_class = SANEConfig

    def _layout(self, cfg: SANEConfig, tok) -> NeuronLayout:
        return neuron_layout(tok, cfg.model.token_size)

    def _model_config(self, cfg: SANEConfig, layout: NeuronLayout) -> SANEModelConfig:
        from dataclasses import replace
        return replace(cfg.model, window=min(cfg.model.window, layout.num_tokens))   # a short model: one window

    def build(self, cfg: SANEConfig, data: ZooData):
        layout = self._layout(cfg, data.tok)
        return {"sane": SANE(self._model_config(cfg, layout), layout)}, {"tokens": layout.num_tokens}

    def fit_stages(self, cfg: SANEConfig, data: ZooData, modules, fit: StagedFit, device: str) -> None:
        model = modules["sane"]
        layout = self._layout(cfg, data.tok)
        c = model.c
        tokens = layout.tokens(data.x).to(device)                                   # (N, L, token_size)
        mask = layout.mask.to(device)
        W, L = c.window, layout.num_tokens

        def loss_fn(g: torch.Generator) -> torch.Tensor:
            idx = torch.randint(0, len(tokens), (cfg.train.batch_size,), generator=g).to(device)
            start = int(torch.randint(0, L - W + 1, (1,), generator=g))   # one window position per batch
            x, m = tokens[idx, start:start + W], mask[start:start + W]             # (B, W, t), (W, t)
            v = [x * (1 + c.view_noise * torch.randn(x.shape, generator=g).to(device)) for _ in range(2)]
            z1, z2 = model.encode(v[0], start), model.encode(v[1], start)
            recon = 0.5 * sum(F.mse_loss(model.decode(z, start) * m, x) for z in (z1, z2))
            contrast = nt_xent(model.project(z1.flatten(1)), model.project(z2.flatten(1)), c.temperature)
            return (1 - c.gamma) * recon + c.gamma * contrast

        fit.run("autoencoder", model.parameters(), cfg.train, loss_fn, [model])

    def _encode_all(self, model: SANE, tokens: torch.Tensor) -> torch.Tensor:
        c, L = model.c, tokens.shape[1]
        z = tokens.new_zeros(tokens.shape[0], L, c.latent_dim)
        for start, end, lo, hi in halo_windows(L, c.window, c.halo):
            z[:, lo:hi] = model.encode(tokens[:, start:end], start)[:, lo - start:hi - start]
        return z

    def _decode_all(self, model: SANE, z: torch.Tensor, token_size: int) -> torch.Tensor:
        c, L = model.c, z.shape[1]
        out = z.new_zeros(z.shape[0], L, token_size)
        for start, end, lo, hi in halo_windows(L, c.window, c.halo):
            out[:, lo:hi] = model.decode(z[:, start:end], start)[:, lo - start:hi - start]
        return out

    def finalize(self, cfg: SANEConfig, data: ZooData, modules, device: str) -> dict[str, torch.Tensor]:
        layout = self._layout(cfg, data.tok)
        return {"anchors": self._encode_all(modules["sane"], layout.tokens(data.x).to(device)).cpu()}

    def draw(self, cfg: SANEConfig, tok, modules, extra, num: int, options, g, device: str) -> torch.Tensor:
        layout = self._layout(cfg, tok)
        z = kde_sample(extra["anchors"], num, cfg.kde.bandwidth, g, cfg.kde.per).to(device)   # (num, L, latent)
        tokens = self._decode_all(modules["sane"], z, layout.token_size).cpu() * layout.mask
        return layout.vector(tokens, tok.num_params)
