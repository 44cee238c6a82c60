"""Pure-PyTorch Mamba2 layer, a drop-in for `mamba_ssm.Mamba2` that also runs (fast) on CPU.

RPG's recurrent backbone is two stacked `mamba_ssm.Mamba2` layers (no residuals). The official
module needs CUDA and Triton, so this file re-implements its forward pass with ordinary tensor
ops, following the "state space duality" (SSD) algorithm of

    T. Dao, A. Gu. "Transformers are SSMs: Generalized Models and Efficient Algorithms Through
    Structured State Space Duality." ICML 2024, arXiv:2405.21060 (Mamba2), Sec. 6 / Listing 1.

Parameter names, shapes and initialisation follow `mamba_ssm.modules.mamba2.Mamba2`, so a
state_dict moves between the two with `strict=True`. `make_mamba2` picks the CUDA kernel when it
is importable and falls back to this module otherwise.

Public API:
- `Mamba2`: the layer. `forward(u: (B, L, d_in)) -> (B, L, d_model)`.
- `ssd_chunked`: the chunked, matmul-based SSD scan on its own.
- `mamba2_reference`: a naive token-by-token recurrence over the same weights (for tests).
- `make_mamba2`, `kernel_available`: choose between `mamba_ssm.Mamba2` and `Mamba2`.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from rpg.errors import RPGInputError

__all__ = ["Mamba2", "ssd_chunked", "mamba2_reference", "make_mamba2", "kernel_available",
           "DEFAULT_CPU_CHUNK_SIZE"]

# Chosen by measurement (benchmarks/bench_recurrent.py: 2 layers, d_model 256, d_state 32, L 512,
# 2 threads, fwd+bwd, idle 16-core Xeon): chunk 32 / 64 / 128 took 321 / 294 / 284 ms at batch 8
# and 36 / 55 / 42 ms at batch 1. The intra-chunk quadratic work grows with the chunk size while
# the per-chunk state work (which scales with d_state) shrinks, so larger d_state (128 in RPG's
# bigger presets) favours larger chunks too. 256 (the CUDA kernel's value) was ~1.5x slower on CPU
# (1-thread CPU time on the shared 2-core dev machine).
DEFAULT_CPU_CHUNK_SIZE = 128


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Scan dtype: float32 at least (the kernel also accumulates in fp32); float64 stays float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# Decays are exp(log-decay) with log-decay <= 0. Below about exp(-87) float32 values become
# subnormal, and subnormal operands make x86 exp() and matmuls 20-40x slower (measured here:
# a (512, 64, 64) bmm 1.8 ms -> 37 ms). Clamping the log-decay at -60 before exp() keeps every
# decay a normal number; the change is below 1e-26 relative, far under float32/float64 rounding.
_LOG_DECAY_FLOOR = -60.0


def _decay(log_decay: torch.Tensor) -> torch.Tensor:
    """exp(max(log_decay, _LOG_DECAY_FLOOR)): a decay factor that is never subnormal."""
    return torch.exp(log_decay.clamp(min=_LOG_DECAY_FLOOR))


def _chunk_decay_matrix(tot: torch.Tensor) -> torch.Tensor:
    """(..., T) per-chunk log-decays -> (..., T, T) lower-triangular W with
    W[k, j] = exp(sum_{j < m <= k} tot[m]) for k >= j and 0 above the diagonal.

    The segment sums are built with a masked cumsum rather than cumsum(tot)[k] - cumsum(tot)[j],
    which would cancel catastrophically when the running sum over the whole sequence is large.
    O(T^2) in the number of chunks, which is small.
    """
    T = tot.shape[-1]
    strictly_lower = torch.ones(T, T, dtype=torch.bool, device=tot.device).tril(-1)
    rep = tot.unsqueeze(-1).expand(*tot.shape, T)  # (..., T, T): rep[..., k, j] = tot[..., k]
    seg = torch.cumsum(rep.masked_fill(~strictly_lower, 0.0), dim=-2)  # sum_{j < m <= k} tot[m]
    lower = strictly_lower.logical_or(torch.eye(T, dtype=torch.bool, device=tot.device))
    return _decay(seg).masked_fill(~lower, 0.0)


def _intra_chunk_decay(cs: torch.Tensor) -> torch.Tensor:
    """(..., Q) cumulated log-decays -> (..., Q, Q) with exp(cs[l] - cs[s]) for s <= l.

    Entries above the diagonal (s > l) are exp(0) = 1, NOT 0: the causal mask is applied to the
    (much smaller, per-group) C B^T matrix instead, which avoids a pass over this tensor and the
    slow exp(-inf) path. Inside a chunk |cs| stays moderate, so the plain difference of cumsums is
    accurate enough (the CUDA kernel does the same).
    """
    seg = cs.unsqueeze(-1) - cs.unsqueeze(-2)
    return seg.clamp_(min=_LOG_DECAY_FLOOR, max=0.0).exp_()


def _causal_cb(B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """(.., Q, N) x (.., Q, N) -> lower-triangular C B^T (.., Q, Q): the causal mask of the
    intra-chunk form, applied once per group instead of once per head."""
    return (C @ B.transpose(-1, -2)).tril_()


class _SSDIntraChunk(torch.autograd.Function):
    """The two O(L * chunk) parts of the chunked SSD scan, with a hand-written backward.

    Per (batch, chunk, head), with Q time steps, xdt = dt * x (Q x P) and cs the cumulated
    log-decays (Q):
        M = (C B^T) * exp(cs[l] - cs[s]) [s <= l]         (Q x Q)
        y = M @ xdt + D * x                               (Q x P)
        S = (B * exp(cs[-1] - cs))^T @ xdt                (N x P), the chunk's own final state
    Autograd on the same expressions keeps several (Q x Q)-sized temporaries per head alive and
    makes more passes over them; here the backward recomputes the decay matrix from cs and works
    in place where it can, which on CPU (memory-bound at these sizes) is measurably cheaper.

    Shapes: x (b, c, G, hg, Q, P) contiguous; dt, cs (b, c, G, hg, Q); B, C (b, c, G, 1, Q, N);
    D None or (G, hg, 1, 1 or P). Returns y (b, c, G, hg, Q, P) and S (b, c, G, hg, N, P).
    """

    @staticmethod
    def forward(ctx, x, dt, cs, B, C, D):
        # Under bf16 autocast the matmuls below would silently drop to bf16 while the hand-written
        # backward works in the inputs' dtype: run the scan in that dtype (float32 or wider) instead.
        with torch.autocast(x.device.type, enabled=False):
            return _SSDIntraChunk._forward(ctx, x, dt, cs, B, C, D)

    @staticmethod
    def _forward(ctx, x, dt, cs, B, C, D):
        xdt = x * dt.unsqueeze(-1)
        M = _intra_chunk_decay(cs).mul_(_causal_cb(B, C))  # (b, c, G, hg, Q, Q)
        y = M @ xdt
        if D is not None:
            y.addcmul_(x, D)
        B_dec = B * _decay(cs[..., -1:] - cs).unsqueeze(-1)  # (b, c, G, hg, Q, N)
        S = B_dec.transpose(-1, -2) @ xdt
        ctx.save_for_backward(x, dt, cs, B, C, D)
        return y, S

    @staticmethod
    def backward(ctx, gy, gS):
        x, dt, cs, B, C, D = ctx.saved_tensors
        gy = gy.to(x.dtype).contiguous()
        xdt = x * dt.unsqueeze(-1)
        decay = _intra_chunk_decay(cs)  # (b, c, G, hg, Q, Q)
        CB = _causal_cb(B, C)  # (b, c, G, 1, Q, Q), shared by the heads of a group
        # y = M @ xdt:  dM = gy xdt^T,  dxdt = M^T gy.
        gM = gy @ xdt.transpose(-1, -2)
        gxdt = (decay * CB).transpose(-1, -2) @ gy
        # M = CB * decay: dCB sums dM * decay over the heads of a group; d(decay) = dM * CB.
        gM.mul_(decay)
        gCB = gM.sum(dim=3, keepdim=True).tril_()  # CB's upper triangle is masked out
        del decay
        # d cs from decay[l, s] = exp(cs[l] - cs[s]):  (dM * M) summed over s, minus over l.
        gM.mul_(CB)
        gcs = gM.sum(dim=-1) - gM.sum(dim=-2)
        del gM
        gC = gCB @ B
        gB = gCB.transpose(-1, -2) @ C
        # S = B_dec^T xdt with B_dec = B * e, e = exp(cs[-1] - cs).
        e = _decay(cs[..., -1:] - cs)  # (b, c, G, hg, Q)
        gS = gS.to(x.dtype).contiguous()
        B_dec = B * e.unsqueeze(-1)
        gxdt += B_dec @ gS
        gB_dec = xdt @ gS.transpose(-1, -2)  # (b, c, G, hg, Q, N)
        gB += (gB_dec * e.unsqueeze(-1)).sum(dim=3, keepdim=True)
        ge = (gB_dec * B).sum(dim=-1) * e  # d/d(cs[-1] - cs)
        gcs -= ge
        gcs[..., -1] += ge.sum(dim=-1)
        # xdt = x * dt, plus the D skip.
        gx = gxdt * dt.unsqueeze(-1)
        gdt = (gxdt * x).sum(dim=-1)
        gD = None
        if D is not None:
            gx.addcmul_(gy, D)
            gD = (gy * x).sum_to_size(D.shape)
        return gx, gdt, gcs, gB, gC, gD


def ssd_chunked(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                chunk_size: int = DEFAULT_CPU_CHUNK_SIZE, D: torch.Tensor | None = None,
                initial_state: torch.Tensor | None = None, return_final_state: bool = False):
    """Chunked SSD scan (Mamba2, arXiv:2405.21060, Sec. 6): for every head h,

        h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T,    y_t = h_t C_t + D x_t      (h_0 = initial_state or 0)

    computed by splitting the sequence into chunks of `chunk_size` tokens:
      1. inside each chunk, a masked quadratic ("attention-like") form  y = (C B^T * decay) (dt x);
      2. each chunk's final state from its own inputs (one matmul per chunk);
      3. a small recurrence over chunks, written as a (chunks x chunks) lower-triangular matmul,
         that turns per-chunk states into the state entering every chunk;
      4. that entering state read out by C and decayed to each position.
    Everything is batched matmuls, so the cost is O(L * chunk) instead of a length-L Python loop,
    and no tensor larger than (b, L, H, max(P, chunk)) is built.

    Args:
        x:  (b, L, H, P) inputs per head.
        dt: (b, L, H) step sizes, already softplus'ed (> 0).
        A:  (H,) decay rates, <= 0 (Mamba2: -exp(A_log)); with dt >= 0 every log-decay is <= 0.
        B, C: (b, L, G, N) input/output projections; head h uses group h // (H // G).
        chunk_size: tokens per chunk; L need not be a multiple of it.
        D: optional skip weight, (H,) or (H, P).
        initial_state: optional h_0, (b, H, N, P): the state a previous segment of the sequence ended in,
            so that a long sequence can be scanned segment by segment (Mamba2.forward_segment).
        return_final_state: also return h_L, (b, H, N, P), in the compute dtype.
    Returns:
        y: (b, L, H, P), computed in float32 (float64 for float64 input), returned in x's dtype;
        (y, h_L) if return_final_state.
    """
    b, L, H, P = x.shape
    G, N = B.shape[-2:]
    if H % G:
        raise RPGInputError(f"ssd_chunked: {H} heads cannot be split into {G} groups")
    out_dtype = x.dtype
    ct = _compute_dtype(x.dtype)
    x, dt, A, B, C = (t.to(ct) for t in (x, dt, A, B, C))
    h0 = None if initial_state is None else initial_state.to(ct)
    if L == 0:
        y = x.new_zeros(x.shape).to(out_dtype)
        if not return_final_state:
            return y
        return y, (x.new_zeros(b, H, N, P) if h0 is None else h0)
    Q = min(int(chunk_size), L)  # a sequence shorter than one chunk needs no padding
    pad = (-L) % Q
    if pad:
        # Zero-padding at the end is harmless: the scan is causal, so padded steps cannot change
        # earlier outputs, and they are cut off below.
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        dt = F.pad(dt, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, 0, 0, pad))
    c = (L + pad) // Q
    hg = H // G  # heads per group
    # Layout for all the batched matmuls below: (b, c, G, hg, Q, .), i.e. one small matrix per
    # (batch, chunk, head) with the chunk's time steps as rows.
    x_c = x.view(b, c, Q, H, P).transpose(2, 3).contiguous().view(b, c, G, hg, Q, P)  # the one big copy of x
    dt_c = dt.view(b, c, Q, H).transpose(2, 3).reshape(b, c, G, hg, Q)
    Bc = B.view(b, c, Q, G, N).transpose(2, 3).unsqueeze(3)  # (b, c, G, 1, Q, N)
    Cc = C.view(b, c, Q, G, N).transpose(2, 3).unsqueeze(3)  # (b, c, G, 1, Q, N)

    # Log-decay of every step, cumulated inside each chunk: cs[l] = sum_{i <= l} dt_i A.
    # (b, c, G, hg, Q): small, no P or Q^2 factor, so plain autograd is fine from here on.
    cs = torch.cumsum(dt_c * A.view(G, hg, 1), dim=-1)
    if D is not None:
        D = D.to(ct).reshape(G, hg, 1, -1)  # (H,) or (H, P) -> broadcastable over (.., Q, P)

    # 1 + 2. Intra-chunk outputs (plus D x) and the state each chunk builds from its own inputs,
    #        in one autograd Function with a hand-written backward (see _SSDIntraChunk).
    y, states = _SSDIntraChunk.apply(x_c, dt_c, cs, Bc, Cc, D)  # (b,c,G,hg,Q,P), (b,c,G,hg,N,P)

    # 3. Inter-chunk recurrence S_end[k] = exp(tot_k) S_end[k-1] + S_k, unrolled as a lower-
    #    triangular (c x c) matrix of chunk-to-chunk decays applied to all states at once.
    tot = cs[..., -1].reshape(b, c, H).transpose(1, 2)  # (b, H, c): total log-decay of each chunk
    states = states.view(b, c, H, N * P).transpose(1, 2)  # (b, H, c, N*P)
    if h0 is not None:
        # h_0 enters as a chunk -1 of zero log-decay whose own state is h_0: (b, H, c + 1, .)
        tot = F.pad(tot, (1, 0))
        states = torch.cat([h0.reshape(b, H, 1, N * P), states], dim=2)
    W = _chunk_decay_matrix(tot)  # (b, H, c', c'), W[k, j] = exp(sum_{j < m <= k} tot_m)
    s_end = W @ states  # (b, H, c', N*P): state after chunk k
    h_L = s_end[:, :, -1].reshape(b, H, N, P)  # zero-padded steps (dt = 0) leave the state unchanged
    # The state *entering* chunk k is the one after chunk k-1 (h_0, or zero, for the first chunk).
    s_in = s_end[:, :, :-1] if h0 is not None else F.pad(s_end[:, :, :-1], (0, 0, 1, 0))
    s_in = s_in.transpose(1, 2).reshape(b, c, G, hg, N, P)

    # 4. Read-out of the entering state, exp(cs[l]) C_l^T S_in, with the decay folded into C
    #    (N wide, cheaper than scaling the P-wide output); baddbmm fuses the add.
    C_dec = Cc * _decay(cs).unsqueeze(-1)  # (b, c, G, hg, Q, N)
    y = torch.baddbmm(y.view(-1, Q, P), C_dec.view(-1, Q, N), s_in.reshape(-1, N, P))  # (b*c*H, Q, P)

    y = y.view(b, c, H, Q, P).transpose(2, 3).reshape(b, c * Q, H, P)  # (b, L + pad, H, P)
    y = y[:, :L].to(out_dtype)
    return (y, h_L) if return_final_state else y


class RMSNormGated(nn.Module):
    """Gated RMSNorm with the layout of mamba_ssm's `ops/triton/layernorm_gated.RMSNorm`: one
    `weight` (ones at init), no bias. Computed in >= float32 like the Triton kernel.

    norm_before_gate=False (Mamba2's default): rmsnorm(y * silu(z)) * weight;
    norm_before_gate=True: rmsnorm(y) * weight * silu(z). The RMS is taken over groups of
    `group_size` channels (one group per B/C group in Mamba2).
    """

    def __init__(self, hidden_size: int, eps: float = 1e-5, group_size: int | None = None,
                 norm_before_gate: bool = True, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.group_size = hidden_size if group_size is None else group_size
        self.norm_before_gate = norm_before_gate
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        dtype = y.dtype
        ct = _compute_dtype(dtype)
        y, z = y.to(ct), z.to(ct)
        if not self.norm_before_gate:
            y = y * F.silu(z)
        w = self.weight.to(ct)
        if self.group_size == y.shape[-1] and hasattr(F, "rms_norm"):
            out = F.rms_norm(y, (self.group_size,), w, self.eps)  # one call (torch >= 2.4)
        else:
            shape = y.shape
            yg = y.reshape(*shape[:-1], shape[-1] // self.group_size, self.group_size)  # (..., groups, size)
            yg = yg * torch.rsqrt(yg.pow(2).mean(dim=-1, keepdim=True) + self.eps)
            out = yg.view(shape) * w
        if self.norm_before_gate:
            out = out * F.silu(z)
        return out.to(dtype)


class Mamba2(nn.Module):
    """Mamba2 block (arXiv:2405.21060) with the parameter layout of `mamba_ssm.modules.mamba2.Mamba2`.

    in_proj -> [z | xBC | dt]; causal depthwise conv + SiLU on xBC -> [x | B | C];
    SSD scan with dt = softplus(dt + dt_bias), A = -exp(A_log), plus D * x;
    gated RMSNorm with z; out_proj.

    Arguments are those of the original (same defaults), except:
    - `chunk_size` defaults to `DEFAULT_CPU_CHUNK_SIZE` (the value that is fastest on CPU; the
      result does not depend on it up to rounding).
    - `d_in` (extra): width of the input; defaults to `d_model`. RPG-Large's second layer maps
      12288 -> 16384 by swapping in_proj for `Linear(12288, ...)`; `d_in` builds that directly.
    - `use_mem_eff_path` and `layer_idx` are accepted for signature compatibility and ignored.
    Not supported: tensor parallelism, token-by-token inference caches; `forward_segment` carries the
    state across segments instead.
    """

    def __init__(self, d_model: int, d_state: int = 128, d_conv: int = 4, conv_init: float | None = None,
                 expand: int = 2, headdim: int = 64, d_ssm: int | None = None, ngroups: int = 1,
                 A_init_range: tuple[float, float] = (1, 16), D_has_hdim: bool = False, rmsnorm: bool = True,
                 norm_before_gate: bool = False, dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, dt_limit: tuple[float, float] = (0.0, float("inf")),
                 bias: bool = False, conv_bias: bool = True, chunk_size: int = DEFAULT_CPU_CHUNK_SIZE,
                 use_mem_eff_path: bool = True, layer_idx: int | None = None, d_in: int | None = None,
                 device=None, dtype=None):
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.d_model = d_model
        self.d_in = d_model if d_in is None else d_in
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = expand * d_model
        self.headdim = headdim
        self.d_ssm = self.d_inner if d_ssm is None else d_ssm
        self.ngroups = ngroups
        _check_shapes(self.d_model, self.d_in, self.d_inner, self.d_ssm, headdim, ngroups, d_state, d_conv,
                      chunk_size, A_init_range)
        self.nheads = self.d_ssm // headdim
        self.D_has_hdim = D_has_hdim
        self.rmsnorm = rmsnorm
        self.norm_before_gate = norm_before_gate
        self.dt_limit = (float(dt_limit[0]), float(dt_limit[1]))
        self.chunk_size = int(chunk_size)
        self.layer_idx = layer_idx

        # Projection order as in mamba_ssm: [z0 | x0 | z | xBC | dt] where z0/x0 (the optional
        # gated-MLP part, d_mlp wide) are empty unless d_ssm < d_inner.
        self.d_mlp = self.d_inner - self.d_ssm
        d_in_proj = 2 * self.d_inner + 2 * ngroups * d_state + self.nheads
        self.in_proj = nn.Linear(self.d_in, d_in_proj, bias=bias, **factory_kwargs)

        conv_dim = self.d_ssm + 2 * ngroups * d_state
        # Same module (and default init) as the original; forward() calls F.conv1d with its weights.
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, kernel_size=d_conv, groups=conv_dim, bias=conv_bias,
                                padding=d_conv - 1, **factory_kwargs)
        if conv_init is not None:
            nn.init.uniform_(self.conv1d.weight, -conv_init, conv_init)

        # dt_bias = softplus^{-1}(dt) with dt log-uniform in [dt_min, dt_max], floored at dt_init_floor.
        dt = torch.exp(torch.rand(self.nheads, **factory_kwargs) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp(min=dt_init_floor)
        # softplus^{-1}(y) = y + log(1 - exp(-y)), written with expm1 for accuracy at small y.
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.dt_bias._no_weight_decay = True

        # A = -exp(A_log) with exp(A_log) ~ U(A_init_range), drawn in float32 like the original.
        A = torch.empty(self.nheads, dtype=torch.float32, device=device).uniform_(*A_init_range)
        self.A_log = nn.Parameter(torch.log(A).to(dtype=dtype))
        self.A_log._no_weight_decay = True

        self.D = nn.Parameter(torch.ones(self.d_ssm if D_has_hdim else self.nheads, **factory_kwargs))
        self.D._no_weight_decay = True

        if rmsnorm:
            self.norm = RMSNormGated(self.d_ssm, eps=1e-5, group_size=self.d_ssm // ngroups,
                                     norm_before_gate=norm_before_gate, **factory_kwargs)

        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **factory_kwargs)

    def extra_repr(self) -> str:
        return (f"d_in={self.d_in}, d_model={self.d_model}, d_state={self.d_state}, d_conv={self.d_conv}, "
                f"expand={self.expand}, headdim={self.headdim}, nheads={self.nheads}, "
                f"ngroups={self.ngroups}, chunk_size={self.chunk_size}")

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u: (B, L, d_in) -> (B, L, d_model)."""
        return self._run(u, None, False)

    def forward_segment(self, u: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                        ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One segment of a longer sequence: u (B, L_seg, d_in) and the state the previous segment left
        (None for the first) -> (y (B, L_seg, d_model), state). Scanning segment after segment gives the
        same output as one forward over the whole sequence, while the activations held at once are one
        segment's: how a 198M-parameter model's prototypes fit in CPU memory (sampling `prototype_chunk`).
        state = (the last d_conv - 1 pre-conv xBC rows (B, d_conv - 1, conv_dim), h (B, H, N, P))."""
        return self._run(u, state, True)

    def _run(self, u: torch.Tensor, state, want_state: bool):
        if u.dim() != 3 or u.shape[-1] != self.d_in:
            raise RPGInputError(f"Mamba2: expected input (batch, length, {self.d_in}), got {tuple(u.shape)}")
        b, L, _ = u.shape
        H, P, G, N = self.nheads, self.headdim, self.ngroups, self.d_state
        # in_proj, computed as three row blocks of its weight ([z0 | x0 | z], xBC, dt) so that
        # each piece comes out contiguous; slicing one (b, L, d_in_proj) output would make every
        # later elementwise op strided (2-3x slower on CPU). Same math as one Linear.
        W, bias = self.in_proj.weight, self.in_proj.bias
        n_z = 2 * self.d_mlp + self.d_ssm
        n_xbc = self.d_ssm + 2 * G * N
        parts = []
        for lo, hi in ((0, n_z), (n_z, n_z + n_xbc), (n_z + n_xbc, n_z + n_xbc + H)):
            parts.append(F.linear(u, W[lo:hi], None if bias is None else bias[lo:hi]))
        z, xBC, dt = parts  # (b, L, n_z), (b, L, n_xbc), (b, L, H)
        if self.d_mlp > 0:
            z0, x0, z = torch.split(z, [self.d_mlp, self.d_mlp, self.d_ssm], dim=-1)
        conv_state = None
        if want_state:
            # Causal conv across the segment boundary: the previous segment's last d_conv - 1 rows (zeros
            # at the start, as the padding below) go in front; they are also the next segment's state.
            K1 = self.d_conv - 1
            prev = xBC.new_zeros(b, K1, xBC.shape[-1]) if state is None else state[0].to(xBC.dtype)
            xBC = torch.cat([prev, xBC], dim=1)  # (b, K1 + L, ch)
            conv_state = xBC[:, xBC.shape[1] - K1:]
            xBC = F.conv1d(xBC.transpose(1, 2), self.conv1d.weight, self.conv1d.bias,
                           groups=self.conv1d.groups)  # (b, ch, L)
        else:
            # Causal depthwise conv over time: pad d_conv - 1 on both sides, keep the first L outputs.
            # (oneDNN's depthwise conv beat a hand-written shift-and-add version, forward and backward.)
            xBC = F.conv1d(xBC.transpose(1, 2), self.conv1d.weight, self.conv1d.bias, padding=self.d_conv - 1,
                           groups=self.conv1d.groups)[..., :L]  # (b, ch, L)
        # The copy back to (b, L, ch) makes SiLU and everything after it work on contiguous memory.
        xBC = F.silu(xBC.transpose(1, 2).contiguous())  # (b, L, d_ssm + 2 G N)
        x, B, C = torch.split(xBC, [self.d_ssm, G * N, G * N], dim=-1)

        ct = _compute_dtype(u.dtype)
        dt = F.softplus(dt.to(ct) + self.dt_bias.to(ct))  # (b, L, H)
        if self.dt_limit != (0.0, float("inf")):
            dt = dt.clamp(min=self.dt_limit[0], max=self.dt_limit[1])
        A = -torch.exp(self.A_log.to(ct))  # (H,)
        D = self.D.view(H, P) if self.D_has_hdim else self.D
        y = ssd_chunked(x.reshape(b, L, H, P), dt, A, B.reshape(b, L, G, N), C.reshape(b, L, G, N),
                        self.chunk_size, D=D, initial_state=None if state is None else state[1],
                        return_final_state=want_state)
        if want_state:
            y, h = y
        y = y.reshape(b, L, self.d_ssm)  # (b, L, d_ssm)
        if self.rmsnorm:
            y = self.norm(y, z)
        else:
            y = y * F.silu(z.to(ct))
        y = y.to(u.dtype)
        if self.d_mlp > 0:
            y = torch.cat([F.silu(z0) * x0, y], dim=-1)  # (b, L, d_inner)
        y = self.out_proj(y)
        return (y, (conv_state, h)) if want_state else y


def _check_shapes(d_model, d_in, d_inner, d_ssm, headdim, ngroups, d_state, d_conv, chunk_size,
                  A_init_range) -> None:
    """Raise RPGInputError naming the option when a size combination cannot work."""
    for name, v in (("d_model", d_model), ("d_in", d_in), ("d_state", d_state), ("d_conv", d_conv),
                    ("headdim", headdim), ("ngroups", ngroups), ("chunk_size", chunk_size), ("d_ssm", d_ssm)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise RPGInputError(f"Mamba2 {name}: must be a positive integer, got {v!r}")
    if d_ssm > d_inner:
        raise RPGInputError(f"Mamba2 d_ssm: {d_ssm} exceeds d_inner = expand * d_model = {d_inner}")
    if d_ssm % headdim:
        raise RPGInputError(f"Mamba2 headdim: {headdim} does not divide d_ssm (= expand * d_model) {d_ssm}")
    if (d_ssm // headdim) % ngroups:
        raise RPGInputError(f"Mamba2 ngroups: {ngroups} does not divide the number of heads "
                            f"{d_ssm // headdim}")
    if not (A_init_range[0] > 0 and A_init_range[1] >= A_init_range[0]):
        raise RPGInputError(f"Mamba2 A_init_range: need 0 < low <= high, got {tuple(A_init_range)}")


def mamba2_reference(module: Mamba2, u: torch.Tensor) -> torch.Tensor:
    """Naive token-by-token Mamba2 over `module`'s weights, for testing `Mamba2.forward`.

    Shares nothing with the fast path except the parameters: the conv is an explicit sliding
    window, the SSM is the plain recurrence
        h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T,    y_t = h_t C_t + D x_t,
    and the gated RMSNorm is written out. Runs in u's dtype (use float64 for tight comparisons).
    Differentiable, but O(L) Python steps: keep L small.
    """
    m = module
    b, L, _ = u.shape
    H, P, G, N, K = m.nheads, m.headdim, m.ngroups, m.d_state, m.d_conv
    dtype = u.dtype
    W_in = m.in_proj.weight.to(dtype)
    zxbcdt = u @ W_in.T
    if m.in_proj.bias is not None:
        zxbcdt = zxbcdt + m.in_proj.bias.to(dtype)
    d_mlp = m.d_mlp
    z0 = zxbcdt[..., :d_mlp]
    x0 = zxbcdt[..., d_mlp:2 * d_mlp]
    z = zxbcdt[..., 2 * d_mlp:2 * d_mlp + m.d_ssm]
    xBC_in = zxbcdt[..., 2 * d_mlp + m.d_ssm:-H]
    dt_in = zxbcdt[..., -H:]

    conv_w = m.conv1d.weight.to(dtype)[:, 0, :]  # (ch, K)
    conv_b = m.conv1d.bias.to(dtype) if m.conv1d.bias is not None else None
    A = -torch.exp(m.A_log.to(dtype))  # (H,)
    D = m.D.to(dtype)
    heads_per_group = H // G
    h = u.new_zeros(b, H, P, N)
    ys = []
    for t in range(L):
        # Sliding window over the last K inputs (zeros before the start).
        acc = conv_b.expand(b, -1) if conv_b is not None else u.new_zeros(b, xBC_in.shape[-1])
        for k in range(K):
            src = t - (K - 1) + k
            if src >= 0:
                acc = acc + conv_w[:, k] * xBC_in[:, src]
        xbc = acc * torch.sigmoid(acc)  # SiLU, (b, ch)
        x_t = xbc[:, :m.d_ssm].reshape(b, H, P)
        B_t = xbc[:, m.d_ssm:m.d_ssm + G * N].reshape(b, G, N).repeat_interleave(heads_per_group, dim=1)
        C_t = xbc[:, m.d_ssm + G * N:].reshape(b, G, N).repeat_interleave(heads_per_group, dim=1)
        # softplus(v) = log(1 + exp(v)), written as logaddexp(v, 0) to stay finite.
        dt_t = torch.logaddexp(dt_in[:, t] + m.dt_bias.to(dtype), torch.zeros((), dtype=dtype))  # (b, H)
        if m.dt_limit != (0.0, float("inf")):
            dt_t = dt_t.clamp(min=m.dt_limit[0], max=m.dt_limit[1])
        decay = torch.exp(dt_t * A)  # (b, H)
        h = decay[:, :, None, None] * h + (dt_t[:, :, None] * x_t)[..., None] * B_t[:, :, None, :]
        y_t = (h * C_t[:, :, None, :]).sum(-1)  # (b, H, P)
        y_t = y_t + (D.view(H, P) if m.D_has_hdim else D.view(H, 1)) * x_t
        ys.append(y_t.reshape(b, m.d_ssm))
    y = torch.stack(ys, dim=1)  # (b, L, d_ssm)

    gate = z * torch.sigmoid(z)
    if m.rmsnorm:
        if not m.norm_before_gate:
            y = y * gate
        gs = m.norm.group_size
        yg = y.reshape(b, L, m.d_ssm // gs, gs)
        yg = yg / torch.sqrt((yg * yg).mean(-1, keepdim=True) + m.norm.eps)
        y = yg.reshape(b, L, m.d_ssm) * m.norm.weight.to(dtype)
        if m.norm_before_gate:
            y = y * gate
    else:
        y = y * gate
    if d_mlp > 0:
        y = torch.cat([z0 * torch.sigmoid(z0) * x0, y], dim=-1)
    out = y @ m.out_proj.weight.to(dtype).T
    if m.out_proj.bias is not None:
        out = out + m.out_proj.bias.to(dtype)
    return out


# ----------------------------------------------------------------------------------------------
# Choosing between the CUDA kernel and this module
# ----------------------------------------------------------------------------------------------

def _import_kernel_mamba2():
    """mamba_ssm's Mamba2 class, or None when mamba_ssm (or one of its CUDA deps) cannot be imported."""
    try:
        from mamba_ssm.modules.mamba2 import Mamba2 as KernelMamba2
    except (ImportError, OSError):  # OSError: a CUDA extension whose shared library fails to load
        return None
    return KernelMamba2


def _causal_conv1d_available() -> bool:
    try:
        import causal_conv1d  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def kernel_available() -> bool:
    """True when `mamba_ssm.Mamba2` imports and a CUDA device is present."""
    return torch.cuda.is_available() and _import_kernel_mamba2() is not None


_MAMBA2_OPTIONS = frozenset(inspect.signature(Mamba2.__init__).parameters) - {"self", "d_model", "d_in"}


def make_mamba2(d_model: int, d_in: int | None = None, use_kernel: bool | str = "auto", **kw) -> nn.Module:
    """Build one Mamba2 layer: `mamba_ssm.Mamba2` (CUDA kernels) if possible, else `Mamba2`.

    use_kernel: "auto" -> kernel when `kernel_available()`, else this file's `Mamba2`;
                True   -> kernel, RPGInputError if it is not available;
                False  -> always this file's `Mamba2`.
    d_in: input width when it differs from d_model. On the kernel path the kernel module's
        in_proj is replaced by `Linear(d_in, in_proj.out_features)`, exactly as RPG-Large does.
    kw: the options of `Mamba2` (= those of mamba_ssm.Mamba2). `chunk_size`, when given, is
        passed to either module; otherwise each uses its own default (kernel 256, CPU 128).
    Both modules have the same parameter names and shapes, so state_dicts are interchangeable.
    """
    unknown = sorted(set(kw) - _MAMBA2_OPTIONS)
    if unknown:
        raise RPGInputError(f"make_mamba2: unknown option(s) {unknown}; known: {sorted(_MAMBA2_OPTIONS)}")
    if use_kernel not in ("auto", True, False):
        raise RPGInputError(f"make_mamba2 use_kernel: expected 'auto', true or false, got {use_kernel!r}")
    want_kernel = use_kernel is True or (use_kernel == "auto" and kernel_available())
    if not want_kernel:
        return Mamba2(d_model, d_in=d_in, **kw)
    if not kernel_available():
        raise RPGInputError("make_mamba2 use_kernel: true needs mamba_ssm and a CUDA device "
                            f"(mamba_ssm importable: {_import_kernel_mamba2() is not None}, "
                            f"CUDA available: {torch.cuda.is_available()})")
    KernelMamba2 = _import_kernel_mamba2()
    kernel_kw = {k: v for k, v in kw.items() if k in inspect.signature(KernelMamba2.__init__).parameters}
    if "use_mem_eff_path" not in kw and not _causal_conv1d_available():
        # mamba_ssm's default fused path calls causal_conv1d's CUDA kernels; without that package
        # only the unfused path (torch conv1d + Triton scan + Triton gated norm) works.
        kernel_kw["use_mem_eff_path"] = False
    module = KernelMamba2(d_model, **kernel_kw)
    if d_in is not None and d_in != d_model:
        old = module.in_proj
        module.in_proj = nn.Linear(d_in, old.out_features, bias=old.bias is not None,
                                   device=old.weight.device, dtype=old.weight.dtype)
    return module
