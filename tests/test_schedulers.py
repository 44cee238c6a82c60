import pytest
import torch

from rpg.generator.schedulers import DDIMScheduler, DDPMScheduler, make_scheduler


def dummy_model(x, t):
    return x * t / (t + 1)


def test_ddim_grid_matches_official():
    s = DDIMScheduler()
    s.set_timesteps(60)
    assert s.timesteps[0].item() == 945 and s.timesteps[-1].item() == 1 and len(s.timesteps) == 60
    assert s.prev_timestep(945) == 929 and s.prev_timestep(1) == 0


def test_config_roundtrip_gives_identical_steps():
    for cls, kw in ((DDPMScheduler, {}), (DDIMScheduler, {"eta": 0.3})):
        a = cls(beta_start=2e-4, beta_end=0.03, **kw)
        b = cls.from_config(a.to_dict())
        x = torch.arange(12.0).view(3, 4) / 12
        for s in (a, b):
            s.set_timesteps(1000 if cls is DDPMScheduler else 50)
        t = int(a.timesteps[3])
        ra = a.step(dummy_model(x, t), t, x, generator=torch.Generator().manual_seed(0)).prev_sample
        rb = b.step(dummy_model(x, t), t, x, generator=torch.Generator().manual_seed(0)).prev_sample
        assert torch.equal(ra, rb)


def test_ddpm_posterior_variance_golden():
    s = DDPMScheduler()
    b = s.betas
    var = lambda t: b[t] * (1 - s.alphas_cumprod[t - 1]) / (1 - s.alphas_cumprod[t])  # noqa: E731
    assert float(var(487)) == pytest.approx(0.00979, rel=1e-3)
    assert float(var(999)) == pytest.approx(0.0199986, rel=1e-4)


def test_add_noise_matches_closed_form():
    s = DDPMScheduler()
    x0, eps = torch.ones(2, 5), torch.zeros(2, 5)
    xt = s.add_noise(x0, eps, torch.tensor([0, 999]))
    ab = s.alphas_cumprod
    assert xt[0, 0].item() == pytest.approx(ab[0].sqrt().item())
    assert xt[1, 0].item() == pytest.approx(ab[999].sqrt().item(), rel=1e-5)


@pytest.mark.parametrize("sampler,steps", [("ddpm", 1000), ("ddim", 60)])
def test_oracle_denoiser_recovers_x0(sampler, steps):
    """With the exact noise prediction for a known x0, the samplers must land on x0."""
    torch.manual_seed(0)
    x0 = torch.randn(4, 32)
    s = make_scheduler(sampler, steps=steps, eta=0.0 if sampler == "ddim" else 0.05)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 32, generator=g)
    for t in s.timesteps.tolist():
        ab = s.alphas_cumprod[t].float()
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        out = s.step(eps, t, x, generator=g)
        x = out.prev_sample
    assert torch.allclose(out.pred_original_sample, x0, atol=1e-4)
    if sampler == "ddpm":
        assert torch.allclose(x, x0, atol=1e-4)   # DDPM ends exactly at t = 0
    else:
        # DDIM's last step lands on alpha_bar[0] (official grid quirk): x0 plus ~1% of the noise
        assert (x - s.alphas_cumprod[0].float().sqrt() * x0).abs().max() < 0.05


def test_bad_arguments():
    with pytest.raises(ValueError):
        DDPMScheduler().set_timesteps(50)
    with pytest.raises(ValueError):
        DDIMScheduler().set_timesteps(0)
    with pytest.raises(ValueError):
        DDPMScheduler(beta_schedule="cosine")
