"""Architectures of the checkpoint zoos, each rebuildable from a JSON spec.

`build_model({"name": ..., "kwargs": {...}})` is the single way the repo builds a target network, so a
zoo's `manifest.json` (its "architecture" entry) is enough to rebuild the model for evaluation.
A spec name is one of:

- a registry name of this module (`ARCHITECTURES`): the paper's CNN(s) and CNN(m) (Model-Zoo CNNs as
  the RPG reference trains them on CIFAR-10), the unseen-task ViT-Tiny with its two-layer head, and a
  MobileNetV3 with a configurable block list (used for the mini-scale MobileNetV3);
- `timm:<model name>`: any timm model; `kwargs` go to `timm.create_model` and override the model's
  defaults (e.g. `layers`, `channels` for ResNets; `img_size`, `patch_size`, `embed_dim`, `depth`,
  `num_heads` for ViTs; `depths`, `dims`, `patch_size` for ConvNeXt; `in_chans`, `num_classes` for all).
  timm models are always built with `pretrained=False` (there is no hub access); pre-trained weights
  come from a local file (`build_model(spec, weights=path)`);
- `<python.module>:<function>`: a user factory, called as `function(**kwargs)`, returning an nn.Module.

The paper's ResNet-50 is timm `resnet50_gn` (GroupNorm), exactly as the official code does; see
`rpg.zoos.recipes` for the entries that use it.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rpg.errors import RPGInputError

# --------------------------------------------------------------------------------------------------
# The paper's small CNNs (p-diff paper, Tab. 8 CNN(s)/CNN(m); RPG's dataset/cifar10_cnn{small,medium}/model.py)
# --------------------------------------------------------------------------------------------------


class CNNSmall(nn.Module):
    """CNN(s): 2,864 parameters for RGB input (2,464 for grayscale).

    Layer order is conv -> max-pool -> activation (pool BEFORE the nonlinearity), LeakyReLU, as in RPG.
    Like RPG, the network resizes its input to 28x28 inside `forward` (bilinear), so it accepts the
    native 32x32 CIFAR images (or anything else).
    """

    def __init__(self, in_chans: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 8, 5)  # 28 -> 24, pool -> 12
        self.conv2 = nn.Conv2d(8, 6, 5)  # 12 -> 8,  pool -> 4
        self.conv3 = nn.Conv2d(6, 4, 2)  # 4 -> 3
        self.fc1 = nn.Linear(4 * 3 * 3, 20)
        self.fc2 = nn.Linear(20, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (28, 28):
            x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
        x = F.leaky_relu(F.max_pool2d(self.conv1(x), 2))
        x = F.leaky_relu(F.max_pool2d(self.conv2(x), 2))
        x = F.leaky_relu(self.conv3(x))
        x = x.flatten(1)  # (B, 36)
        x = F.leaky_relu(self.fc1(x))
        return self.fc2(x)

    def get_classifier(self) -> nn.Module:
        return self.fc2


class CNNMedium(nn.Module):
    """CNN(m): 10,853 parameters for RGB 32x32 input (Model Zoos "CNN-l", RPG "cnnmedium").

    conv -> max-pool -> LeakyReLU three times, then Linear(60, 20) -> LeakyReLU -> Linear(20, classes).
    The input must be 32x32 (15 channels x 2 x 2 = 60 features reach the first linear layer).
    """

    def __init__(self, in_chans: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 16, 3)  # 32 -> 30, pool -> 15
        self.conv2 = nn.Conv2d(16, 32, 3)  # 15 -> 13, pool -> 6
        self.conv3 = nn.Conv2d(32, 15, 3)  # 6 -> 4,   pool -> 2
        self.fc1 = nn.Linear(15 * 2 * 2, 20)
        self.fc2 = nn.Linear(20, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(F.max_pool2d(self.conv1(x), 2))
        x = F.leaky_relu(F.max_pool2d(self.conv2(x), 2))
        x = F.leaky_relu(F.max_pool2d(self.conv3(x), 2))
        x = x.flatten(1)  # (B, 60) for 32x32 input
        x = F.leaky_relu(self.fc1(x))
        return self.fc2(x)

    def get_classifier(self) -> nn.Module:
        return self.fc2


def _timm():
    try:
        import timm
    except ImportError:
        raise RPGInputError("architecture: timm is not installed (pip install timm torchvision)") from None
    return timm


def _create_timm(model_name: str, **kwargs: Any) -> nn.Module:
    timm = _timm()
    if not timm.is_model(model_name):
        raise RPGInputError(f"architecture.name: timm:{model_name} is not a timm model name")
    if kwargs.pop("pretrained", False):
        raise RPGInputError(
            "architecture.kwargs.pretrained: not supported (no hub access); "
            "configure a local weights file instead"
        )
    # timm's factories accept JSON lists where they expect tuples, but be explicit for the shape args.
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    try:
        return timm.create_model(model_name, pretrained=False, **kw)
    except TypeError as e:
        raise RPGInputError(
            f"architecture.kwargs: timm:{model_name} rejected the keyword arguments {sorted(kwargs)} ({e})"
        ) from None


class _BinaryHead(nn.Sequential):
    """The unseen-task classifier head: Linear(D, D) -> SiLU -> Linear(D, 2, bias=False) (official
    dataset/condition_classinput_vittiny)."""

    def __init__(self, dim: int, num_classes: int = 2):
        super().__init__(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, num_classes, bias=False))


def vit_tiny_binary(**kwargs: Any) -> nn.Module:
    """timm `vit_tiny_patch16_224` whose head is Linear(192,192) -> SiLU -> Linear(192,2,bias=False).

    This is the ViT-Tiny of the unseen-task study (37,440 head parameters at embed_dim 192; the paper
    states 38,976). kwargs override the timm ViT defaults (img_size, patch_size, embed_dim, depth,
    num_heads, in_chans), which the mini-scale task zoo uses to shrink it.
    """
    num_classes = kwargs.pop("num_classes", 2)
    model = _create_timm("vit_tiny_patch16_224", num_classes=num_classes, **kwargs)
    model.head = _BinaryHead(model.embed_dim, num_classes)
    return model


def mobilenetv3_custom(
    arch_def: list[list[str]],
    stem_size: int = 16,
    num_features: int = 1280,
    in_chans: int = 3,
    num_classes: int = 1000,
    act: str = "hard_swish",
    **kwargs: Any,
) -> nn.Module:
    """timm MobileNetV3 with a JSON-describable block list (timm's arch-string notation, e.g.
    "ir_r1_k3_s2_e4_c24_se0.25"); SE gates, activations and BN as in timm's mobilenetv3_large."""
    _timm()
    from functools import partial

    from timm.layers import get_act_layer
    from timm.models._efficientnet_blocks import SqueezeExcite
    from timm.models._efficientnet_builder import decode_arch_def, round_channels
    from timm.models.mobilenetv3 import MobileNetV3

    if not (isinstance(arch_def, list) and all(isinstance(s, list) and s for s in arch_def)):
        raise RPGInputError(
            "architecture.kwargs.arch_def: expected a list of stages, each a list of block strings"
        )
    se_layer = partial(
        SqueezeExcite, gate_layer="hard_sigmoid", force_act_layer=nn.ReLU, rd_round_fn=round_channels
    )
    try:
        block_args = decode_arch_def(arch_def)
    except Exception as e:  # timm raises assertion/key errors for malformed strings
        raise RPGInputError(
            f"architecture.kwargs.arch_def: cannot decode ({type(e).__name__}: {e})"
        ) from None
    return MobileNetV3(
        block_args=block_args,
        num_classes=num_classes,
        in_chans=in_chans,
        stem_size=stem_size,
        num_features=num_features,
        act_layer=get_act_layer(act),
        se_layer=se_layer,
        **kwargs,
    )


