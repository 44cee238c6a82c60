"""The typed recipe of a segmentation zoo (`domain: segmentation` in rpg/zoos/recipes/*.yaml).

Like a classification recipe (rpg.zoos.recipes.ZooConfig): training phases, then one constant-learning-rate pass
that writes `num_checkpoints` checkpoints `save.every` iterations apart. What differs: the network is an
mmsegmentation config file (`config`, relative to rpg/segmentation/ or absolute, with `model_overrides` merged
into its `model` the way mmengine merges configs), the data is a `SegDataSpec`, and phases are counted in
iterations (mmseg schedules are iteration-based). Only this module's dataclasses are needed to read a recipe:
mmsegmentation is imported when a zoo is collected or scored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpg import configs
from rpg.errors import RPGInputError

PACKAGE_DIR = Path(__file__).parent
SOURCES = ("nuclei", "blobs", "ade20k")


@dataclass
class SegDataSpec:
    """What a segmentation zoo is trained and scored on; stored as manifest["dataset"].

    nuclei: the DSB-2018 fluorescence image (512x512) and its instance mask shipped in the stardist wheel,
        binarised (background 0, nucleus 1) and cut into `tile` x `tile` crops; the last `val_rows` rows of tiles
        are the validation split (no overlap with training). blobs: skimage.data.binary_blobs images with noise
        (tests). ade20k: the ADEChallengeData2016 folder (DataConfig.ade20k_root), mmseg's ADE20KDataset.
    """

    name: str = "nuclei"
    tile: int = 64
    val_rows: int = 2
    num_images: int = 8          # blobs only: images per split
    seed: int = 0                # blobs only
    val_limit: int | None = None  # score only the first n validation images (quick checks)

    def __post_init__(self) -> None:
        if self.name not in SOURCES:
            raise RPGInputError(f"dataset.name: {self.name!r} is not one of {', '.join(SOURCES)}")
        if self.tile < 8 or self.val_rows < 1 or self.num_images < 1:
            raise RPGInputError("dataset: tile >= 8, val_rows >= 1 and num_images >= 1 are required")


@dataclass
class SegPhase:
    """A training phase: `iters` optimizer steps, lr cosine-annealed to lr_end (None: constant)."""

    iters: int = 100
    lr: float = 1e-3
    lr_end: float | None = None
    weight_decay: float = 0.01


@dataclass
class SegSave:
    """The checkpoint-saving pass: constant lr; a checkpoint after every `every`-th step (the first after step 1)."""

    lr: float = 1e-5
    weight_decay: float = 0.01
    every: int = 2


@dataclass
class SegZooConfig:
    __field_schemas__ = {"dataset": SegDataSpec}

    name: str = "adhoc_seg"
    description: str = ""
    config: str = "configs/mini_upernet_vit_nuclei.py"
    model_overrides: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=lambda: {"name": "nuclei"})
    substitute_for: str | None = None
    seed: int = 0
    num_checkpoints: int = 50
    batch_size: int = 8
    eval_batch_size: int = 8
    phases: list[SegPhase] = field(default_factory=list)
    save: SegSave = field(default_factory=SegSave)
    pretrained: str = ""            # a local checkpoint (mmseg .pth or .safetensors) to start from
    pretrained_required: bool = False  # the recipe fine-tunes released weights: refuse to start without them
    eval_checkpoints: bool = True   # mIoU of every saved checkpoint in the manifest

    domain = "segmentation"          # class attribute: not a recipe key (the recipe's `domain:` picks this class)

    def __post_init__(self) -> None:
        self.phases = [p if isinstance(p, SegPhase) else configs.from_dict(SegPhase, p, "phases") for p in self.phases]
        if not isinstance(self.save, SegSave):
            self.save = configs.from_dict(SegSave, self.save, "save")
        self.data_spec  # noqa: B018  validates
        for key in ("num_checkpoints", "batch_size", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise RPGInputError(f"{key}: must be >= 1")
        if self.save.every < 1:
            raise RPGInputError("save.every: must be >= 1")

    @property
    def data_spec(self) -> SegDataSpec:
        return configs.from_dict(SegDataSpec, self.dataset, "dataset")

    @property
    def config_path(self) -> Path:
        p = Path(self.config)
        return p if p.is_absolute() else PACKAGE_DIR / p

    def input_files(self) -> list[Path]:
        """Files besides the recipe YAML that the zoo is built from (collect rule inputs): our mmseg config file.
        (Its `mmseg::` bases are files of the pinned mmsegmentation package.)"""
        return [self.config_path]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SegZooConfig:
        return configs.from_dict(cls, d, "")

    def override(self, overrides: dict[str, Any]) -> SegZooConfig:
        return SegZooConfig.from_dict(configs.apply_overrides(SegZooConfig, self.to_dict(), overrides))

    def collect(self, out: str | Path, data_cfg=None, device: str = "auto", progress: bool | None = None,
                log=print) -> list[Path]:
        """Collect this zoo into `out` (rpg.segmentation.collect; mmsegmentation is imported there)."""
        from rpg.runtime import resolve_device
        from rpg.segmentation.collect import collect

        return [collect(self, out, data_cfg, resolve_device(device), progress, log)]

    @staticmethod
    def score_summary(manifest: dict) -> str:
        """The checkpoints' recorded mIoU, for the line `rpg collect` prints."""
        miou = [c["scores"]["mIoU"] for c in manifest["checkpoints"] if c.get("scores")]
        if not miou:
            return ""
        return f", mIoU {sum(miou) / len(miou):.2f}% (min {min(miou):.2f}, max {max(miou):.2f})"
