"""An mmsegmentation model from a config file, its data loaders and its evaluation with mmseg's IoUMetric."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from rpg.errors import RPGInputError
from rpg.segmentation import data, stack
from rpg.segmentation.recipe import SegDataSpec, SegZooConfig


def load_config(path: str | Path, model_overrides: dict | None = None):
    """An mmengine Config read from `path` (its `_base_` chain resolved by mmengine), with `model_overrides` merged
    into `model` (nested keys merge, lists replace: mmengine's own merge)."""
    stack.load()
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise RPGInputError(f"config: mmsegmentation config {path} not found")
    cfg = Config.fromfile(str(path))
    if model_overrides:
        cfg.merge_from_dict({"model": copy.deepcopy(model_overrides)})
    return cfg


def build_model(cfg: SegZooConfig, device: str | torch.device = "cpu", seed: int | None = None):
    """The segmentor of a recipe: mmseg's MODELS.build + init_weights (fresh weights from `seed`)."""
    from mmseg.registry import MODELS

    mm = load_config(cfg.config_path, cfg.model_overrides)
    if seed is not None:
        torch.manual_seed(seed)
    model = MODELS.build(mm.model)
    model.init_weights()
    return model.to(device), mm


def count_params(model: torch.nn.Module) -> int:
    """Floating-point elements of the state_dict (weights and BN statistics: what RPG generates)."""
    return sum(v.numel() for v in model.state_dict().values() if v.is_floating_point())


def build_dataset(mm_cfg, spec: SegDataSpec, split: str, data_cfg=None):
    """The mmseg dataset of a split: our in-memory tiles, or the config's own ADE20K dataloader's dataset on the
    configured root."""
    from mmseg.registry import DATASETS

    data.register()
    if spec.name == "ade20k":
        data.dataset_cfg(spec, split, data_cfg)       # checks the root
        loader = mm_cfg.train_dataloader if split == "train" else mm_cfg.val_dataloader
        ds_cfg = copy.deepcopy(loader.dataset)
        ds_cfg["data_root"] = str(data_cfg.ade20k_root)
        if split != "train" and spec.val_limit is not None:
            ds_cfg["indices"] = spec.val_limit
        return DATASETS.build(ds_cfg)
    return DATASETS.build(data.dataset_cfg(spec, split, data_cfg))


def loader(dataset, batch_size: int, shuffle_seed: int | None = None):
    """A DataLoader with mmengine's pseudo_collate (lists of tensors and SegDataSamples, what the model's
    data_preprocessor takes); `shuffle_seed` None = fixed order."""
    from mmengine.dataset import pseudo_collate

    gen = None
    if shuffle_seed is not None:
        gen = torch.Generator().manual_seed(shuffle_seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=gen is not None, generator=gen,
                                       collate_fn=pseudo_collate, num_workers=0, drop_last=gen is not None
                                       and len(dataset) >= batch_size)


@torch.inference_mode()
def evaluate(model, val_loader, dataset_meta: dict) -> tuple[dict[str, float], torch.Tensor]:
    """mmseg's IoUMetric over the validation loader: ({"mIoU", "mAcc", "aAcc"} in percent, per-pixel mistakes).

    mistakes: (P,) bool over every labelled validation pixel in loader order (pred != label where label is not
    ignore_index): the per-sample errors the IoU similarity (App. B.4) compares."""
    import logging

    from mmengine.evaluator import Evaluator
    from mmseg.evaluation import IoUMetric

    with stack.quiet(logging.ERROR):
        metric = IoUMetric(iou_metrics=["mIoU"])
    evaluator = Evaluator([metric])
    evaluator.dataset_meta = dataset_meta
    was_training = model.training
    model.eval()
    wrong = []
    for batch in val_loader:
        outputs = model.test_step(batch)
        evaluator.process(data_samples=outputs, data_batch=batch)
        for out in outputs:
            pred = out.pred_sem_seg.data.squeeze(0).cpu()              # (H, W)
            gt = out.gt_sem_seg.data.squeeze(0).cpu().to(pred)        # (H, W)
            keep = gt != metric.ignore_index
            wrong.append((pred != gt)[keep])
    with stack.quiet():
        scores = evaluator.evaluate(len(val_loader.dataset))
    model.train(was_training)
    return {k: float(scores[k]) for k in ("mIoU", "mAcc", "aAcc")}, torch.cat(wrong)
