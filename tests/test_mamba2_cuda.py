"""GPU checks: rpg.mamba2.Mamba2 against mamba_ssm's Mamba2 (Triton/CUDA kernels) on the same weights.

Skipped unless CUDA is available and mamba_ssm imports. Run with `pytest -m gpu -s` to see timings.
mamba_ssm's default fused path (use_mem_eff_path=True) also needs the causal_conv1d package; without
it only the unfused path (torch conv1d + Triton SSD scan + Triton gated RMSNorm) is compared.
"""

from __future__ import annotations

import time

import pytest
import torch

from rpg.generator.mamba2 import Mamba2, kernel_available, make_mamba2

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not kernel_available(), reason="needs CUDA and an importable mamba_ssm")]


def _has_causal_conv1d() -> bool:
    try:
        import causal_conv1d  # noqa: F401
    except ImportError:
        return False
    return True


MEM_EFF_PATHS = [False] + ([True] if _has_causal_conv1d() else [])


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def build_pair(d_model: int, d_in: int, mem_eff: bool, d_state: int = 32, seed: int = 0):
    """Our module and the kernel module with identical weights (loaded with strict=True both ways)."""
    torch.manual_seed(seed)
    ours = Mamba2(d_model, d_state=d_state, d_in=d_in, device="cuda")
    with torch.no_grad():  # move D and the norm weight off their all-ones init so they are tested
        ours.D.uniform_(0.5, 1.5)
        ours.norm.weight.uniform_(0.5, 1.5)
    kern = make_mamba2(d_model, d_in=d_in, use_kernel=True, d_state=d_state, use_mem_eff_path=mem_eff,
                       device="cuda")
    assert not isinstance(kern, Mamba2)
    kern.load_state_dict(ours.state_dict(), strict=True)
    back = Mamba2(d_model, d_state=d_state, d_in=d_in, device="cuda")
    back.load_state_dict(kern.state_dict(), strict=True)
    assert [(k, v.shape) for k, v in kern.state_dict().items()] == \
        [(k, v.shape) for k, v in ours.state_dict().items()]
    return ours, kern


@pytest.mark.parametrize("mem_eff", MEM_EFF_PATHS)
@pytest.mark.parametrize("d_model,d_in,L", [(256, 256, 512), (128, 96, 300)])
def test_fp32_outputs_and_gradients_match_kernel(d_model, d_in, L, mem_eff):
    ours, kern = build_pair(d_model, d_in, mem_eff)
    torch.manual_seed(1)
    u = torch.randn(2, L, d_in, device="cuda")
    w = torch.randn(2, L, d_model, device="cuda")
    u1, u2 = u.clone().requires_grad_(), u.clone().requires_grad_()
    y_ours, y_kern = ours(u1), kern(u2)
    (y_ours * w).sum().backward()
    (y_kern * w).sum().backward()
    err = rel_err(y_ours, y_kern)
    print(f"\nfp32 d_model={d_model} d_in={d_in} L={L} mem_eff={mem_eff}: output rel err {err:.2e}")
    # The Triton kernels use TF32 tensor-core dots, hence ~1e-3 rather than ~1e-6.
    assert err < 5e-3
    assert rel_err(u1.grad, u2.grad) < 1e-2
    kern_params = dict(kern.named_parameters())
    for name, p in ours.named_parameters():
        e = rel_err(p.grad, kern_params[name].grad)
        print(f"  grad {name:16s} rel err {e:.2e}")
        assert e < 2e-2, name


@pytest.mark.parametrize("mem_eff", MEM_EFF_PATHS)
def test_bf16_outputs_match_kernel(mem_eff):
    ours, kern = build_pair(256, 256, mem_eff)
    ours, kern = ours.to(torch.bfloat16), kern.to(torch.bfloat16)
    u = torch.randn(2, 512, 256, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        err = rel_err(ours(u), kern(u))
    print(f"\nbf16 mem_eff={mem_eff}: output rel err {err:.2e}")
    assert err < 5e-2


def _time_fwd_bwd(module, u, reps=10):
    for _ in range(3):
        module(u).pow(2).mean().backward()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        module(u).pow(2).mean().backward()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


@pytest.mark.parametrize("d_model,L,batch", [(256, 512, 8), (1024, 4096, 2)])
def test_speed_against_kernel(d_model, L, batch):
    """Reports fwd+bwd times (median of 10); only checks that ours is not absurdly slow."""
    ours, kern = build_pair(d_model, d_model, MEM_EFF_PATHS[-1])
    u = torch.randn(batch, L, d_model, device="cuda")
    t_ours = _time_fwd_bwd(ours, u)
    t_kern = _time_fwd_bwd(kern, u)
    print(f"\nfwd+bwd d_model={d_model} L={L} B={batch}: ours {t_ours:.2f} ms, "
          f"mamba_ssm (mem_eff={MEM_EFF_PATHS[-1]}) {t_kern:.2f} ms, ratio {t_ours / t_kern:.1f}x")
    assert t_ours < 100 * t_kern
