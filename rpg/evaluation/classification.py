"""The vision-classification domain: top-1 test accuracy of an image classifier.

Every state_dict is loaded strictly into the architecture of the zoo's manifest and run on the test split of its
dataset (ImageNet: the validation set), unaugmented, in fixed order. A task zoo (unseen-task study, paper §4.1)
scores each model on its own binary relabelling of the ten classes. The per-sample mistakes are the misclassified
test samples, which the IoU similarity of App. B.4 compares.
"""

from __future__ import annotations

import hashlib
import json

import torch
from torch import nn

from rpg import formats
from rpg.domains import Domain, Outcome
from rpg.zoos.recipes import ZooConfig


@torch.inference_mode()
def predict(
    model: nn.Module,
    split,
    device: torch.device | str,
    batch_size: int,
    label_map: torch.Tensor | None = None,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true labels (both (N,) int64, CPU) of `split` in its fixed order.

    With `label_map` (binary tasks) the targets are relabelled and a 2-way head is expected.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    preds, targets = [], []
    for x, y in split.batches(batch_size, label_map=label_map):
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        preds.append(model(x).argmax(dim=1).cpu())
        targets.append(y)
    model.train(was_training)
    return torch.cat(preds), torch.cat(targets)


def task_label_map(task: list[int], where: str) -> torch.Tensor:
    """(10,) int64: original class label -> its binary label under `task` (checked by formats.check_task)."""
    return torch.tensor(formats.check_task(task, where), dtype=torch.long)


class Evaluator:
    """One architecture + one test set; evaluates many state_dicts (strict load) on it."""

    def __init__(
        self,
        zoo_manifest: dict,
        data_cfg=None,
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
    ):
        from rpg.zoos.architectures import build_model
        from rpg.zoos.datasets import DatasetSpec, load_dataset

        self.device = torch.device(device)
        self.arch = zoo_manifest["architecture"]
        self.spec = DatasetSpec.from_dict(zoo_manifest["dataset"])
        cfg = zoo_manifest.get("config") or {}
        self.channels_last = bool(cfg.get("channels_last", False))
        self.batch_size = batch_size or int(cfg.get("eval_batch_size", 1000))
        self.data = load_dataset(self.spec, data_cfg)
        self.model = build_model(self.arch).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def wrong(self, sd: dict[str, torch.Tensor], source: str, task: list[int] | None = None) -> torch.Tensor:
        """(N,) bool: which test samples the weights `sd` misclassify."""
        from rpg.zoos.architectures import load_weights_strict

        load_weights_strict(self.model, sd, source)
        label_map = task_label_map(task, f"{source}: task") if task is not None else None
        preds, targets = predict(
            self.model, self.data.test, self.device, self.batch_size, label_map, self.channels_last
        )
        return preds != targets


class ClassificationDomain(Domain):
    """`Domain` of image classifiers: metric = top-1 test accuracy (%), mistakes = misclassified samples."""

    metric_name = "top-1 accuracy"
    recipe_class = ZooConfig
    dataset_names = {
        "fashion_mnist": "Fashion-MNIST",
        "mnist": "MNIST",
        "digits": "scikit-learn digits",
        "cifar10": "CIFAR-10",
        "cifar100": "CIFAR-100",
        "imagenet": "ImageNet-1K",
        "imagenet1k": "ImageNet-1K",
        "synthetic": "synthetic data",
    }

    def __init__(self, zoo: formats.Zoo, data_cfg=None, device: str | torch.device = "cpu",
                 batch_size: int | None = None):
        from rpg.zoos.architectures import count_params

        self.evaluator = Evaluator(zoo.manifest, data_cfg, device, batch_size)
        self.params = count_params(self.evaluator.model)
        self.dataset = self.evaluator.spec.name
        self.split = "test"
        # (N,) original class of every test sample, in the order `wrong` reports them
        self.classes = self.evaluator.data.test.targets.long()
        # test samples per original class: the majority-label reference of a binary task is computed from it
        self.label_counts = torch.bincount(self.classes, minlength=self.evaluator.data.num_classes).tolist()

    def fingerprint(self) -> str:
        """What a score depends on besides the weights: architecture, test data and evaluation settings
        (rpg.evaluation.cache). In-memory test images are hashed whole; a folder (ImageNet) by its file list."""
        from rpg.zoos.datasets import MemorySource
        ev = self.evaluator
        test = ev.data.test
        h = hashlib.sha256(json.dumps({"arch": ev.arch, "spec": repr(ev.spec), "batch": ev.batch_size,
                                       "channels_last": ev.channels_last, "device": ev.device.type,
                                       "source": type(test.source).__name__}, sort_keys=True, default=str).encode())
        h.update(test.indices.numpy().tobytes() + test.targets.numpy().tobytes())
        if isinstance(test.source, MemorySource):
            h.update(test.source.images.contiguous().numpy().tobytes())
        else:
            h.update(json.dumps([str(p) for p, _ in test.source.dataset.samples]).encode())
        return h.hexdigest()

    def score(self, state_dict: dict[str, torch.Tensor], source: str, ref: formats.ModelRef) -> Outcome:
        wrong = self.evaluator.wrong(state_dict, source, ref.task)
        # accuracy on the test samples of each original class (paper Tab. 10: per-class accuracy of a binary task)
        per_class = {str(c): round(100.0 * (1.0 - float(wrong[self.classes == c].float().mean())), 2)
                     for c in range(len(self.label_counts)) if self.label_counts[c]}
        return Outcome(metric=100.0 * (1.0 - float(wrong.float().mean())), mistakes=wrong, breakdown=per_class)
