"""Collecting a segmentation zoo: a loop of ours around the mmseg model's own training step.

Each iteration is `model.train_step(batch, optim_wrapper)`: mmseg's SegDataPreProcessor, the decode and auxiliary
heads' losses (the config's `loss_decode`), mmengine's parse_losses and OptimWrapper.update_params. Schedule as the
classification zoos (official dataset/*/train.py): the recipe's phases (cosine lr per phase), then a constant-lr
pass writing a checkpoint after every `save.every`-th step until `num_checkpoints` exist. Checkpoints are float32
state_dicts written with the zoo writer (rpg.zoos.collection.ZooManifest; manifest `domain: segmentation`), each
with its mIoU, mAcc and aAcc on the validation split.

A rerun of a finished zoo does nothing; an interrupted one starts over (CPU minutes at mini scale).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rpg import optim
from rpg.io import save_state_dict
from rpg.segmentation import model as seg
from rpg.segmentation.recipe import SegZooConfig
from rpg.zoos.collection import STATE_DIR, ZooManifest, _mix, zoo_header


def header(cfg: SegZooConfig, params: int) -> dict:
    return zoo_header(cfg, {"name": "mmseg", "config": cfg.config, "model_overrides": cfg.model_overrides},
                      dataclasses.asdict(cfg.data_spec), params, domain=cfg.domain, config=cfg.to_dict())


def _batches(dataset, batch_size: int, seed: int):
    """Endless training batches; epoch e is shuffled with seed mix(seed, e)."""
    epoch = 0
    while True:
        yield from seg.loader(dataset, batch_size, shuffle_seed=_mix(seed, epoch))
        epoch += 1


def collect(cfg: SegZooConfig, out: str | Path, data_cfg=None, device: str = "cpu", progress: bool | None = None,
            log=print) -> Path:
    """Train and save the zoo into `out` (manifest.json written last); returns `out`."""
    from mmengine.optim import OptimWrapper

    out = Path(out)
    if cfg.pretrained_required and not cfg.pretrained:
        from rpg.errors import RPGInputError

        raise RPGInputError(f"pretrained: zoo {cfg.name} fine-tunes released weights; set pretrained=PATH (a local "
                            "mmseg checkpoint, .pth or .safetensors; docs/segmentation.md names the file)")
    if (out / "manifest.json").is_file():
        log(f"{out}: zoo already complete")
        return out
    shutil.rmtree(out / STATE_DIR, ignore_errors=True)     # an interrupted collection starts over
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    model, mm = seg.build_model(cfg, device, seed=cfg.seed)
    if cfg.pretrained:
        from mmengine.runner import load_checkpoint

        load_checkpoint(model, cfg.pretrained, map_location="cpu", strict=False)
    spec = cfg.data_spec
    train_set = seg.build_dataset(mm, spec, "train", data_cfg)
    val_set = seg.build_dataset(mm, spec, "val", data_cfg)
    val_loader = seg.loader(val_set, cfg.eval_batch_size)
    manifest = ZooManifest(out, header(cfg, seg.count_params(model)))
    torch.manual_seed(cfg.seed + 1)                     # dropout and augmentation after the init
    batches = _batches(train_set, cfg.batch_size, cfg.seed)
    disable = None if progress is None else not progress
    model.train()
    t0 = time.perf_counter()
    for pi, phase in enumerate(cfg.phases):
        opt = OptimWrapper(optim.make_optimizer(model.parameters(), "adamw", phase.lr, phase.weight_decay, log=log))
        lr_at = (optim.lr_schedule(phase.lr, "cosine", span=max(1, phase.iters - 1), lr_end=phase.lr_end)
                 if phase.lr_end is not None else optim.lr_schedule(phase.lr))
        bar = tqdm(range(phase.iters), desc=f"phase {pi + 1}/{len(cfg.phases)}", leave=False, disable=disable,
                   file=sys.stderr)
        for it in bar:
            for g in opt.param_groups:
                g["lr"] = lr_at(it)
            losses = model.train_step(next(batches), opt)
            if it % 20 == 0:
                bar.set_postfix(loss=f"{float(losses['loss'].detach()):.3f}")   # detached: no autograd warning
    t_train = time.perf_counter() - t0
    save = cfg.save
    opt = OptimWrapper(optim.make_optimizer(model.parameters(), "adamw", save.lr, save.weight_decay, log=log))
    n, every = cfg.num_checkpoints, save.every
    t_eval = 0.0
    for it in tqdm(range((n - 1) * every + 1), desc="checkpoints", leave=False, disable=disable, file=sys.stderr):
        model.train_step(next(batches), opt)
        if it % every:
            continue
        fname = f"ckpt_{it // every:04d}.safetensors"
        sd = {k: (v.float() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
        save_state_dict(out / fname, sd, metadata={"zoo": cfg.name, "iteration": str(it)})
        scores = None
        if cfg.eval_checkpoints:
            t = time.perf_counter()
            scores, _ = seg.evaluate(model, val_loader, val_set.metainfo)
            model.train()
            t_eval += time.perf_counter() - t
        manifest.add({"file": fname, "permutation": 0, "seed": cfg.seed, "iteration": it,
                      "accuracy": None if scores is None else round(scores["mIoU"] / 100, 4),
                      "scores": scores, "task": None}, fixed_permutation=False)
    manifest.publish()
    log(f"time: training phases {t_train:.1f} s, saving pass {time.perf_counter() - t0 - t_train:.1f} s "
        f"(of which evaluation {t_eval:.1f} s)")
    return out
