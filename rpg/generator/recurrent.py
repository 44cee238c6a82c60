"""Recurrent models mapping the (B, L, d_model) input sequence to one prototype per token
(official model/mamba.py, model/__init__.py).

- ``mamba``: stacked Mamba2 layers with no residuals or norms in between (official code). The pure-PyTorch
  Mamba2 runs anywhere; the mamba_ssm kernel is used when it imports on CUDA (same parameter names).
- ``lstm``: nn.LSTM, hidden = d_model, 2 layers (paper Tab. 5).
- ``transformer``: pre-LN blocks with a real causal mask and scaled attention (the official ablation has
  neither: its mask fill is 1e-8 and its scale is unused). As in the official module, heads x head width
  = d_model, so there is no output projection after attention (its `to_out` is Identity).
- ``none``: a per-token gated MLP with no mixing between tokens ("- recurrent model", paper Tab. 4a); its
  three Linears have no bias (official `model/gatemlp.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rpg.errors import RPGInputError
from rpg.generator.config import RecurrentConfig


class CausalBlock(nn.Module):
    def __init__(self, d: int, n_heads: int, ff_dim: int):
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)          # inner width = d: no output projection follows
        self.ff = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, ff_dim), nn.GELU(), nn.Linear(ff_dim, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, L, 3, self.n_heads, d // self.n_heads).unbind(2)  # (B, L, H, hd)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True)                # (B, H, L, hd), scale 1/sqrt(hd)
        x = x + a.transpose(1, 2).reshape(B, L, d)
        return x + self.ff(x)


class GatedMLP(nn.Module):
    def __init__(self, d_in: int, d_out: int, expand: int = 2):
        super().__init__()
        self.proj1 = nn.Linear(d_in, expand * d_in, bias=False)
        self.proj2 = nn.Linear(d_in, expand * d_in, bias=False)
        self.proj3 = nn.Linear(expand * d_in, d_out, bias=False)
        self.norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj3(self.proj1(x) * torch.sigmoid(self.proj2(x))))


class RecurrentModel(nn.Module):
    """(B, L, d_model[0]) -> (B, L, d_model[-1]) prototypes."""

    def __init__(self, cfg: RecurrentConfig):
        super().__init__()
        self.cfg = cfg
        widths = cfg.d_model
        self.d_in, self.d_out = widths[0], widths[-1]
        if cfg.kind == "mamba":
            from rpg.generator.mamba2 import kernel_available, make_mamba2
            use_kernel = cfg.use_kernel == "auto" and kernel_available()
            # chunk_size tunes the pure-PyTorch scan; the CUDA kernel keeps its own default (256)
            extra = {} if use_kernel else {"chunk_size": cfg.chunk_size}
            self.layers = nn.ModuleList(
                make_mamba2(d_model=w, d_in=widths[i - 1] if i else w, d_state=cfg.d_state, d_conv=cfg.d_conv,
                            expand=cfg.expand, headdim=cfg.headdim, use_kernel=use_kernel, **extra)
                for i, w in enumerate(widths))
        elif cfg.kind == "lstm":
            if len(set(widths)) == 1:
                self.layers = nn.ModuleList([nn.LSTM(widths[0], widths[0], num_layers=len(widths), batch_first=True)])
            else:
                self.layers = nn.ModuleList(nn.LSTM(widths[i - 1] if i else w, w, batch_first=True)
                                            for i, w in enumerate(widths))
        elif cfg.kind == "transformer":
            self.layers = nn.ModuleList(CausalBlock(widths[0], cfg.n_heads, cfg.ff_dim) for _ in widths)
            if widths[-1] != widths[0]:
                self.layers.append(nn.Linear(widths[0], widths[-1]))
        else:
            self.layers = nn.ModuleList(GatedMLP(widths[i - 1] if i else w, w) for i, w in enumerate(widths))

    def forward(self, e: torch.Tensor, segment: int | None = None) -> torch.Tensor:
        """e (B, L, d_in) -> (B, L, d_out). `segment`: run each layer over `segment` tokens at a time,
        carrying its recurrent state across segments (same result; the activations held at once shrink
        from L tokens to `segment`, which is what lets a ConvNeXt-L generator's pass fit a 24 GiB CPU)."""
        L = e.shape[1]
        if segment is not None and not (isinstance(segment, int) and segment >= 1):
            raise RPGInputError(f"prototype chunk {segment!r}: must be an integer >= 1")
        h = e
        for layer in self.layers:
            if segment is None or segment >= L or isinstance(layer, GatedMLP):   # token-wise: nothing to carry
                h = layer(h)
            else:
                h = self._segmented(layer, h, segment)
            if isinstance(h, tuple):  # nn.LSTM returns (output, (h_n, c_n))
                h = h[0]
        return h

    def _segmented(self, layer: nn.Module, h: torch.Tensor, segment: int) -> torch.Tensor:
        if isinstance(layer, nn.LSTM):
            step = layer                                   # (x, (h_n, c_n)) -> (y, (h_n, c_n))
        elif hasattr(layer, "forward_segment"):
            step = layer.forward_segment                   # (x, state) -> (y, state)
        else:
            raise RPGInputError(f"prototype chunk {segment}: the {self.cfg.kind} backbone "
                                f"({type(layer).__name__}) cannot carry its state across segments; "
                                "use the PyTorch Mamba2 (recurrent.use_kernel: false), lstm or mlp, or no chunk")
        out, state = None, None
        for lo in range(0, h.shape[1], segment):
            y, state = step(h[:, lo:lo + segment], state)  # (B, seg, d_out)
            if out is None:                                # written in place: no list + cat (2x the output)
                out = y.new_empty(h.shape[0], h.shape[1], y.shape[-1])
            out[:, lo:lo + y.shape[1]] = y
        return out                                         # (B, L, d_out)