def resnet50_gn(gn_groups: int = 32, **kwargs: Any) -> nn.Module:
    """timm `resnet50_gn` (Bottleneck blocks, GroupNorm) with a configurable number of GroupNorm groups.

    The paper's ResNet-50 is this model with the default 32 groups (the official code uses timm
    resnet50_gn, not the BatchNorm ResNet-50). Narrow mini-scale variants need fewer groups, since
    every normalized width must be divisible by `gn_groups`.
    """
    _timm()
    from functools import partial

    from timm.layers import GroupNorm

    return _create_timm("resnet50_gn", norm_layer=partial(GroupNorm, num_groups=gn_groups), **kwargs)


# name -> (factory, one-line description)
ARCHITECTURES: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "cnn_s": (
        CNNSmall,
        "paper CNN(s): Model-Zoo CNN-s, LeakyReLU, resizes to 28x28 inside forward (2,864 params RGB)",
    ),
    "cnn_m": (CNNMedium, "paper CNN(m): Model-Zoo CNN-l at 32x32, LeakyReLU (10,853 params RGB)"),
    "vit_tiny_binary": (
        vit_tiny_binary,
        "timm vit_tiny_patch16_224 with the two-layer binary head (official dataset/condition_classinput_vittiny)",
    ),
    "resnet50_gn": (
        resnet50_gn,
        "timm resnet50_gn (GroupNorm ResNet-50, as the official code) with gn_groups",
    ),
    "mobilenetv3_custom": (mobilenetv3_custom, "timm MobileNetV3 from a JSON block list (arch_def strings)"),
}


def _resolve_factory(name: str) -> Callable[..., nn.Module]:
    if name in ARCHITECTURES:
        return ARCHITECTURES[name][0]
    if name.startswith("timm:"):
        model_name = name[len("timm:") :]
        return lambda **kw: _create_timm(model_name, **kw)
    if ":" in name:
        module_name, func_name = name.split(":", 1)
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise RPGInputError(f"architecture.name: cannot import module {module_name!r} ({e})") from None
        fn = getattr(module, func_name, None)
        if not callable(fn):
            raise RPGInputError(f"architecture.name: {module_name!r} has no callable {func_name!r}")
        return fn
    raise RPGInputError(
        f"architecture.name: unknown architecture {name!r} (registry: "
        f"{', '.join(ARCHITECTURES)}; or timm:<model>; or module:function)"
    )


