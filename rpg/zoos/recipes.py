"""The zoo registry: every checkpoint collection of the paper (and its mini-scale analogue) is a config entry.

A zoo = one architecture trained (or fine-tuned) on one dataset, then N checkpoints saved at a fixed
iteration spacing during a final constant-learning-rate pass (official dataset/<tag>/train.py). `ZooConfig` (the typed
schema) holds the whole recipe. Recipes are data: the registry name `mini/resnet18` is the file
`rpg/zoos/recipes/mini/resnet18.yaml`, which states only its differences from the family base it
`extends:` (`_base/mini_fmnist`, `_base/paper_imagenet`, `_base/paper_cifar10`; mappings merge key by key,
lists and scalars replace). `load_recipe` resolves the chain and validates (an unknown key is an error naming
the file and the key); `recipe_files(name)` lists the files a zoo depends on (the collect rule's inputs);
`get_zoo` also takes a path to a .yaml file. `ZOOS` maps every registry name to its config:

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
its dotted path (list items by index) with the one typed loader of rpg.configs (values parsed against the
field's declared type), and the result is re-validated (unknown keys are errors).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rpg import configs
from rpg.domains import DEFAULT_DOMAIN, recipe_class
from rpg.errors import RPGInputError
from rpg.zoos.architectures import check_spec
from rpg.zoos.datasets import DATA_KEYS, DatasetSpec

# --------------------------------------------------------------------------------------------------
# binary tasks (paper §4.1, official dataset/condition_classinput_vittiny)
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
    # None: `epochs` passes over the training set; n: exactly n iterations instead (the lr schedule spans them),
    # for fine-tuning phases shorter than an epoch (the mini task zoo fine-tunes ~1,000 tasks)
    iterations: int | None = None

    def __post_init__(self) -> None:
        _check_opt(self, "phases")
        if self.epochs < 0:
            raise RPGInputError("phases.epochs: must be >= 0")
        if self.iterations is not None and self.iterations < 1:
            raise RPGInputError("phases.iterations: must be >= 1 (or null: whole epochs)")


@dataclass
class SaveConfig:
    """The final constant-learning-rate pass during which the checkpoints are written."""

    lr: float = 1e-5
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    momentum: float = 0.9
    trainable: str = "all"
    # iterations between two checkpoints; 0 = auto: max(1, n_train // batch_size // num_checkpoints), so the
    # checkpoints spread over one epoch (official dataset/<tag>/train.py). The first checkpoint follows the first step.
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

    # the free-form `dataset` mapping follows DatasetSpec (typed --set dataset.KEY=VALUE, rpg.configs)
    __field_schemas__ = {"dataset": DatasetSpec}

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
    include_tasks: list[int] = field(default_factory=list)  # tasks zoo: seen tasks always in a drawn subset
    # phases run ONCE on the dataset's own classes before every unit (kind tasks: the 10-class problem); their
    # weights (OUT/pretrain.safetensors) start every unit, as `pretrained` does. Empty: none
    pretrain: list[PhaseConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.phases = [
            p if isinstance(p, PhaseConfig) else _from_dict(PhaseConfig, p, "phases") for p in self.phases
        ]
        self.pretrain = [
            p if isinstance(p, PhaseConfig) else _from_dict(PhaseConfig, p, "pretrain") for p in self.pretrain
        ]
        if self.pretrain and self.pretrained:
            raise RPGInputError("pretrain: give either pretrain phases or pretrained weights, not both")
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
        for n in self.include_tasks:
            check_task_id(n)
            if n in self.unseen_tasks:
                raise RPGInputError(f"include_tasks: task {n} is an unseen task")
        if self.num_seen_tasks is not None and len(set(self.include_tasks)) > self.num_seen_tasks:
            raise RPGInputError("include_tasks: more tasks than num_seen_tasks")
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

    def override(self, overrides: dict[str, Any]) -> ZooConfig:
        """A new, re-validated config with dotted-path `--set` overrides applied (`apply_overrides`)."""
        return apply_overrides(self, overrides)

    def input_files(self) -> list[Path]:
        """Files besides the recipe YAML that the zoo is built from (collect rule inputs): none."""
        return []

    # -- collection (the same two methods on every domain's recipe class; `rpg collect` calls only these) --------
    def collect(self, out: str | Path, data_cfg=None, device: str = "auto", progress: bool | None = None,
                log=print) -> list[Path]:
        """Collect (or resume) this zoo into `out` (rpg.zoos.collection); returns the zoo folder(s) written."""
        from rpg.zoos.collection import collect

        return collect(self, out, data_cfg, device, progress, log)

    @staticmethod
    def score_summary(manifest: dict) -> str:
        """The checkpoints' recorded test accuracy, for the line `rpg collect` prints per zoo folder."""
        accs = [c["accuracy"] for c in manifest["checkpoints"] if c["accuracy"] is not None]
        if not accs:
            return ""
        mean = sum(accs) / len(accs)
        return f", test accuracy {100 * mean:.2f}% (min {100 * min(accs):.2f}, max {100 * max(accs):.2f})"

    # -- tasks ------------------------------------------------------------------------------------
    def seen_tasks(self) -> list[int]:
        """Seen task ids in collection order (ascending). A subset is drawn with task_sample_seed: the
        `include_tasks`, then a prefix of one fixed shuffle of the others."""
        pool = [n for n in range(1, NUM_TASKS + 1) if n not in set(self.unseen_tasks)]
        if self.num_seen_tasks is not None and self.num_seen_tasks < len(pool):
            # a prefix of one fixed shuffle: raising num_seen_tasks later only adds tasks
            random.Random(self.task_sample_seed).shuffle(pool)
            keep = set(self.include_tasks)
            rest = [n for n in pool if n not in keep]
            pool = sorted(keep | set(rest[: self.num_seen_tasks - len(keep)]))
        return pool


