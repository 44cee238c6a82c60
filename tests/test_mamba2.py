"""CPU tests of the pure-PyTorch Mamba2 (rpg/generator/mamba2.py) against a naive token-by-token recurrence."""

from __future__ import annotations

import math

import pytest
import torch

from rpg.errors import RPGInputError
from rpg.generator.mamba2 import (
    DEFAULT_CPU_CHUNK_SIZE,
    Mamba2,
    kernel_available,
    make_mamba2,
    mamba2_reference,
    ssd_chunked,
)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def small_module(seed: int = 0, dtype=torch.float64, **kw) -> Mamba2:
    """A small layer with a wide spread of decays: the default init (A in [1, 16], dt <= 0.1) plus
    some heads pushed to near-total decay per step, so chunk boundaries matter numerically."""
    torch.manual_seed(seed)
    opts = dict(d_model=32, d_state=8, headdim=16)
    opts.update(kw)
    m = Mamba2(dtype=dtype, **opts)
    with torch.no_grad():
        m.A_log.uniform_(-1.0, 3.0)  # A in [0.37, 20]
        m.dt_bias.uniform_(-4.0, 1.0)  # dt = softplus(.) in ~[0.02, 1.3] before the input term
    return m


# (batch, length, chunk_size, extra module options)
REFERENCE_CASES = [
    (2, 37, 8, {}),  # L not a multiple of the chunk, several chunks
    (1, 64, 16, {}),  # exact multiple
    (3, 5, 64, {}),  # one partial chunk
    (1, 1, 4, {}),  # single token
    (2, 24, 8, {"d_in": 20}),  # RPG-Large style width change (d_in != d_model)
    (2, 19, 4, {"d_conv": 2, "expand": 1, "d_state": 4}),
    # Non-default mamba_ssm options: groups, per-channel D, norm before gate, partial SSM
    # (gated-MLP channels), biases, clamped dt.
    (2, 21, 8, {"headdim": 8, "ngroups": 2, "D_has_hdim": True, "norm_before_gate": True,
                "d_ssm": 32, "bias": True, "dt_limit": (0.05, 0.5)}),
    (1, 13, 4, {"rmsnorm": False, "conv_bias": False}),
]


@pytest.mark.parametrize("b,L,chunk,kw", REFERENCE_CASES)
def test_forward_matches_naive_recurrence_float64(b, L, chunk, kw):
    m = small_module(chunk_size=chunk, **kw)
    u = torch.randn(b, L, m.d_in, dtype=torch.float64)
    y = m(u)
    assert y.shape == (b, L, m.d_model)
    assert rel_err(y, mamba2_reference(m, u)) <= 1e-6


def test_result_does_not_depend_on_chunk_size():
    m = small_module()
    u = torch.randn(2, 50, m.d_in, dtype=torch.float64)
    outs = []
    for q in (1, 3, 16, 50, 128):
        m.chunk_size = q
        outs.append(m(u))
    for o in outs[1:]:
        assert rel_err(o, outs[0]) <= 1e-12


@pytest.mark.parametrize("kw", [{}, {"headdim": 8, "ngroups": 2, "D_has_hdim": True, "d_in": 20}])
@pytest.mark.parametrize("segments", [[8, 29], [1, 2, 3, 31], [16, 16, 5], [3, 3, 3, 3, 25]])
def test_segments_carrying_the_state_equal_one_pass_float64(segments, kw):
    """forward_segment over consecutive pieces (shorter than d_conv - 1, not multiples of the scan chunk,
    crossing chunk boundaries) gives what one forward over the whole sequence gives, and the naive recurrence."""
    m = small_module(chunk_size=8, **kw)
    torch.manual_seed(1)
    u = torch.randn(2, sum(segments), m.d_in, dtype=torch.float64)
    outs, state, lo = [], None, 0
    for n in segments:
        y, state = m.forward_segment(u[:, lo:lo + n], state)
        outs.append(y)
        lo += n
    assert rel_err(torch.cat(outs, dim=1), m(u)) <= 1e-12
    assert rel_err(torch.cat(outs, dim=1), mamba2_reference(m, u)) <= 1e-6
    assert state[0].shape == (2, m.d_conv - 1, m.conv1d.in_channels)
    assert state[1].shape == (2, m.nheads, m.d_state, m.headdim)


