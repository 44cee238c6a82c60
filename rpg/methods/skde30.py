"""SKDE30 (Schürholt et al. 2022, "Hyper-Representations as Generative Models") as a generation method:
`rpg train --method skde30`.

1. A hyper-representation autoencoder over the whole model: one token per neuron (a weight row with its bias,
   embedded by a Linear of that layer's row length), a compression token in front, learned position embeddings,
   a transformer encoder; the compression token's output -> Linear -> latent z. The decoder maps z to d * L
   values (one vector per token), adds position embeddings, runs a transformer and de-embeds every token with its
   layer's Linear. Loss: (1 - gamma) * reconstruction MSE + gamma * NT-Xent between two noisy views of a model
   (on a projection head of z).
2. Sampling "S_KDE30": encode the training models, keep those at or above the 70th accuracy percentile (the top
   30 %), fit a 1-D Gaussian KDE (bandwidth 0.002) per latent coordinate and decode draws from it. The original
   gives every coordinate's KDE random_state=42, so all coordinates reuse one anchor and one noise value
   (`kde.per: model`, the default, as the code); `kde.per: coordinate` draws each coordinate independently.

Memory: the sequence has one token per neuron: attention grows with its square, the decoder's first Linear with
d * L, so the cost grows faster than linearly in the model size (paper Fig. 8: quadratic).
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
class HyperAEConfig:
    d_model: int = 512
    heads: int = 4
    blocks: int = 4
    d_ff: int = 1000
    dropout: float = 0.1
    latent_dim: int = 1200
    projection: list[int] = field(default_factory=lambda: [400, 400, 400, 50])   # contrastive projection head
    gamma: float = 0.5               # weight of the contrastive term
    temperature: float = 0.1
    view_noise: float = 0.05         # std of the additive noise of each view (normalised units)


@dataclass
class KDEConfig:
    top_fraction: float = 0.3        # anchors: models at or above the (1 - f) accuracy quantile
    bandwidth: float = 0.002
    per: str = "model"               # model (the code's shared random_state) | coordinate


@dataclass
class SKDEConfig:
    ae: HyperAEConfig = field(default_factory=HyperAEConfig)
    kde: KDEConfig = field(default_factory=KDEConfig)
    train: StageConfig = field(default_factory=lambda: StageConfig(steps=2000, batch_size=32, lr=1e-4,
                                                                   weight_decay=1e-9, schedule="constant"))
    seed: int = 0
    save_every: int = 500

    def validate(self) -> None:
        if self.ae.d_model % self.ae.heads:
            raise RPGInputError(f"ae.d_model={self.ae.d_model}: must be divisible by ae.heads={self.ae.heads}")
        if not 0 <= self.ae.gamma <= 1 or not 0 < self.kde.top_fraction <= 1 or self.kde.bandwidth < 0:
            raise RPGInputError("ae.gamma in [0, 1], kde.top_fraction in (0, 1], kde.bandwidth >= 0")
        if self.kde.per not in ("model", "coordinate"):
            raise RPGInputError(f"kde.per={self.kde.per!r}: expected model or coordinate")
        self.train.validate("train")


def _transformer(c: HyperAEConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(c.d_model, c.heads, c.d_ff, c.dropout, batch_first=True)
    return nn.TransformerEncoder(layer, c.blocks, enable_nested_tensor=False)


class HyperAE(nn.Module):
    def __init__(self, c: HyperAEConfig, layout: NeuronLayout):
        super().__init__()
        self.c, self.L = c, layout.num_tokens
        self.register_buffer("layer", layout.layer.clone(), persistent=False)
        self.lengths = layout.row_lengths
        self.embed = nn.ModuleList(nn.Linear(n, c.d_model) for n in self.lengths)
        self.deembed = nn.ModuleList(nn.Linear(c.d_model, n) for n in self.lengths)
        self.comp = nn.Parameter(torch.randn(1, 1, c.d_model) * 0.02)
        self.pos_enc = nn.Embedding(self.L + 1, c.d_model)
        self.pos_dec = nn.Embedding(self.L, c.d_model)
        self.encoder, self.decoder = _transformer(c), _transformer(c)
        self.to_latent = nn.Linear(c.d_model, c.latent_dim)
        self.from_latent = nn.Linear(c.latent_dim, c.d_model * self.L)
        head, width = [], c.latent_dim
        for i, w in enumerate(c.projection):
            head += [nn.Linear(width, w)] + ([nn.ReLU()] if i < len(c.projection) - 1 else [])
            width = w
        self.project = nn.Sequential(*head)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, d_tok) neuron rows -> z (B, latent_dim)."""
        h = tokens.new_zeros(tokens.shape[0], self.L, self.c.d_model)
        for i, (emb, n) in enumerate(zip(self.embed, self.lengths)):
            sel = self.layer == i
            h[:, sel] = emb(tokens[:, sel, :n])                                    # that layer's own embedder
        h = torch.cat([self.comp.expand(len(h), -1, -1), h], 1) + self.pos_enc.weight     # (B, L + 1, d)
        return self.to_latent(self.encoder(h)[:, 0])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> (B, L, d_tok), padding slots 0."""
        h = self.from_latent(z).view(len(z), self.L, self.c.d_model) + self.pos_dec.weight
        h = self.decoder(h)
        out = h.new_zeros(len(z), self.L, max(self.lengths))
        for i, (de, n) in enumerate(zip(self.deembed, self.lengths)):
            sel = self.layer == i
            out[:, sel, :n] = de(h[:, sel])
        return out


class SKDEMethod(BaselineMethod):
    name = "skde30"
    display_name = "SKDE30"
    stages = ("train",)   # dotted config keys of each training stage (steps, batch size)
    config_class = SKDEConfig

    def build(self, cfg: SKDEConfig, data: ZooData):
        layout = neuron_layout(data.tok, 0)
        return {"ae": HyperAE(cfg.ae, layout)}, {"tokens": layout.num_tokens, "token_size": layout.token_size}

    def fit_stages(self, cfg: SKDEConfig, data: ZooData, modules, fit: StagedFit, device: str) -> None:
        ae = modules["ae"]
        layout = neuron_layout(data.tok, 0)
        tokens = layout.tokens(data.x).to(device)                                   # (N, L, d_tok)
        mask = layout.mask.to(device)
        c = cfg.ae

        def loss_fn(g: torch.Generator) -> torch.Tensor:
            idx = torch.randint(0, len(tokens), (cfg.train.batch_size,), generator=g).to(device)
            x = tokens[idx]
            views = [(x + c.view_noise * torch.randn(x.shape, generator=g).to(device)) * mask for _ in range(2)]
            z1, z2 = ae.encode(views[0]), ae.encode(views[1])
            recon = F.mse_loss(ae.decode(z1)[:, mask], x[:, mask])
            if c.gamma == 0:
                return recon
            return (1 - c.gamma) * recon + c.gamma * nt_xent(ae.project(z1), ae.project(z2), c.temperature)

        fit.run("autoencoder", ae.parameters(), cfg.train, loss_fn, [ae])

    def finalize(self, cfg: SKDEConfig, data: ZooData, modules, device: str) -> dict[str, torch.Tensor]:
        layout = neuron_layout(data.tok, 0)
        z = modules["ae"].encode(layout.tokens(data.x).to(device)).cpu()          # (N, latent)
        return {"anchors": z[top_fraction(data.accuracies, cfg.kde.top_fraction)]}

    def draw(self, cfg: SKDEConfig, tok, modules, extra, num: int, options, g, device: str) -> torch.Tensor:
        z = kde_sample(extra["anchors"], num, cfg.kde.bandwidth, g, cfg.kde.per).to(device)
        return neuron_layout(tok, 0).vector(modules["ae"].decode(z).cpu(), tok.num_params)


def top_fraction(accuracies: list[float | None], fraction: float) -> torch.Tensor:
    """Indices of the models at or above the (1 - fraction) quantile of accuracy (all models when the zoo
    records no accuracies)."""
    if not accuracies or any(a is None for a in accuracies):
        return torch.arange(len(accuracies))
    acc = torch.tensor(accuracies, dtype=torch.float64)
    keep = torch.nonzero(acc >= torch.quantile(acc, 1 - fraction)).flatten()
    return keep
