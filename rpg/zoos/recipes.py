"""The zoo registry: every checkpoint collection of the paper (and its mini-scale analogue) is a config entry.

A zoo = one architecture trained (or fine-tuned) on one dataset, then N checkpoints saved at a fixed
iteration spacing during a final constant-learning-rate pass (reference §7.1). `ZooConfig` holds the
whole recipe; `ZOOS` maps registry names to configs:

- `mini/*`: small analogues of the paper's architectures on Fashion-MNIST (runnable on a CPU in
  minutes). `substitute_for` names the dataset they stand in for (ImageNet-1K for Tab. 1 rows,
  CIFAR-10 for Tab. 8 and §4 rows).
- `paper/*`: the paper's zoos with the reference hyper-parameters (§7.2-7.5), for a GPU and the real
  data (`imagenet_root` / `cifar_root`).

Three kinds of zoo:
- `single`: one training run, `num_checkpoints` checkpoints (default 50);
- `seeds`: the permutation-state study (Tab. 15): `num_seeds` runs from scratch, `num_checkpoints`
  (5) per seed, one per iteration; manifest `permutation` = seed id;
- `tasks`: the unseen-task study (§4): binary relabellings of the 10 classes. Task id n in 1..1022 is
  the 10-bit string bin(n).zfill(10), MSB = class 0, bit 1 = positive class. `num_checkpoints` (3) per
  task; the paper's 20 unseen ids are held out into a separate zoo folder.

Overrides: `apply_overrides(cfg, {"save.lr": "1e-4", "phases.0.epochs": "2", ...})` edits any field by
its dotted path (list items by index); values are parsed as JSON when possible, else taken as strings,
and the result is re-validated (unknown keys are errors).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from dataclasses import dataclass, field
from typing import Any

import torch

from rpg.errors import RPGInputError
from rpg.zoos.architectures import check_spec
from rpg.zoos.datasets import DatasetSpec

# --------------------------------------------------------------------------------------------------
# binary tasks (paper §4.1, reference §7.5)
# --------------------------------------------------------------------------------------------------

NUM_TASK_CLASSES = 10
NUM_TASKS = 2**NUM_TASK_CLASSES - 2  # all-0 and all-1 labelings are excluded: 1022
# The 20 unseen task ids of the reference split.sh (= the rows of paper Tab. 14).
PAPER_UNSEEN_TASKS = [
    314,
    482,
    589,
    197,
    462,
    111,
    101,
    278,
    793,
    279,
    653,
    238,
    1001,
    141,
    884,
    592,
    502,
    643,
    383,
    128,
]


def check_task_id(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= NUM_TASKS:
        raise RPGInputError(f"task id {n!r}: must be an integer in 1..{NUM_TASKS}")
    return n


def task_bits(n: int) -> list[int]:
    """Task id -> 10-bit vector; bits[i] = 1 means class i is the positive class (MSB = class 0)."""
    check_task_id(n)
    return [int(c) for c in bin(n)[2:].zfill(NUM_TASK_CLASSES)]


def task_id(bits: list[int]) -> int:
    """Inverse of `task_bits`."""
    if (
        not isinstance(bits, (list, tuple))
        or len(bits) != NUM_TASK_CLASSES
        or any(b not in (0, 1) for b in bits)
    ):
        raise RPGInputError(f"task {bits!r}: expected a list of {NUM_TASK_CLASSES} bits (0/1)")
    return check_task_id(int("".join(str(int(b)) for b in bits), 2))


def task_label_map(bits: list[int]) -> torch.Tensor:
    """(10,) int64 tensor mapping an original class label to its binary label under this task."""
    task_id(bits)  # validates
    return torch.tensor(bits, dtype=torch.long)


def task_string(bits: list[int]) -> str:
    return "".join(str(int(b)) for b in bits)


# --------------------------------------------------------------------------------------------------
# config dataclasses
# --------------------------------------------------------------------------------------------------

OPTIMIZERS = ("adamw", "sgd")
TRAINABLE = ("all", "head")


@dataclass
class PhaseConfig:
    """A training phase before the checkpoint-saving pass."""

    epochs: int = 1
    lr: float = 1e-3
    # cosine annealing to lr_end over the phase, updated every iteration (the reference steps a
    # CosineAnnealingLR once per epoch; over 50 epochs the two schedules are nearly the same); None = constant
    lr_end: float | None = None
    optimizer: str = "adamw"  # adamw | sgd
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    trainable: str = "all"  # all | head (the classifier head only)

    def __post_init__(self) -> None:
        _check_opt(self, "phases")
        if self.epochs < 0:
            raise RPGInputError("phases.epochs: must be >= 0")


@dataclass
class SaveConfig:
    """The final constant-learning-rate pass during which the checkpoints are written."""

    lr: float = 1e-5
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    momentum: float = 0.9
    trainable: str = "all"
    # iterations between two checkpoints; 0 = auto: max(1, n_train // batch_size // num_checkpoints), so the
    # checkpoints spread over one epoch (reference §7.1). The first checkpoint follows the first step.
    every: int = 0

    def __post_init__(self) -> None:
        _check_opt(self, "save")
        if self.every < 0:
            raise RPGInputError("save.every: must be >= 0 (0 = automatic spacing)")


def _check_opt(obj: Any, where: str) -> None:
    if obj.optimizer not in OPTIMIZERS:
        raise RPGInputError(f"{where}.optimizer: {obj.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    if obj.trainable not in TRAINABLE:
        raise RPGInputError(f"{where}.trainable: {obj.trainable!r} is not one of {', '.join(TRAINABLE)}")
    if obj.lr <= 0 or (getattr(obj, "lr_end", None) is not None and obj.lr_end < 0):
        raise RPGInputError(f"{where}.lr: must be positive")


KINDS = ("single", "seeds", "tasks")


@dataclass
class ZooConfig:
    """Everything needed to collect one zoo. Stored (as a dict) in the zoo's manifest."""

    name: str = "adhoc"
    description: str = ""
    architecture: dict = field(default_factory=lambda: {"name": "cnn_s", "kwargs": {}})
    dataset: dict = field(default_factory=lambda: {"name": "fashion_mnist"})
    substitute_for: str | None = None  # the paper dataset this zoo stands in for, if it is a substitute
    kind: str = "single"  # single | seeds | tasks
    seed: int = 0  # base RNG seed (seeds zoo: seed + seed id)
    num_checkpoints: int = 50  # single: total; seeds: per seed; tasks: per task
    batch_size: int = 128
    eval_batch_size: int = 1000
    phases: list[PhaseConfig] = field(default_factory=list)
    save: SaveConfig = field(default_factory=SaveConfig)
    loss: str = "ce"  # ce | focal
    focal_gamma: float = 2.0
    amp: str = "none"  # none | bf16 (autocast, CUDA only; evaluation is always fp32)
    freeze: list[str] = field(default_factory=list)  # parameter-name substrings never trained (e.g. "bn")
    pretrained: str = ""  # "" = from scratch; a local weights file; "timm-hub" = timm download
    pretrained_required: bool = False  # the recipe fine-tunes released weights: refuse to start without them
    eval_checkpoints: bool = True  # test accuracy of every saved checkpoint (manifest "accuracy")
    state_every: int = 1  # write the resume state every k checkpoints
    channels_last: bool = False  # NHWC memory format (faster small convolutions on CPU)
    num_seeds: int = 1  # seeds zoo: seed ids 0..num_seeds-1
    num_seen_tasks: int | None = None  # tasks zoo: how many seen tasks to collect (None = all 1002)
    unseen_tasks: list[int] = field(default_factory=lambda: list(PAPER_UNSEEN_TASKS))
    task_sample_seed: int = 0  # tasks zoo: which seen tasks when num_seen_tasks < all
    collect_unseen: bool = True  # tasks zoo: also collect the held-out tasks (their own folder)

    def __post_init__(self) -> None:
        self.phases = [
            p if isinstance(p, PhaseConfig) else _from_dict(PhaseConfig, p, "phases") for p in self.phases
        ]
        if not isinstance(self.save, SaveConfig):
            self.save = _from_dict(SaveConfig, self.save, "save")
        self.architecture = check_spec(self.architecture)
        DatasetSpec.from_dict(self.dataset)  # validates
        if self.kind not in KINDS:
            raise RPGInputError(f"kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.loss not in ("ce", "focal"):
            raise RPGInputError(f"loss: {self.loss!r} is not one of ce, focal")
        if self.amp not in ("none", "bf16"):
            raise RPGInputError(f"amp: {self.amp!r} is not one of none, bf16")
        for key in ("num_checkpoints", "batch_size", "eval_batch_size", "state_every", "num_seeds"):
            if getattr(self, key) < 1:
                raise RPGInputError(f"{key}: must be >= 1")
        for n in self.unseen_tasks:
            check_task_id(n)
        if len(set(self.unseen_tasks)) != len(self.unseen_tasks):
            raise RPGInputError("unseen_tasks: contains duplicates")
        n_seen = NUM_TASKS - len(self.unseen_tasks)
        if self.num_seen_tasks is not None and not 1 <= self.num_seen_tasks <= n_seen:
            raise RPGInputError(f"num_seen_tasks: must be in 1..{n_seen} (or null for all)")
        if self.kind == "tasks" and DatasetSpec.from_dict(self.dataset).info.num_classes != NUM_TASK_CLASSES:
            raise RPGInputError(f"dataset: a tasks zoo needs a {NUM_TASK_CLASSES}-class dataset")

    @property
    def dataset_spec(self) -> DatasetSpec:
        return DatasetSpec.from_dict(self.dataset)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ZooConfig:
        return _from_dict(cls, d, "zoo")

    # -- tasks ------------------------------------------------------------------------------------
    def seen_tasks(self) -> list[int]:
        """Seen task ids in collection order (ascending). A subset is drawn with task_sample_seed."""
        pool = [n for n in range(1, NUM_TASKS + 1) if n not in set(self.unseen_tasks)]
        if self.num_seen_tasks is not None and self.num_seen_tasks < len(pool):
            # a prefix of one fixed shuffle: raising num_seen_tasks later only adds tasks
            random.Random(self.task_sample_seed).shuffle(pool)
            pool = sorted(pool[: self.num_seen_tasks])
        return pool


def _from_dict(cls: type, d: Any, where: str):
    if not isinstance(d, dict):
        raise RPGInputError(f"{where}: expected a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise RPGInputError(f"{where}: unknown keys {sorted(unknown)} (known: {', '.join(fields)})")
    out = {}
    for k, v in d.items():
        out[k] = _check_type(v, fields[k].type, f"{where}.{k}" if where != "zoo" else k)
    return cls(**out)


def _check_type(v: Any, t: Any, key: str) -> Any:
    """Light type check for JSON values against the annotation strings used above."""
    t = t if isinstance(t, str) else getattr(t, "__name__", str(t))
    optional = "None" in t
    if v is None:
        if optional:
            return None
        raise RPGInputError(f"{key}: must not be null")
    base = t.replace(" | None", "")
    if base == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise RPGInputError(f"{key}: expected a number, got {v!r}")
        return float(v)
    if base == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise RPGInputError(f"{key}: expected an integer, got {v!r}")
        return v
    if base == "bool":
        if not isinstance(v, bool):
            raise RPGInputError(f"{key}: expected true/false, got {v!r}")
        return v
    if base == "str":
        if not isinstance(v, str):
            raise RPGInputError(f"{key}: expected a string, got {v!r}")
        return v
    if base == "dict" and not isinstance(v, dict):
        raise RPGInputError(f"{key}: expected a mapping, got {v!r}")
    if base.startswith("list") and not isinstance(v, list):
        raise RPGInputError(f"{key}: expected a list, got {v!r}")
    return v


def parse_value(text: str) -> Any:
    """`--set` value: JSON when it parses (numbers, true/false/null, lists, objects), else the raw string."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text


def apply_overrides(cfg: ZooConfig, overrides: dict[str, str]) -> ZooConfig:
    """Return a new config with dotted-path overrides applied (see module docstring)."""
    d = cfg.to_dict()
    for path, text in overrides.items():
        parts = path.split(".")
        node: Any = d
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise RPGInputError(f"--set {path}: {part!r} is not an index of a {len(node)}-item list")
                part = int(part)
            elif not isinstance(node, dict):
                raise RPGInputError(
                    f"--set {path}: cannot descend into {'.'.join(parts[:i])} (not a mapping)"
                )
            elif part not in node and not (parts[0] in ("architecture", "dataset") and last):
                # architecture.kwargs.* and dataset.* may add keys; anything else must exist
                if not (len(parts) >= 3 and parts[0] == "architecture" and parts[1] == "kwargs"):
                    raise RPGInputError(f"--set {path}: unknown key {part!r}")
            if last:
                node[part] = parse_value(text)
            else:
                node = node[part]
    return ZooConfig.from_dict(d)


# --------------------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------------------

FMNIST = {"name": "fashion_mnist"}


def _fm_arch(name: str, **kwargs: Any) -> dict:
    return {"name": name, "kwargs": {"in_chans": 1, "num_classes": 10, **kwargs}}


def _mini(
    name: str,
    arch: dict,
    substitute_for: str,
    description: str,
    *,
    epochs: int = 4,
    lr: float = 3e-3,
    dataset: dict | None = None,
    batch_size: int = 128,
    weight_decay: float = 1e-4,
    **extra: Any,
) -> ZooConfig:
    """Mini recipe: AdamW with cosine decay lr -> lr/30 for `epochs`, then 50 checkpoints two iterations
    apart at the final learning rate (the spacing of the reference's CIFAR-10 zoos)."""
    lr_end = lr / 30
    return ZooConfig(
        name=name,
        description=description,
        architecture=arch,
        dataset=dataset or dict(FMNIST),
        substitute_for=substitute_for,
        seed=0,
        num_checkpoints=50,
        batch_size=batch_size,
        eval_batch_size=2000,
        phases=[
            PhaseConfig(epochs=epochs, lr=lr, lr_end=lr_end, optimizer="adamw", weight_decay=weight_decay)
        ],
        save=SaveConfig(lr=lr_end, optimizer="adamw", weight_decay=weight_decay, every=2),
        **extra,
    )


def _mini_zoos() -> dict[str, ZooConfig]:
    IN, C10 = "ImageNet-1K", "CIFAR-10"
    z = [
        # ---- paper Tab. 1 analogues; parameter counts keep the paper's ordering:
        #      ConvNeXt-A 6.3k < ViT-T 11.1k < R18 18.1k < ViT-S 23.6k < R50 25.4k < ViT-B 40.7k
        #      < ConvNeXt-L 57.5k.
        #      The ViTs share depth 3 and head width 8 and differ in width, as ViT-T/S/B share depth 12.
        #      Conv nets reach 7x7 quickly (patch-4 / stride-4 stems) so that 50 test passes stay cheap
        #      on a CPU.
        _mini(
            "mini/convnext_atto",
            _fm_arch(
                "timm:convnext_atto",
                depths=[1, 1, 1, 1],
                dims=[4, 8, 12, 16],
                patch_size=4,
                output_stride=16,
                kernel_sizes=[5, 3, 3, 3],
            ),
            IN,
            "ConvNeXt-Atto analogue: timm convnext_atto (conv-MLP blocks), 4 stages, patch-4 stem",
            channels_last=True,
        ),
        _mini(
            "mini/vit_tiny",
            _fm_arch(
                "timm:vit_tiny_patch16_224", img_size=28, patch_size=7, embed_dim=16, depth=3, num_heads=2
            ),
            IN,
            "ViT-Tiny analogue: timm ViT, 7x7 patches (16 tokens + cls), width 16",
        ),
        _mini(
            "mini/resnet18",
            _fm_arch(
                "timm:resnet18",
                layers=[1, 1, 1, 1],
                channels=[8, 12, 16, 24],
                stem_width=4,
                stem_type="deep",
            ),
            IN,
            "ResNet-18 analogue: timm resnet18 (BasicBlock, BatchNorm), one block per stage, narrow deep "
            "stem (timm's 7x7 stem is fixed at 64 channels)",
            channels_last=True,
        ),
        _mini(
            "mini/vit_small",
            _fm_arch(
                "timm:vit_small_patch16_224", img_size=28, patch_size=7, embed_dim=24, depth=3, num_heads=3
            ),
            IN,
            "ViT-Small analogue: timm ViT, 7x7 patches, width 24",
        ),
        _mini(
            "mini/resnet50",
            {
                "name": "resnet50_gn",
                "kwargs": {
                    "in_chans": 1,
                    "num_classes": 10,
                    "gn_groups": 4,
                    "layers": [1, 1, 1, 1],
                    "channels": [4, 8, 16, 24],
                    "stem_width": 4,
                    "stem_type": "deep",
                },
            },
            IN,
            "ResNet-50 analogue: timm resnet50_gn (Bottleneck, GroupNorm with 4 groups) as the paper's "
            "code, narrow deep stem",
            channels_last=True,
        ),
        _mini(
            "mini/vit_base",
            _fm_arch(
                "timm:vit_base_patch16_224", img_size=28, patch_size=7, embed_dim=32, depth=3, num_heads=4
            ),
            IN,
            "ViT-Base analogue: timm ViT, 7x7 patches, width 32",
        ),
        _mini(
            "mini/convnext_large",
            _fm_arch(
                "timm:convnext_large",
                depths=[1, 1, 2, 1],
                dims=[8, 16, 32, 56],
                patch_size=4,
                output_stride=16,
                kernel_sizes=[5, 3, 3, 3],
            ),
            IN,
            "ConvNeXt-Large analogue: timm convnext_large (linear-MLP blocks), 4 stages",
            channels_last=True,
        ),
        # ---- paper Tab. 8 analogues (CIFAR-10 -> Fashion-MNIST); ResNet-18 / ViT-Base reuse mini/resnet18
        #      and mini/vit_base. Ordering kept: CNN(s) 2.5k < CNN(m) 10.6k < MobileNetV3 14.0k
        #      < ResNet-18 18.1k < ViT-B 40.7k.
        _mini(
            "mini/cnn_s",
            _fm_arch("cnn_s"),
            C10,
            "CNN(s): exact paper layer shapes with 1 input channel (2,464 params; 2,864 with RGB)",
            channels_last=True,
        ),
        _mini(
            "mini/cnn_m",
            _fm_arch("cnn_m"),
            C10,
            "CNN(m): exact paper layer shapes at 32x32 (Fashion-MNIST resized), 1 input channel",
            dataset={"name": "fashion_mnist", "image_size": 32},
            channels_last=True,
        ),
        _mini(
            "mini/mobilenetv3",
            _fm_arch(
                "mobilenetv3_custom",
                stem_size=8,
                num_features=48,
                arch_def=[
                    ["ds_r1_k3_s1_e1_c8_nre"],
                    ["ir_r1_k3_s2_e3_c12_nre"],
                    ["ir_r1_k3_s2_e3_c16_se0.25"],
                    ["ir_r1_k3_s2_e3_c24_se0.25"],
                    ["cn_r1_k1_s1_c48"],
                ],
            ),
            C10,
            "MobileNetV3 analogue: timm MobileNetV3 blocks (inverted residuals, SE, hard-swish)",
            channels_last=True,
        ),
    ]
    # ---- §4 / Tab. 15 analogues: the two conditional studies on Fashion-MNIST (binary-head ViT)
    vit_bin = {
        "name": "vit_tiny_binary",
        "kwargs": {
            "in_chans": 1,
            "img_size": 28,
            "patch_size": 7,
            "embed_dim": 16,
            "depth": 3,
            "num_heads": 2,
        },
    }
    seeds = _mini(
        "mini/vit_tiny_seeds",
        _fm_arch("timm:vit_tiny_patch16_224", img_size=28, patch_size=7, embed_dim=16, depth=3, num_heads=2),
        C10,
        "permutation-state study: ViT-Tiny analogue from scratch, 5 consecutive-iteration "
        "checkpoints per seed",
        kind="seeds",
        num_seeds=3,
    )
    seeds.num_checkpoints, seeds.save.every = 5, 1
    tasks = _mini(
        "mini/vit_tiny_tasks",
        vit_bin,
        C10,
        "unseen-task study: binary relabellings of the 10 classes, two-layer head ViT, 3 checkpoints "
        "per task; the paper's 20 unseen ids held out",
        kind="tasks",
        epochs=1,
        num_seen_tasks=20,
        loss="focal",
    )
    tasks.num_checkpoints, tasks.save.every = 3, 1
    z += [seeds, tasks]
    return {c.name: c for c in z}


def _paper_zoos() -> dict[str, ZooConfig]:
    out: list[ZooConfig] = []

    # ---- Tab. 1: fine-tune released timm weights for one pass at a constant LR (reference §7.2)
    def imagenet(
        tag: str,
        model: str,
        batch: int,
        lr: float,
        norm: str,
        seed: int = 20,
        phases: list[PhaseConfig] | None = None,
        state_every: int = 1,
    ) -> ZooConfig:
        return ZooConfig(
            name=f"paper/imagenet_{tag}",
            description=f"paper Tab. 1: timm {model} fine-tuned on ImageNet-1K, 50 "
            f"checkpoints over one epoch "
            f"at constant lr {lr:g} (AdamW wd 0.1, bf16, RandAugment)",
            architecture={"name": f"timm:{model}", "kwargs": {}},
            dataset={
                "name": "imagenet",
                "image_size": 224,
                "normalize": norm,
                "augment": "imagenet_randaugment",
            },
            substitute_for=None,
            seed=seed,
            num_checkpoints=50,
            batch_size=batch,
            eval_batch_size=256,
            phases=phases or [],
            save=SaveConfig(lr=lr, optimizer="adamw", weight_decay=0.1, every=0),
            amp="bf16",
            pretrained_required=True,
            state_every=state_every,
        )

    out += [
        imagenet("resnet18", "resnet18", 500, 1e-5, "imagenet"),
        imagenet("resnet50", "resnet50_gn", 200, 1e-6, "imagenet", seed=21),  # GroupNorm variant, as the code
        imagenet("vit_tiny", "vit_tiny_patch16_224", 50, 1e-5, "half"),
        imagenet("vit_small", "vit_small_patch16_224", 200, 1e-6, "half"),
        imagenet("vit_base", "vit_base_patch16_224", 100, 3e-6, "half", state_every=5),
        imagenet("convnext_atto", "convnext_atto", 256, 1e-6, "imagenet"),
        imagenet(
            "convnext_large",
            "convnext_large",
            256,
            3e-5,
            "imagenet",
            state_every=10,
            phases=[PhaseConfig(epochs=1, lr=3e-5, optimizer="adamw", weight_decay=0.1)],
        ),
    ]

    # ---- Tab. 8: CIFAR-10 zoos (reference §7.3)
    def cifar_cnn(tag: str, arch: str, wd: float, size: int) -> ZooConfig:
        return ZooConfig(
            name=f"paper/cifar10_{tag}",
            description=f"paper Tab. 8: {arch} trained 50 epochs on CIFAR-10 (SGD, cosine to 1e-5), then 50 "
            "checkpoints two iterations apart",
            architecture={"name": arch, "kwargs": {"in_chans": 3, "num_classes": 10}},
            dataset={
                "name": "cifar10",
                "image_size": size,
                "normalize": "imagenet",
                "augment": "cifar_autoaugment",
            },
            seed=20,
            num_checkpoints=50,
            batch_size=500,
            eval_batch_size=1000,
            phases=[
                PhaseConfig(epochs=50, lr=1e-2, lr_end=1e-5, optimizer="sgd", weight_decay=wd, momentum=0.9)
            ],
            save=SaveConfig(lr=1e-5, optimizer="sgd", weight_decay=wd, momentum=0.9, every=0),
            amp="bf16",
        )

    out += [cifar_cnn("cnn_s", "cnn_s", 1e-3, 32), cifar_cnn("cnn_m", "cnn_m", 6.66e-3, 32)]
    out.append(
        ZooConfig(
            name="paper/cifar10_resnet18",
            description="paper Tab. 8: ImageNet-pretrained timm resnet18 (fc -> 10) "
            "trained 50 epochs on CIFAR-10 "
            "at 64 px (AdamW 3e-3, cosine to 1e-5), then 50 checkpoints two iterations apart",
            architecture={"name": "timm:resnet18", "kwargs": {"num_classes": 10}},
            dataset={
                "name": "cifar10",
                "image_size": 64,
                "normalize": "imagenet",
                "augment": "cifar_autoaugment",
            },
            seed=20,
            num_checkpoints=50,
            batch_size=500,
            eval_batch_size=1000,
            phases=[PhaseConfig(epochs=50, lr=3e-3, lr_end=1e-5, optimizer="adamw", weight_decay=0.1)],
            save=SaveConfig(lr=1e-5, optimizer="adamw", weight_decay=0.1, every=2),
            amp="bf16",
            pretrained_required=True,
        )
    )
    out.append(
        ZooConfig(
            name="paper/cifar10_mobilenetv3",
            description="paper Tab. 8: ImageNet-pretrained timm "
            "mobilenetv3_large_100 (classifier -> 10), BN affine "
            "frozen; 1 head-only epoch, 5 full epochs (cosine to 1e-6), then 50 checkpoints at 1e-6",
            architecture={"name": "timm:mobilenetv3_large_100", "kwargs": {"num_classes": 10}},
            dataset={
                "name": "cifar10",
                "image_size": 224,
                "normalize": "imagenet",
                "augment": "cifar_autoaugment",
            },
            seed=20,
            num_checkpoints=50,
            batch_size=300,
            eval_batch_size=500,
            phases=[
                PhaseConfig(epochs=1, lr=0.05, optimizer="adamw", weight_decay=0.01, trainable="head"),
                PhaseConfig(epochs=5, lr=3e-3, lr_end=1e-6, optimizer="adamw", weight_decay=0.1),
            ],
            save=SaveConfig(lr=1e-6, optimizer="adamw", weight_decay=0.1, every=0),
            amp="bf16",
            freeze=["bn"],
            pretrained_required=True,
        )
    )
    out.append(
        ZooConfig(
            name="paper/cifar10_vit_base",
            description="paper Tab. 8: ImageNet-pretrained timm vit_base_patch16_224 "
            "(head -> 10) at 224 px; 3 "
            "head-only epochs (lr 0.05), 7 full epochs (3e-5 cosine to 1e-5), then 50 checkpoints",
            architecture={"name": "timm:vit_base_patch16_224", "kwargs": {"num_classes": 10}},
            dataset={
                "name": "cifar10",
                "image_size": 224,
                "normalize": "imagenet",
                "augment": "cifar_autoaugment",
            },
            seed=20,
            num_checkpoints=50,
            batch_size=128,
            eval_batch_size=500,
            phases=[
                PhaseConfig(epochs=3, lr=0.05, optimizer="adamw", weight_decay=0.01, trainable="head"),
                PhaseConfig(epochs=7, lr=3e-5, lr_end=1e-5, optimizer="adamw", weight_decay=0.1),
            ],
            save=SaveConfig(lr=1e-5, optimizer="adamw", weight_decay=0.1, every=0),
            amp="bf16",
            state_every=5,
            pretrained_required=True,
        )
    )

    # ---- Tab. 15: permutation study, ViT-Tiny from scratch, 5 checkpoints per seed (reference §7.4)
    out.append(
        ZooConfig(
            name="paper/cifar10_vit_tiny_seeds",
            description="paper Tab. 15: timm vit_tiny_patch16_224 from scratch on "
            "CIFAR-10 at 224 px, 200 epochs "
            "(AdamW 5e-3 cosine to 2e-5), then 5 checkpoints one iteration apart, for each of 20 seeds",
            architecture={"name": "timm:vit_tiny_patch16_224", "kwargs": {"num_classes": 10}},
            dataset={
                "name": "cifar10",
                "image_size": 224,
                "normalize": "imagenet",
                "augment": "cifar_pad_autoaugment",
            },
            kind="seeds",
            num_seeds=20,
            seed=0,
            num_checkpoints=5,
            batch_size=250,
            eval_batch_size=500,
            phases=[PhaseConfig(epochs=200, lr=5e-3, lr_end=2e-5, optimizer="adamw", weight_decay=0.1)],
            save=SaveConfig(lr=2e-5, optimizer="adamw", weight_decay=0.1, every=1),
            amp="bf16",
        )
    )

    # ---- §4: unseen tasks, 1022 binary ViT-Tiny classifiers, 3 checkpoints each (reference §7.5)
    out.append(
        ZooConfig(
            name="paper/cifar10_vit_tiny_tasks",
            description="paper §4 / Tab. 9, 14: ImageNet-pretrained ViT-Tiny with "
            "the two-layer binary head, one per "
            "binary relabelling of CIFAR-10 (2 head-only epochs at 1e-2, 13 full epochs 1e-4 cosine to "
            "2e-5, focal loss), 3 checkpoints per task; the 20 unseen ids in their own folder",
            architecture={"name": "vit_tiny_binary", "kwargs": {"num_classes": 2}},
            dataset={
                "name": "cifar10",
                "image_size": 224,
                "normalize": "imagenet",
                "augment": "cifar_autoaugment",
            },
            kind="tasks",
            seed=0,
            num_checkpoints=3,
            batch_size=500,
            eval_batch_size=500,
            loss="focal",
            phases=[
                PhaseConfig(epochs=2, lr=1e-2, optimizer="adamw", weight_decay=0.0, trainable="head"),
                PhaseConfig(epochs=13, lr=1e-4, lr_end=2e-5, optimizer="adamw", weight_decay=0.1),
            ],
            save=SaveConfig(lr=2e-5, optimizer="adamw", weight_decay=0.1, every=1),
            amp="bf16",
            pretrained_required=True,
        )
    )
    return {c.name: c for c in out}


ZOOS: dict[str, ZooConfig] = {**_mini_zoos(), **_paper_zoos()}


def get_zoo(name: str) -> ZooConfig:
    """A fresh copy of a registry entry (edits never leak into the registry)."""
    if name not in ZOOS:
        raise RPGInputError(f"--zoo {name}: unknown zoo (known: {', '.join(ZOOS)})")
    return copy.deepcopy(ZOOS[name])