def check_spec(spec: Any) -> dict:
    """Validate an architecture spec and return a normalized deep copy {"name", "kwargs"}."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise RPGInputError('architecture: expected {"name": ..., "kwargs": {...}}')
    unknown = set(spec) - {"name", "kwargs"}
    if unknown:
        raise RPGInputError(f"architecture: unknown keys {sorted(unknown)}")
    if not isinstance(spec["name"], str) or not spec["name"]:
        raise RPGInputError("architecture.name: must be a non-empty string")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise RPGInputError("architecture.kwargs: must be a mapping")
    try:
        json.dumps(kwargs)
    except TypeError:
        raise RPGInputError(
            "architecture.kwargs: must be JSON-serializable (it is stored in manifest.json)"
        ) from None
    return {"name": spec["name"], "kwargs": copy.deepcopy(kwargs)}


def build_model(spec: dict, weights: str | Path | None = None) -> nn.Module:
    """Build the network described by `spec` (see the module docstring), in eval mode on the CPU.

    `weights`: optional local file of pre-trained weights (e.g. a timm checkpoint re-saved as
    safetensors). Keys whose name and shape match are loaded; the rest (typically a classifier head of
    another size) keep their fresh initialization. Fewer than half the tensors matching is an error:
    that is a file for another architecture.
    """
    spec = check_spec(spec)
    factory = _resolve_factory(spec["name"])
    try:
        model = factory(**spec["kwargs"])
    except RPGInputError:
        raise
    except TypeError as e:
        raise RPGInputError(
            f"architecture.kwargs: {spec['name']} rejected {sorted(spec['kwargs'])} ({e})"
        ) from None
    if not isinstance(model, nn.Module):
        raise RPGInputError(
            f"architecture.name: {spec['name']} returned {type(model).__name__}, not an nn.Module"
        )
    if weights is not None:
        load_matching(model, weights)
    return model.eval()


def load_matching(model: nn.Module, path: str | Path | dict[str, torch.Tensor]) -> list[str]:
    """Load every tensor of `path` (a weights file or a state_dict) whose key and shape match `model`;
    return the keys left at their initialization (e.g. a classifier head of another size)."""
    from rpg.io import load_state_dict

    src = path if isinstance(path, dict) else load_state_dict(path)
    path = "pre-trained weights" if isinstance(path, dict) else path
    own = model.state_dict()
    matched = {k: v for k, v in src.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if len(matched) < len(own) / 2:
        raise RPGInputError(
            f"{path}: only {len(matched)} of {len(own)} tensors match this architecture (wrong weights file?)"
        )
    model.load_state_dict(matched, strict=False)
    return sorted(set(own) - set(matched))


# registry entries built on a timm model: which timm weights fit them (pretrained=timm-hub)
TIMM_BASES = {"vit_tiny_binary": "vit_tiny_patch16_224"}


def timm_hub_state_dict(spec: dict) -> dict[str, torch.Tensor]:
    """Released timm weights for `spec`, downloaded by timm from its hub. Only used when the user sets
    `pretrained=timm-hub` explicitly; the classifier head keeps timm's default size (it is dropped by
    `load_matching` when the zoo's head differs)."""
    spec = check_spec(spec)
    name = spec["name"]
    base = name[len("timm:") :] if name.startswith("timm:") else TIMM_BASES.get(name)
    if base is None:
        raise RPGInputError(f"pretrained: timm-hub only works for timm:<model> architectures, not {name!r}")
    kw = {k: v for k, v in spec["kwargs"].items() if k != "num_classes"}
    timm = _timm()
    try:
        model = timm.create_model(base, pretrained=True, **kw)
    except Exception as e:  # network / hub errors of every kind
        raise RPGInputError(
            f"pretrained: timm could not fetch weights for {base} ({type(e).__name__}: {e}); "
            "set pretrained=/path/to/local/weights.safetensors instead"
        ) from None
    return model.state_dict()


def load_weights_strict(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """`model.load_state_dict(sd, strict=True)` with a one-line error naming the file and the first
    missing / unexpected / mis-shaped key (weights of another architecture)."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shape = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shape:
        parts = []
        if shape:  # first: a shape mismatch says more than key names (another width, another class count)
            k = shape[0]
            parts.append(
                f"{len(shape)} shape mismatches (first: {k!r} {tuple(sd[k].shape)} vs {tuple(own[k].shape)})"
            )
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[0]!r})")
        raise RPGInputError(f"{source}: weights do not fit the architecture: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)


def count_params(model_or_sd: nn.Module | dict[str, torch.Tensor]) -> int:
    """Total numel of the floating-point tensors of a state_dict (what RPG generates, incl. BN stats)."""
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else model_or_sd
    return int(sum(v.numel() for v in sd.values() if v.is_floating_point()))


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the classifier head: timm's `get_classifier()`, else the last nn.Linear."""
    head = None
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
    if not isinstance(head, nn.Module) or not list(head.parameters()):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise RPGInputError(f"architecture: cannot find a classifier head in {type(model).__name__}")
        head = linears[-1]
    return list(head.parameters())
