"""Collect the sklearn-digits CNN zoos: the CPU benchmark fixture (benchmarks/bench_core.py, profile_step.py; the
test suite's `digits_zoo`).

Two zoos of one small CNN on the 8x8 sklearn digits (real data that ships inside scikit-learn):

- ``digits_2k9``: Conv(1->8, k3) -> LReLU -> Conv(8->8, k3) -> LReLU -> Flatten -> Linear(128->16) -> LReLU
  -> Linear(16->10): 2,898 parameters, 17 tokens of 256.
- ``digits_68k``: the same net with 32, 64 and 48 channels/units: 68,506 parameters, 272 tokens of 256.

Recipe (fixed so that timings are comparable with the official code's): digits scaled to [0, 1], a stratified
70/30 split with random_state 0, 40 epochs of SGD (lr 0.05, momentum 0.9, batch 64), then 50 checkpoints,
each taken after one more SGD step at lr 0.002 on a batch of 16.

The zoos are ordinary rpg-zoo/1 folders: the manifest names the library's architecture (rpg.zoos.digits:DigitsCNN)
and dataset spec (`digits_stratified`, this script's split and input scaling), so `rpg evaluate` and `rpg train`
read them like any zoo. The trainer is its own loop rather than a zoo recipe because the benchmark figures (and the
official code's timings they are compared with) were measured on exactly these checkpoints.

    python benchmarks/digits_zoo.py --zoo digits_2k9 --out runs/zoos/digits_2k9
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rpg import io, optim
from rpg.zoos.collection import MANIFEST_FORMAT, ZooManifest, code_version
from rpg.zoos.datasets import DatasetSpec
from rpg.zoos.digits import ZOOS, DigitsCNN

EPOCHS, LR, BATCH, SAVE_LR, SAVE_BATCH = 40, 0.05, 64, 0.002, 16


def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train [N,1,8,8], y_train, x_test, y_test) with the fixed stratified 70/30 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y, dtype=torch.long)
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    return xtr, ytr, xte, yte


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean()) * 100.0


def collect(name: str, out: str | Path, num: int = 50, seed: int = 0) -> list[float]:
    """Train one net and write `num` checkpoints + manifest.json (rpg-zoo/1, through collection.ZooManifest, so
    `rpg evaluate` and `rpg train --eval-every` read it like any zoo) to `out`. Returns their accuracies (%)."""
    c1, c2, hidden = ZOOS[name]
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = digits_split()
    model = DigitsCNN(c1, c2, hidden)
    opt = optim.make_optimizer(model.parameters(), "sgd", LR, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    for _ in range(EPOCHS):
        model.train()
        for idx in torch.randperm(len(xtr), generator=g).split(BATCH):
            opt.zero_grad()
            F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
    for group in opt.param_groups:
        group["lr"] = SAVE_LR
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = ZooManifest(out, manifest_header(name, num, seed, model))
    accs = []
    for i in range(num):
        model.train()
        idx = torch.randint(0, len(xtr), (SAVE_BATCH,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
        opt.step()
        acc = accuracy(model, xte, yte)
        fname = f"ckpt_{i:04d}.safetensors"
        io.save_state_dict(out / fname, model.state_dict())
        manifest.add({"file": fname, "permutation": i, "seed": seed, "iteration": i, "accuracy": acc / 100,
                      "task": None}, fixed_permutation=True)
        accs.append(acc)
    manifest.publish()
    return accs


def manifest_header(name: str, num: int, seed: int, model: nn.Module) -> dict:
    """The rpg-zoo/1 header of a digits zoo: an evaluable architecture and dataset spec (`digits_stratified` is
    this module's split and input scaling), and the recipe as its config."""
    c1, c2, hidden = ZOOS[name]
    return {
        "format": MANIFEST_FORMAT,
        "architecture": {"name": "rpg.zoos.digits:DigitsCNN", "kwargs": {"c1": c1, "c2": c2, "hidden": hidden}},
        "dataset": DatasetSpec(name="digits_stratified").to_dict(),
        "substitute_for": None,
        "code_version": code_version(),
        "zoo": name,
        "kind": "single",
        "params": sum(p.numel() for p in model.parameters()),
        "config": {"name": name, "recipe": "rpg.zoos.digits", "num_checkpoints": num, "seed": seed,
                   "epochs": EPOCHS, "lr": LR, "batch_size": BATCH, "save_lr": SAVE_LR, "save_batch": SAVE_BATCH},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Collect the sklearn-digits benchmark zoos (2.9k and 68k params).")
    p.add_argument("--zoo", choices=sorted(ZOOS), required=True)
    p.add_argument("--out", required=True, help="output folder (50 .safetensors + manifest.json)")
    p.add_argument("--num", type=int, default=50)
    args = p.parse_args(argv)
    t0 = time.time()
    accs = collect(args.zoo, args.out, args.num)
    t = torch.tensor(accs)
    print(f"{args.zoo}: {len(accs)} checkpoints in {time.time() - t0:.1f} s; acc mean {t.mean():.2f} "
          f"min {t.min():.2f} max {t.max():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