def test_ssd_initial_state_continues_the_scan():
    """ssd_chunked's final state, fed back as the next piece's initial state, continues the recurrence."""
    torch.manual_seed(2)
    b, L, H, P, G, N = 2, 23, 4, 3, 2, 5
    x, B, C = torch.randn(b, L, H, P).double(), torch.randn(b, L, G, N).double(), torch.randn(b, L, G, N).double()
    dt, A = torch.rand(b, L, H).double(), -torch.rand(H).double() * 3
    whole, h_whole = ssd_chunked(x, dt, A, B, C, 4, return_final_state=True)
    y1, h1 = ssd_chunked(x[:, :10], dt[:, :10], A, B[:, :10], C[:, :10], 4, return_final_state=True)
    y2, h2 = ssd_chunked(x[:, 10:], dt[:, 10:], A, B[:, 10:], C[:, 10:], 4, initial_state=h1, return_final_state=True)
    assert rel_err(torch.cat([y1, y2], dim=1), whole) <= 1e-12
    assert rel_err(h2, h_whole) <= 1e-12
    # the state by the definition h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, head h in group h // (H // G)
    h = torch.zeros(b, H, N, P, dtype=torch.float64)
    Bh = B.repeat_interleave(H // G, dim=2)                           # (b, L, H, N)
    for t in range(L):
        h = torch.exp(dt[:, t] * A)[..., None, None] * h + (dt[:, t, :, None, None] * Bh[:, t, :, :, None]
                                                            * x[:, t, :, None, :])
    assert rel_err(h_whole, h) <= 1e-10


def test_ssd_chunked_with_extreme_decays():
    """Per-step decays from exp(-1e-4) to exp(-30): the segment sums must neither overflow nor
    lose the slowly decaying heads (compared with the plain recurrence)."""
    torch.manual_seed(1)
    b, L, H, P, G, N = 2, 70, 4, 3, 1, 5
    x = torch.randn(b, L, H, P, dtype=torch.float64)
    dt = torch.tensor([1e-4, 0.1, 1.0, 3.0], dtype=torch.float64).expand(b, L, H).clone()
    A = -torch.tensor([1.0, 2.0, 5.0, 10.0], dtype=torch.float64)
    B = torch.randn(b, L, G, N, dtype=torch.float64)
    C = torch.randn(b, L, G, N, dtype=torch.float64)
    h = torch.zeros(b, H, P, N, dtype=torch.float64)
    ref = []
    for t in range(L):
        h = (torch.exp(dt[:, t] * A)[..., None, None] * h
             + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, 0, None, None, :])
        ref.append((h * C[:, t, 0, None, None, :]).sum(-1))
    ref = torch.stack(ref, dim=1)
    for q in (8, 64):
        y = ssd_chunked(x, dt, A, B, C, chunk_size=q)
        assert torch.isfinite(y).all()
        assert rel_err(y, ref) <= 1e-10
        y32 = ssd_chunked(x.float(), dt.float(), A.float(), B.float(), C.float(), chunk_size=q)
        assert torch.isfinite(y32).all()
        assert rel_err(y32.double(), ref) <= 1e-5


def test_float32_close_to_float64():
    torch.manual_seed(0)
    m64 = Mamba2(64, d_state=16, headdim=32, d_in=48, dtype=torch.float64)
    m32 = Mamba2(64, d_state=16, headdim=32, d_in=48, dtype=torch.float32)
    m32.load_state_dict(m64.state_dict())
    u = torch.randn(2, 150, 48, dtype=torch.float64)
    y64 = m64(u)
    y32 = m32(u.float())
    assert y32.dtype == torch.float32
    assert rel_err(y32.double(), y64) <= 1e-5


def test_bfloat16_runs_and_stays_close():
    torch.manual_seed(0)
    m = Mamba2(64, d_state=16, headdim=32)
    u = torch.randn(2, 40, 64)
    y32 = m(u)
    y16 = m.to(torch.bfloat16)(u.bfloat16())
    assert y16.dtype == torch.bfloat16
    assert rel_err(y16.float(), y32) <= 5e-2


def test_gradients_match_reference():
    m = small_module(chunk_size=8, d_in=24)
    u = torch.randn(2, 21, 24, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 21, m.d_model, dtype=torch.float64)  # random cotangent, not just ones

    (m(u) * w).sum().backward()
    got = {n: p.grad.clone() for n, p in m.named_parameters()}
    got_u = u.grad.clone()
    m.zero_grad()
    u.grad = None
    (mamba2_reference(m, u) * w).sum().backward()

    names = {n for n, _ in m.named_parameters()}
    assert names == {"in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias", "A_log", "D",
                     "norm.weight", "out_proj.weight"}
    for n, p in m.named_parameters():
        assert got[n].abs().sum() > 0, f"no gradient reaches {n}"
        assert rel_err(got[n], p.grad) <= 1e-6, n
    assert rel_err(got_u, u.grad) <= 1e-6