def _from_dict(cls: type, d: Any, where: str):
    return configs.from_dict(cls, d, "" if where == "zoo" else where)


def apply_overrides(cfg: ZooConfig, overrides: dict[str, Any]) -> ZooConfig:
    """Return a new config with dotted-path overrides applied (rpg.configs: text is parsed against the field's
    declared type; `architecture.kwargs.*` and `dataset.*` may add keys), re-validated."""
    return ZooConfig.from_dict(configs.apply_overrides(ZooConfig, cfg.to_dict(), overrides))


# --------------------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------------------

RECIPE_DIR = Path(__file__).with_name("recipes")  # package data: <registry name>.yaml, shared bases in _base/
EXTENDS = configs.EXTENDS
DOMAIN = "domain"   # a recipe's domain (rpg.domains.DOMAINS; default classification) picks its config class


def _is_path(name: str | Path) -> bool:
    return str(name).endswith((".yaml", ".yml"))


def recipe_path(name: str | Path) -> Path:
    """Registry name (`mini/resnet18`) -> its YAML file; a path to a .yaml/.yml file is taken as it is."""
    if _is_path(name):
        path = Path(name)
        if not path.is_file():
            raise RPGInputError(f"--zoo {name}: no such recipe file")
        return path
    path = RECIPE_DIR / f"{name}.yaml"
    if str(name).startswith("_base/") or not path.is_file():
        raise RPGInputError(f"--zoo {name}: unknown zoo (known: {', '.join(registry_names())})")
    return path


