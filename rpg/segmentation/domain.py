"""The `segmentation` evaluation domain (paper Tab. 2): mIoU of an mmsegmentation model on its validation split.

The zoo manifest's `config` (a SegZooConfig) names the mmseg config and the data; every state_dict is loaded
strictly into that model and scored by mmseg's IoUMetric (mIoU, with mAcc and aAcc as extra metrics). The
per-sample mistakes are the wrongly labelled validation pixels (for the IoU similarity of App. B.4).
"""

from __future__ import annotations

import torch

from rpg import formats
from rpg.domains import Domain, Outcome
from rpg.segmentation import model as seg
from rpg.segmentation.recipe import SegZooConfig


class SegmentationDomain(Domain):
    metric_name = "mIoU"
    extra_metrics = ("mAcc", "aAcc")
    recipe_class = SegZooConfig
    dataset_names = {"nuclei": "DSB-2018 nuclei tiles (stardist wheel)", "blobs": "synthetic blobs",
                     "ade20k": "ADE20K"}
    table_module = "rpg.segmentation.table"              # Table 2

    def __init__(self, zoo: formats.Zoo, data_cfg=None, device: str | torch.device = "cpu",
                 batch_size: int | None = None):
        cfg = SegZooConfig.from_dict(zoo.manifest["config"])
        # the manifest's dataset is what the zoo was scored on when collected (it may differ from a later recipe)
        cfg.dataset = dict(zoo.manifest["dataset"])
        self.model, mm = seg.build_model(cfg, device)
        spec = cfg.data_spec
        self.val_set = seg.build_dataset(mm, spec, "val", data_cfg)
        self.loader = seg.loader(self.val_set, batch_size or cfg.eval_batch_size)
        self.params = seg.count_params(self.model)
        self.dataset = spec.name
        self.split = "val"

    def scores(self, state_dict: dict[str, torch.Tensor], source: str) -> tuple[dict[str, float], torch.Tensor]:
        from rpg.zoos.architectures import load_weights_strict

        load_weights_strict(self.model, state_dict, source)
        return seg.evaluate(self.model, self.loader, self.val_set.metainfo)

    def score(self, state_dict: dict[str, torch.Tensor], source: str, ref: formats.ModelRef) -> Outcome:
        scores, wrong = self.scores(state_dict, source)
        return Outcome(metric=scores["mIoU"], mistakes=wrong,
                       extra={k: scores[k] for k in self.extra_metrics})