# Keys and shapes of mamba_ssm.modules.mamba2.Mamba2 (mamba-ssm 2.x) built with RPG-Tiny's options
# Mamba2(d_model=256, d_state=32, d_conv=4, expand=2), written out from its __init__:
# d_inner 512, nheads 8, in_proj out = 2*512 + 2*1*32 + 8 = 1096, conv_dim = 512 + 2*32 = 576.
EXPECTED_TINY = [
    ("dt_bias", (8,)),
    ("A_log", (8,)),
    ("D", (8,)),
    ("in_proj.weight", (1096, 256)),
    ("conv1d.weight", (576, 1, 4)),
    ("conv1d.bias", (576,)),
    ("norm.weight", (512,)),
    ("out_proj.weight", (256, 512)),
]


def test_state_dict_layout_matches_mamba_ssm():
    m = Mamba2(256, d_state=32, d_conv=4, expand=2)
    assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == EXPECTED_TINY


def test_state_dict_layout_rpg_large_on_meta_device():
    """RPG-Large: layer 1 Mamba2(12288), layer 2 Mamba2(16384) with in_proj taking 12288 inputs
    (d_state 128, headdim 64). Built on the meta device, so nothing is allocated."""
    def expected(d_model, d_in):
        d_inner, nheads = 2 * d_model, 2 * d_model // 64
        return {"dt_bias": (nheads,), "A_log": (nheads,), "D": (nheads,),
                "in_proj.weight": (2 * d_inner + 2 * 128 + nheads, d_in),
                "conv1d.weight": (d_inner + 256, 1, 4), "conv1d.bias": (d_inner + 256,),
                "norm.weight": (d_inner,), "out_proj.weight": (d_model, d_inner)}

    l1 = Mamba2(12288, d_state=128, device="meta")
    l2 = Mamba2(16384, d_state=128, d_in=12288, device="meta")
    assert {k: tuple(v.shape) for k, v in l1.state_dict().items()} == expected(12288, 12288)
    assert {k: tuple(v.shape) for k, v in l2.state_dict().items()} == expected(16384, 12288)
    assert l2.in_proj.weight.shape == (66304, 12288)  # 2*32768 + 2*128 + 512


def test_initialisation_follows_mamba_ssm():
    torch.manual_seed(0)
    m = Mamba2(512, d_state=16, headdim=8)  # 128 heads: enough draws to check the ranges
    dt = torch.nn.functional.softplus(m.dt_bias)
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    # log-uniform: log(dt) spreads over most of [log 1e-3, log 0.1]
    assert dt.log().min() < math.log(3e-3) and dt.log().max() > math.log(3e-2)
    A = torch.exp(m.A_log)
    assert A.min() >= 1 and A.max() <= 16 and A.max() - A.min() > 10
    assert torch.equal(m.D, torch.ones(128))
    assert torch.equal(m.norm.weight, torch.ones(1024))
    assert m.norm.eps == 1e-5
    assert m.in_proj.bias is None and m.out_proj.bias is None and m.conv1d.bias is not None
    # Default nn.Conv1d init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = d_conv (depthwise).
    assert m.conv1d.weight.abs().max() <= 0.5


def test_causality():
    m = small_module(chunk_size=8)
    torch.manual_seed(3)
    u = torch.randn(2, 30, m.d_in, dtype=torch.float64)
    y = m(u)
    for t in (0, 7, 8, 13, 29):
        u2 = u.clone()
        u2[:, t] += torch.randn_like(u2[:, t]) * 10
        y2 = m(u2)
        assert torch.allclose(y2[:, :t], y[:, :t], rtol=0, atol=1e-12), f"outputs before {t} changed"
        assert (y2[:, t:] - y[:, t:]).abs().max() > 1e-3  # ...while later ones do


def test_make_mamba2_falls_back_to_pure_pytorch_without_kernel():
    if kernel_available():
        pytest.skip("mamba_ssm + CUDA present: the fallback is not used here")
    m = make_mamba2(32, d_in=24, d_state=8, headdim=16)
    assert isinstance(m, Mamba2) and m.in_proj.in_features == 24
    assert m.chunk_size == DEFAULT_CPU_CHUNK_SIZE
    assert isinstance(make_mamba2(32, use_kernel=False, chunk_size=16), Mamba2)
    with pytest.raises(RPGInputError, match="use_kernel"):
        make_mamba2(32, use_kernel=True)


def test_bad_options_are_input_errors():
    with pytest.raises(RPGInputError, match="unknown option"):
        make_mamba2(32, d_sate=8)
    with pytest.raises(RPGInputError, match="use_kernel"):
        make_mamba2(32, use_kernel="yes")
    with pytest.raises(RPGInputError, match="headdim"):
        Mamba2(40, headdim=64)
    with pytest.raises(RPGInputError, match="ngroups"):
        Mamba2(64, headdim=32, ngroups=3)
    with pytest.raises(RPGInputError, match="chunk_size"):
        Mamba2(64, chunk_size=0)
    m = Mamba2(32, d_state=8, headdim=16, d_in=24)
    with pytest.raises(RPGInputError, match="expected input"):
        m(torch.randn(1, 5, 32))