def _read(path: Path, known: set[str] | None = None) -> dict:
    """A recipe file's mapping. `known`: the keys it may hold (None: unchecked, for reading `extends`/`domain`
    before the domain, and so the config class, is known)."""
    d = configs.load_yaml(path)
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise RPGInputError(f"{path}: a recipe is a mapping of ZooConfig keys, got {type(d).__name__}")
    for key in d:
        if known is not None and key not in known:
            raise RPGInputError(f"{path}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    return d


def _parent(path: Path) -> Path | None:
    """The file `path` extends (None: none): `extends:` is a registry-style name under RECIPE_DIR
    (`_base/mini_fmnist`) or a .yaml path relative to the extending file."""
    ref = _read(path).get(EXTENDS)
    if ref is None:
        return None
    if not isinstance(ref, str) or not ref:
        raise RPGInputError(f"{path}: {EXTENDS}: expected a recipe name or a .yaml path, got {ref!r}")
    target = (path.parent / ref) if _is_path(ref) else RECIPE_DIR / f"{ref}.yaml"
    if not target.is_file():
        raise RPGInputError(f"{path}: {EXTENDS}: {ref!r} does not exist ({target})")
    return target


def recipe_files(name: str | Path) -> list[Path]:
    """The recipe's YAML file followed by every file it extends (the collect rule's inputs), then any other file its
    domain's config class says the zoo is built from (`input_files()`, e.g. a segmentation zoo's mmseg config)."""
    files = _chain(name)
    if any(_read(f).get(DOMAIN) not in (None, DEFAULT_DOMAIN) for f in files):
        cfg = load_recipe(name)
        files += cfg.input_files()
    return files


def _chain(name: str | Path) -> list[Path]:
    """The recipe's YAML file followed by every file it extends."""
    # files are compared resolved: a cycle is found however its files are named
    return configs.extends_chain(recipe_path(name), _parent,
                                 lambda files, _: f"{files[-1]}: {EXTENDS}: "
                                                  f"{_read(files[-1]).get(EXTENDS)!r} makes a cycle",
                                 key=Path.resolve)


def load_recipe(name: str | Path):
    """Read a recipe: resolve its `extends:` chain (base first), then build and validate the config of its domain
    (ZooConfig for classification). Errors name the file and the key. `name` defaults to the registry name (or the
    file's stem)."""
    files = _chain(name)
    domains = [dom for f in files if (dom := _read(f).get(DOMAIN)) is not None]
    cls = recipe_class(domains[0] if domains else DEFAULT_DOMAIN, files[0])
    known = {f.name for f in dataclasses.fields(cls)} | {EXTENDS, DOMAIN}
    d = configs.merge_chain([{k: v for k, v in _read(f, known).items() if k != DOMAIN} for f in files])
    d.setdefault("name", Path(name).stem if _is_path(name) else str(name))
    try:
        return cls.from_dict(d)
    except RPGInputError as e:
        raise RPGInputError(f"{files[0]}: {e}") from None


def registry_names() -> list[str]:
    """Every registry entry: the YAML files under RECIPE_DIR except the shared bases."""
    return sorted(
        p.relative_to(RECIPE_DIR).with_suffix("").as_posix()
        for p in RECIPE_DIR.rglob("*.yaml")
        if not p.relative_to(RECIPE_DIR).as_posix().startswith("_base/")
    )


class _Registry(dict):
    """ZOOS: registry name -> ZooConfig, read from the YAML files on first use."""

    def _fill(self) -> None:
        if not dict.__len__(self):
            for n in registry_names():
                dict.__setitem__(self, n, load_recipe(n))

    def __getitem__(self, k):
        self._fill()
        return dict.__getitem__(self, k)

    def __contains__(self, k):
        self._fill()
        return dict.__contains__(self, k)

    def __iter__(self):
        self._fill()
        return dict.__iter__(self)

    def __len__(self):
        self._fill()
        return dict.__len__(self)

    def items(self):
        self._fill()
        return dict.items(self)

    def keys(self):
        self._fill()
        return dict.keys(self)

    def values(self):
        self._fill()
        return dict.values(self)


ZOOS: dict[str, ZooConfig] = _Registry()


def get_zoo(name: str | Path) -> ZooConfig:
    """A fresh config of a registry entry (`mini/resnet18`) or of a recipe file (`path/to/zoo.yaml`)."""
    return load_recipe(name)


def recipe_overrides(overrides: list[str] | None) -> dict[str, str]:
    """`key=value` texts -> the recipe's own overrides: the data settings (DATA_KEYS) are left out, since the workflow
    passes them to every collect job and they say where data lives, not what the zoo is (DataConfig reads them)."""
    return {k: v for k, v in configs.parse_overrides(overrides).items() if k not in DATA_KEYS}


def resolve_recipe(name: str | Path, overrides: list[str] | None = None):
    """The recipe `rpg collect --zoo NAME --set k=v ...` collects with, of any domain: the registry entry or recipe
    file `name` with the `key=value` overrides applied in order (a later one wins), re-validated. Its `to_dict()`
    is what the zoo's manifest records under `config` (the workflow compares the two to find a stale zoo)."""
    return get_zoo(name).override(recipe_overrides(overrides))
