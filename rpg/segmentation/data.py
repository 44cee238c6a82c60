"""Segmentation data as mmsegmentation datasets.

`RPGTileDataset` is a `BaseSegDataset` registered in mmseg's DATASETS whose images are built in memory (the DSB-2018
nuclei tiles, or synthetic blobs) instead of listed from folders; everything after loading (the pipeline's
RandomFlip and PackSegInputs, the collate, SegDataPreProcessor, IoUMetric) is mmseg's own code. ADE20K is mmseg's
ADE20KDataset on the configured root.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from rpg.errors import RPGInputError
from rpg.segmentation.recipe import SegDataSpec

CLASSES = ("background", "nucleus")
PALETTE = [[0, 0, 0], [255, 255, 255]]


def stardist_images_dir() -> Path:
    """stardist's data/images folder, found without importing stardist (installed with --no-deps as a data source)."""
    spec = importlib.util.find_spec("stardist")
    if spec is None or not spec.submodule_search_locations:
        raise RPGInputError("dataset nuclei: the stardist wheel (data source of the DSB-2018 nuclei image) is not "
                            "installed; pip install --no-deps stardist==0.9.2 (scripts/setup.sh does)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "images"


def nuclei_image() -> tuple[np.ndarray, np.ndarray]:
    """The DSB-2018 image as uint8 (512, 512), min-max scaled, and its binary mask (512, 512) uint8 (1 = nucleus)."""
    import tifffile

    folder = stardist_images_dir()
    img = tifffile.imread(folder / "img2d.tif").astype(np.float64)
    labels = tifffile.imread(folder / "mask2d.tif")          # instance ids, 0 = background
    lo, hi = np.percentile(img, (0.5, 99.8))
    img = np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1) * 255.0
    return img.round().astype(np.uint8), (labels > 0).astype(np.uint8)


def tiles(img: np.ndarray, mask: np.ndarray, tile: int, val_rows: int) -> dict[str, list[tuple]]:
    """Non-overlapping tile x tile crops; the last `val_rows` rows of tiles are the validation split."""
    rows, cols = img.shape[0] // tile, img.shape[1] // tile
    if val_rows >= rows:
        raise RPGInputError(f"dataset: val_rows={val_rows} leaves no training rows ({rows} rows of {tile}px tiles)")
    out: dict[str, list[tuple]] = {"train": [], "val": []}
    for r in range(rows):
        for c in range(cols):
            crop = (slice(r * tile, (r + 1) * tile), slice(c * tile, (c + 1) * tile))
            out["val" if r >= rows - val_rows else "train"].append((img[crop], mask[crop]))
    return out


def blobs(spec: SegDataSpec, split: str) -> list[tuple]:
    """Synthetic pairs: the blob mask is the label, the image is the mask plus Gaussian noise (uint8)."""
    from skimage.data import binary_blobs

    rng = np.random.default_rng(spec.seed + (0 if split == "train" else 1))
    pairs = []
    for _ in range(spec.num_images):
        mask = binary_blobs(spec.tile, blob_size_fraction=0.2, volume_fraction=0.4,
                            rng=int(rng.integers(1 << 31))).astype(np.uint8)
        img = np.clip(mask * 160.0 + 48.0 + rng.normal(0, 40, mask.shape), 0, 255).round().astype(np.uint8)
        pairs.append((img, mask))
    return pairs


def pairs(spec: SegDataSpec, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image uint8 (H, W), mask uint8 (H, W)) pairs of an in-memory source."""
    if spec.name == "nuclei":
        return tiles(*nuclei_image(), spec.tile, spec.val_rows)[split]
    if spec.name == "blobs":
        return blobs(spec, split)
    raise RPGInputError(f"dataset {spec.name}: not an in-memory source")


_REGISTERED = False


def register() -> None:
    """Define and register `RPGTileDataset` in mmseg's DATASETS (once; needs rpg.segmentation.stack.load())."""
    global _REGISTERED
    if _REGISTERED:
        return
    from mmseg.datasets import BaseSegDataset
    from mmseg.registry import DATASETS

    @DATASETS.register_module(force=True)
    class RPGTileDataset(BaseSegDataset):
        """In-memory image/mask pairs (`source`: a SegDataSpec dict, `split`: train | val)."""

        METAINFO = dict(classes=CLASSES, palette=PALETTE)

        def __init__(self, source: dict, split: str, **kwargs):
            self.source, self.split = SegDataSpec(**source), split
            super().__init__(**kwargs)

        def load_data_list(self) -> list[dict]:
            items = pairs(self.source, self.split)
            if self.split == "val" and self.source.val_limit is not None:
                items = items[: self.source.val_limit]
            return [dict(img=img, gt_seg_map=mask, img_shape=img.shape, ori_shape=img.shape, seg_fields=["gt_seg_map"],
                         reduce_zero_label=False, sample_idx=i, img_path=f"{self.source.name}/{self.split}/{i:04d}",
                         seg_map_path=None)
                    for i, (img, mask) in enumerate(items)]

    _REGISTERED = True


def dataset_cfg(spec: SegDataSpec, split: str, data_cfg=None) -> dict:
    """The mmseg dataset config of a split (training: random flips; validation: unaugmented)."""
    train = split == "train"
    if spec.name == "ade20k":
        root = getattr(data_cfg, "ade20k_root", "") if data_cfg is not None else ""
        if not root or not Path(root).is_dir():
            raise RPGInputError(f"dataset ade20k: set the ADEChallengeData2016 folder (config data.ade20k_root, "
                                f"--set ade20k_root=PATH or RPG_ADE20K_ROOT); got {root!r}")
        return {}   # the paper config's own ADE20K dataloaders are used (see collect/domain), with this root
    pipeline = ([dict(type="RandomFlip", prob=0.5, direction=["horizontal", "vertical"])] if train else []) + [
        dict(type="PackSegInputs")]
    return dict(type="RPGTileDataset", source=dataclasses_asdict(spec), split=split, pipeline=pipeline,
                test_mode=not train, serialize_data=False)


def dataclasses_asdict(spec: SegDataSpec) -> dict:
    import dataclasses

    return dataclasses.asdict(spec)
