"""The one optimizer / LR-schedule factory (rpg.optim) of zoo collection and generator training."""

from __future__ import annotations

import builtins
import math

import pytest
import torch

from rpg import optim
from rpg.zoos.collection import phase_lr
from rpg.zoos.recipes import PhaseConfig


def test_warmup_then_constant():
    f = optim.lr_schedule(0.5, "constant", warmup_steps=4)
    lrs = [f(s) for s in range(8)]
    assert lrs[:4] == sorted(lrs[:4]) and lrs[0] < lrs[1] < lrs[3] == 0.5   # linear ramp reaching lr
    assert lrs[0] == pytest.approx(0.5 / 4)
    assert lrs[4:] == [0.5] * 4


def test_warmup_then_cosine_reaches_zero():
    f = optim.lr_schedule(1.0, "cosine", warmup_steps=3, span=10)
    ramp, decay = [f(s) for s in range(3)], [f(s) for s in range(3, 14)]
    assert ramp == sorted(ramp) and ramp[-1] == 1.0
    assert decay[0] == 1.0 and all(a > b for a, b in zip(decay, decay[1:-1]))
    assert decay[5] == pytest.approx(0.5)                      # half-way down the cosine
    assert decay[-1] == 0.0 and f(10_000) == 0.0               # reaches 0 at the end and stays there


def test_cosine_to_lr_end_on_the_phase_last_step():
    phase = PhaseConfig(epochs=2, lr=3e-3, lr_end=1e-4)
    f = phase_lr(phase, total=20)
    assert f(0) == 3e-3 and f(19) == pytest.approx(1e-4) and f(30) == pytest.approx(1e-4)
    assert all(f(s) > f(s + 1) for s in range(19))
    assert phase_lr(PhaseConfig(epochs=2, lr=3e-3), total=20)(7) == 3e-3    # lr_end None: constant


def test_training_factor_matches_cosine_annealing():
    # generator training: LambdaLR(factor) without warm-up equals torch's CosineAnnealingLR(T_max=steps) to 0
    w = torch.nn.Parameter(torch.zeros(1))
    ref_opt = torch.optim.AdamW([w], lr=0.1)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=12)
    f = optim.lr_schedule(1.0, "cosine", span=12)
    for s in range(12):
        assert 0.1 * f(s) == pytest.approx(ref_opt.param_groups[0]["lr"], abs=1e-12)
        ref_opt.step()
        ref.step()
    assert math.isclose(f(12), 0.0, abs_tol=1e-15)


def test_optimizers():
    w = torch.nn.Parameter(torch.ones(3))
    sgd = optim.make_optimizer([w], "sgd", 0.1, weight_decay=0.01, momentum=0.5)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.5
    adamw = optim.make_optimizer([w], "adamw", 0.1, weight_decay=0.01)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["weight_decay"] == 0.01
    with pytest.raises(ValueError):
        optim.make_optimizer([w], "lion", 0.1)


def test_adamw8bit_falls_back_with_a_note(monkeypatch):
    real_import = builtins.__import__

    def no_bnb(name, *a, **k):
        if name == "bitsandbytes":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_bnb)
    notes = []
    w = torch.nn.Parameter(torch.ones(3))
    opt = optim.make_optimizer([w], "adamw8bit", 0.1, weight_decay=0.02, log=notes.append)
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["lr"] == 0.1
    assert len(notes) == 1 and "adamw8bit" in notes[0]
