"""Configuration: one dataclass per component, validated, with the paper's size presets.

Every config round-trips through plain dicts (`to_dict` / `from_dict`); an unknown key is an error that
names the key. Defaults follow what produced the published numbers (the official code); where the paper
says otherwise, a switch selects the paper's variant (see docs/faithfulness.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpg import configs
from rpg.errors import RPGInputError


@dataclass
class TokenizerConfig:
    token_size: int = 8192           # d: values per token
    strategy: str = "layer"          # layer (RPG) | flatten (p-diff) | channel (SANE-style), paper Fig. 4
    # Tensors normalised per element around the zoo's mean instead of by per-layer constants, named by the last
    # part of their key (e.g. running_mean). Not in the paper or the official code (empty = faithful); the `mini`
    # preset centres the BatchNorm running statistics (docs/presets.md, docs/faithfulness.md).
    center: list[str] = configs.added_later(list)

    def validate(self) -> None:
        _check_choice("tokenizer.strategy", self.strategy, ("layer", "flatten", "channel"))
        _check_positive("tokenizer.token_size", self.token_size)
        if any(not isinstance(k, str) or not k or "." in k for k in self.center):
            raise RPGInputError(f"tokenizer.center={self.center!r}: expected key suffixes such as running_mean "
                                "(no dots)")


@dataclass
class ConditionConfig:
    # auto: 2d for the layer/channel tokenizers, 1d for flatten (the official flatten ablation pairs the
    # cross-layer tokens with the 1D sinusoid) | 2d (layer, token-in-layer) | 1d (flat index)
    # | learnable (init 2d) | none
    position: str = "auto"
    permutation: str = "learned"     # learned (code: nn.Embedding init 1/d_model) | onehot (paper: fixed) | none
    # none | gated (code: task term on the last k tokens) | sequence (whole seq.). A task-conditioned model has
    # no permutation state and no global bias (official ClassConditionMambaDiffusion): `permutation` is unused.
    task: str = "none"
    task_dim: int = 10               # length of the task vector (10 binary CIFAR/F-MNIST class bits)
    task_hidden: int = 1024          # d_condition of the official task encoder
    task_tokens: int = 8             # k: positions that see the task in the gated form

    def validate(self) -> None:
        _check_choice("condition.position", self.position, ("auto", "2d", "1d", "learnable", "none"))
        _check_choice("condition.permutation", self.permutation, ("learned", "onehot", "none"))
        _check_choice("condition.task", self.task, ("none", "gated", "sequence"))
        for k in ("task_dim", "task_hidden", "task_tokens"):
            _check_positive(f"condition.{k}", getattr(self, k))


@dataclass
class RecurrentConfig:
    kind: str = "mamba"              # mamba | lstm | transformer | none (per-token gated MLP, paper Tab. 4a)
    d_model: list[int] = field(default_factory=lambda: [8192, 8192])  # width of each layer (Large: 12288->16384)
    d_state: int = 128               # Mamba2 state size
    d_conv: int = 4
    expand: int = 2
    headdim: int = 64
    chunk_size: int = 128            # SSD chunk of the pure-PyTorch scan (measured best on CPU; kernel: 256)
    use_kernel: str = "auto"         # auto: mamba_ssm kernel when it imports on CUDA | never
    n_heads: int = 8                 # transformer
    ff_dim: int = 16384              # transformer feed-forward width (official: 16384)

    @property
    def num_layers(self) -> int:
        return len(self.d_model)

    def validate(self) -> None:
        _check_choice("recurrent.kind", self.kind, ("mamba", "lstm", "transformer", "none"))
        _check_choice("recurrent.use_kernel", self.use_kernel, ("auto", "never"))
        if not self.d_model:
            raise RPGInputError("recurrent.d_model: needs at least one layer width")
        for i, w in enumerate(self.d_model):
            _check_positive(f"recurrent.d_model[{i}]", w)
            if self.kind == "mamba" and (w * self.expand) % self.headdim:
                raise RPGInputError(f"recurrent.d_model[{i}]={w}: d_model*expand must be a multiple of "
                                    f"recurrent.headdim={self.headdim}")
            if self.kind == "transformer" and w % self.n_heads:
                raise RPGInputError(f"recurrent.d_model[{i}]={w}: not divisible by recurrent.n_heads={self.n_heads}")
        for k in ("d_state", "d_conv", "expand", "headdim", "chunk_size", "n_heads", "ff_dim"):
            _check_positive(f"recurrent.{k}", getattr(self, k))


@dataclass
class DenoiserConfig:
    channels: list[int] = field(default_factory=lambda: [1, 32, 64, 128, 64, 32, 1])  # paper Tab. 12
    kernel_size: int = 7
    time_embed_dim: int = 256        # sinusoid width before the time MLP

    def validate(self) -> None:
        c = self.channels
        if len(c) < 3 or c[0] != 1 or c[-1] != 1:
            raise RPGInputError(f"denoiser.channels={c}: must start and end with 1 and have >= 3 entries")
        if len(c) % 2 == 0:
            raise RPGInputError(f"denoiser.channels={c}: needs an odd length (mirror-symmetric U-Net)")
        if self.kernel_size % 2 == 0:
            raise RPGInputError(f"denoiser.kernel_size={self.kernel_size}: must be odd ('same' padding)")
        _check_positive("denoiser.time_embed_dim", self.time_embed_dim)
        if self.time_embed_dim % 2:
            raise RPGInputError("denoiser.time_embed_dim: must be even")


@dataclass
class DiffusionConfig:
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    diffusion_batch: int | None = 1024   # tokens per step for the denoiser loss (None = all); per DDP rank, as official
    sampler: str = "ddpm"                # ddpm | ddim
    sampling_steps: int = 1000           # DDPM: 1000; DDIM: 60 (Large)
    ddim_eta: float = 0.05
    ddim_offset: int = 1                 # the official DDIM grid is arange(0, T, T//steps) + 1
    mode: str = "partial"                # sequential | partial | full
    chunk_size: int = 256                # tokens per chunk in partial mode (paper default 256)

    def validate(self) -> None:
        _check_choice("diffusion.beta_schedule", self.beta_schedule, ("linear",))
        _check_choice("diffusion.sampler", self.sampler, ("ddpm", "ddim"))
        _check_choice("diffusion.mode", self.mode, ("sequential", "partial", "full"))
        _check_positive("diffusion.num_train_timesteps", self.num_train_timesteps)
        _check_positive("diffusion.sampling_steps", self.sampling_steps)
        _check_positive("diffusion.chunk_size", self.chunk_size)
        if self.diffusion_batch is not None:
            _check_positive("diffusion.diffusion_batch", self.diffusion_batch)
        if not 0 < self.beta_start < self.beta_end < 1:
            raise RPGInputError("diffusion.beta_start/beta_end: need 0 < beta_start < beta_end < 1")
        if self.sampler == "ddpm" and self.sampling_steps != self.num_train_timesteps:
            raise RPGInputError(f"diffusion.sampling_steps={self.sampling_steps}: the DDPM sampler runs all "
                                f"{self.num_train_timesteps} steps; use diffusion.sampler=ddim for fewer")
        if self.sampling_steps > self.num_train_timesteps:
            raise RPGInputError("diffusion.sampling_steps: larger than diffusion.num_train_timesteps")
        if not self.ddim_eta >= 0:   # also rejects NaN
            raise RPGInputError(f"diffusion.ddim_eta={self.ddim_eta}: must be >= 0 (0 = deterministic DDIM)")
        if not 0 <= self.ddim_offset < self.num_train_timesteps:
            raise RPGInputError(f"diffusion.ddim_offset={self.ddim_offset}: must be in "
                                f"0..{self.num_train_timesteps - 1}")


MAX_SEED = 2 ** 63   # seeds are 0 <= seed < 2**63 (torch generators take 64 bits; a DDP rank is added)


@dataclass
class TrainConfig:
    steps: int = 80000
    # GLOBAL batch (checkpoints per optimizer step summed over all DDP ranks): each of W ranks draws
    # batch_size / W, so the paper's 8 is 2 per GPU x 4 GPUs as in the official Large scripts
    batch_size: int = 8
    lr: float = 3e-5
    weight_decay: float = 0.0        # code: 0; paper Tab. 11: 1e-5
    optimizer: str = "adamw"         # adamw | adamw8bit (bitsandbytes, when it imports)
    schedule: str = "cosine"         # cosine to 0 over `steps`, no warm-up | constant
    warmup_steps: int = 0
    precision: str = "auto"          # auto (bf16 autocast where native: CUDA, AMX/AVX512-BF16 CPUs) | bf16 | fp32
    grad_accum: int = 1
    save_every: int = 1000
    eval_every: int = 0              # 0 = no periodic evaluation hook
    log_every: int = 50
    seed: int = 999
    num_workers: int = 0

    def validate(self) -> None:
        _check_choice("train.optimizer", self.optimizer, ("adamw", "adamw8bit"))
        _check_choice("train.schedule", self.schedule, ("cosine", "constant"))
        _check_choice("train.precision", self.precision, ("auto", "bf16", "fp32"))
        for k in ("steps", "batch_size", "grad_accum", "save_every", "log_every"):
            _check_positive(f"train.{k}", getattr(self, k))
        if self.lr <= 0:
            raise RPGInputError("train.lr: must be > 0")
        if self.eval_every < 0 or self.warmup_steps < 0 or self.weight_decay < 0:
            raise RPGInputError("train.eval_every/warmup_steps/weight_decay: must be >= 0")
        if not 0 <= self.seed < MAX_SEED:   # torch generators take 64-bit seeds; each DDP rank adds its rank
            raise RPGInputError(f"train.seed={self.seed}: must be in 0..{MAX_SEED - 1}")


@dataclass
class RPGConfig:
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    recurrent: RecurrentConfig = field(default_factory=RecurrentConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def position(self) -> str:
        """The position embedding in effect: condition.position with `auto` resolved by the tokenizer."""
        p = self.condition.position
        if p == "auto":
            return "1d" if self.tokenizer.strategy == "flatten" else "2d"
        return p

    def validate(self) -> RPGConfig:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()
        if self.position in ("2d", "learnable") and self.recurrent.d_model[0] % 4:
            raise RPGInputError(f"recurrent.d_model[0]={self.recurrent.d_model[0]}: the 2D sinusoidal position "
                                "embedding needs a multiple of 4 (condition.position)")
        if self.position == "1d" and self.recurrent.d_model[0] % 2:
            raise RPGInputError("recurrent.d_model[0]: the 1D position embedding needs an even width")
        return self

    def to_dict(self) -> dict[str, Any]:
        return configs.to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> RPGConfig:
        return _from_dict(cls, d, where).validate()

    def override(self, overrides: dict[str, Any]) -> RPGConfig:
        """Apply dotted `section.key=value` overrides (rpg.configs: text from --set is parsed against the
        field's declared type; Python values from library use, e.g. {"train.steps": 500}, are taken as they are)."""
        return RPGConfig.from_dict(configs.apply_overrides(RPGConfig, self.to_dict(), overrides), where="--set")


def _from_dict(cls: type, d: Any, where: str) -> Any:
    return configs.from_dict(cls, d, where)


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RPGInputError(f"{key}={value!r}: expected one of {', '.join(choices)}")


def _check_positive(key: str, value: int | float) -> None:
    if value is None or value <= 0:
        raise RPGInputError(f"{key}={value!r}: must be > 0")


# --------------------------------------------------------------------------------------------------------
# Presets are data: rpg/generator/presets.yaml (paper Tab. 12 sizes with the Tab. 11 training recipes, and `mini`,
# our CPU preset), read by the one YAML preset reader (rpg.configs.resolve_preset).
# --------------------------------------------------------------------------------------------------------
PRESET_FILE = Path(__file__).with_name("presets.yaml")
PRESETS: list[str] = list(configs.preset_entries(PRESET_FILE))   # the preset names, in file order


def preset_config(name: str, overrides: dict[str, str] | None = None) -> RPGConfig:
    if name not in PRESETS:
        raise RPGInputError(f"--preset {name!r}: unknown preset (known: {', '.join(PRESETS)})")
    cfg = RPGConfig.from_dict(configs.resolve_preset(PRESET_FILE, name, "rpg"), where=f"preset {name}")
    return cfg.override(overrides) if overrides else cfg
