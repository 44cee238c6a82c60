"""What the four Table 8 baselines (p-diff, SKDE30, SANE, D2NWG) share: presets, data, a staged and resumable fit,
a DDPM over vectors, KDE sampling, neuron tokens and the run folder.

Each baseline is a `BaselineMethod` subclass that declares its config dataclass, builds its networks, lists its
training stages (e.g. autoencoder, then latent diffusion) and draws normalised parameter vectors. Everything else
is here, once:

- Presets are data: rpg/methods/presets/<method>.yaml maps a preset name to a (partial) config; `extends: NAME`
  inherits another preset of the same file. `--set section.key=value` overrides go through `rpg.configs`.
- Data: the zoo is read with `rpg.formats.read_zoo` and normalised per tensor with RPG's own tokenizer
  (`tokenize_zoo`, strategy `flatten`): the parameter vector x (N, P) of every checkpoint is RPG's normalised
  vector, and generated vectors go back through the same `detokenize`. (Which normalisation each original method
  used, and where this departs from it, is listed in docs/faithfulness.md.)
- Fit: stages run in order; every `save_every` steps the modules, the optimizer, the schedule and the RNG go to
  RUN/train_state.pt, so rerunning `rpg train` resumes (same config and zoo only, as RPG's training). The finished
  networks and the sampling tensors (anchors, latent scale) are RUN/generator.safetensors, written last but for
  RUN/run.json.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rpg import configs, formats, io, optim
from rpg.errors import RPGInputError
from rpg.formats import GeneratedModel
from rpg.generator.denoiser import timestep_sinusoid
from rpg.generator.schedulers import make_scheduler
from rpg.generator.tokenizer import ParamTokenizer
from rpg.methods.base import Condition, FitSettings, RunInfo, SampleOptions

PRESET_DIR = Path(__file__).parent / "presets"
STATE_FORMAT = "rpg-baseline-state/1"
_FLAT_TOKEN = 256          # token size of the cached flatten tokenization (any size gives the same vector)


# ------------------------------------------------------------------------------------------------ configs
@dataclass
class StageConfig:
    """One optimisation stage (an autoencoder, a denoiser)."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    schedule: str = "cosine"         # cosine to 0 over the steps (official p-diff/RPG scripts) | constant
    warmup_steps: int = 0

    def validate(self, where: str) -> None:
        for k in ("steps", "batch_size"):
            if getattr(self, k) < 1:
                raise RPGInputError(f"{where}.{k}={getattr(self, k)}: must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise RPGInputError(f"{where}: lr must be > 0, weight_decay and warmup_steps >= 0")
        if self.optimizer not in optim.OPTIMIZERS or self.schedule not in optim.SCHEDULES:
            raise RPGInputError(f"{where}: optimizer in {optim.OPTIMIZERS}, schedule in {optim.SCHEDULES}")


@dataclass
class DiffusionSpec:
    """A DDPM over vectors with p-diff's `OneDimCNN` denoiser (additive time embedding)."""

    channels: list[int] = field(default_factory=lambda: [1, 64, 128, 256, 512, 256, 128, 64, 1])
    kernel_size: int = 7
    time_embed_dim: int = 256
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"    # linear (p-diff) | scaled_linear (LDM/D2NWG)
    sampler: str = "ddpm"            # ddpm | ddim
    sampling_steps: int = 1000
    ddim_eta: float = 0.05
    latent_scale: str = "none"       # none | std: divide the training vectors by their global std (LDM scale_by_std)
    train: StageConfig = field(default_factory=StageConfig)

    def validate(self, where: str = "diffusion") -> None:
        c = self.channels
        if len(c) < 3 or len(c) % 2 == 0 or c[0] != 1 or c[-1] != 1:
            raise RPGInputError(f"{where}.channels={c}: odd length >= 3, starting and ending with 1")
        if self.kernel_size % 2 == 0:
            raise RPGInputError(f"{where}.kernel_size={self.kernel_size}: must be odd")
        if self.sampler not in ("ddpm", "ddim") or self.latent_scale not in ("none", "std"):
            raise RPGInputError(f"{where}: sampler ddpm|ddim, latent_scale none|std")
        make_scheduler(self.sampler, self.num_train_timesteps, self.beta_start, self.beta_end, self.beta_schedule,
                       self.sampling_steps, self.ddim_eta)   # checks the schedule and step count
        self.train.validate(f"{where}.train")


def preset_names(method: str) -> list[str]:
    return list(configs.preset_entries(PRESET_DIR / f"{method}.yaml"))


def preset_dict(method: str, preset: str) -> dict:
    """A preset of rpg/methods/presets/<method>.yaml with its `extends:` chain resolved (rpg.configs)."""
    return configs.resolve_preset(PRESET_DIR / f"{method}.yaml", preset, method)


def build_config(cls: type, method: str, preset: str | None, config_file: str | None,
                 overrides: dict[str, Any]) -> Any:
    """A method config: a preset (or a full config JSON, e.g. a run's config.json) with dotted overrides."""
    if config_file:
        d, where = io.read_json(config_file), config_file
    else:
        d, where = preset_dict(method, preset or "mini"), f"{method} preset {preset or 'mini'}"
    d = configs.to_dict(configs.from_dict(cls, d, where))     # defaults filled in, unknown keys refused
    if overrides:
        d = configs.apply_overrides(cls, d, overrides)
    cfg = configs.from_dict(cls, d, "--set" if overrides else where)
    cfg.validate()
    return cfg


# ------------------------------------------------------------------------------------------------ data
@dataclass
class ZooData:
    tok: ParamTokenizer
    x: torch.Tensor                  # (N, P) normalised parameter vectors
    fingerprint: str
    accuracies: list[float | None]   # per checkpoint, from the zoo manifest (None where not recorded)
    manifest: dict

    @property
    def num_params(self) -> int:
        return self.x.shape[1]


def load_zoo(zoo_dir: str | os.PathLike, run_dir: Path) -> ZooData:
    from rpg.generator.config import TokenizerConfig
    from rpg.generator.training import tokenize_zoo
    zoo = formats.read_zoo(zoo_dir, trainable=True)
    fp = zoo.fingerprint()
    tok, tokens = tokenize_zoo(zoo, TokenizerConfig(_FLAT_TOKEN, "flatten"), run_dir, fp)
    x = torch.from_numpy(np.array(tokens)).reshape(len(zoo.files), -1)[:, :tok.num_params]   # (N, P)
    cks = zoo.manifest.get("checkpoints") or []
    accs = [c.get("accuracy") if isinstance(c, dict) else None for c in cks] or [None] * len(zoo.files)
    return ZooData(tok, x.contiguous(), fp, accs, {k: v for k, v in zoo.manifest.items() if k != "checkpoints"})


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """(B, P) -> (B, ceil(P / multiple) * multiple), zero-filled."""
    return F.pad(x, (0, -x.shape[-1] % multiple))


# ------------------------------------------------------------------------------------------------ networks
class OneDimCNN(nn.Module):
    """p-diff's denoiser: stride-1 convolutions over the whole vector (length `dim` kept), BatchNorm + ELU after
    every conv but the last, encoder outputs added back in mirrored order (U-Net skips), and a time embedding
    sinusoid -> Linear(., dim) -> SiLU -> Linear(dim, dim) ADDED to the input of every conv (RPG's own denoiser
    multiplies it). Its time MLP alone has dim^2 weights: p-diff without an autoencoder only fits tiny nets."""

    def __init__(self, channels: list[int], dim: int, kernel_size: int = 7, time_embed_dim: int = 256):
        super().__init__()
        ch, k = channels, kernel_size
        self.n_enc = len(ch) // 2 + 1
        self.n_skip = self.n_enc - 2
        self.time_embed_dim, self.dim = time_embed_dim, dim
        self.convs = nn.ModuleList(nn.Conv1d(ch[i], ch[i + 1], k, padding=k // 2) for i in range(len(ch) - 1))
        self.norms = nn.ModuleList(nn.BatchNorm1d(ch[i + 1]) for i in range(len(ch) - 2))
        self.time_mlp = nn.Sequential(nn.Linear(time_embed_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x (B, D), t (B,) -> predicted noise (B, D)."""
        te = self.time_mlp(timestep_sinusoid(t, self.time_embed_dim))[:, None, :]     # (B, 1, D)
        h, skips, last = x[:, None, :], [], len(self.convs) - 1                        # (B, 1, D)
        for i, conv in enumerate(self.convs):
            if i >= self.n_enc:
                h = h + skips.pop()
            h = conv(h + te)
            if i < last:
                h = F.elu(self.norms[i](h))
            if i < self.n_skip:
                skips.append(h)
        return h[:, 0, :]


class VectorDDPM:
    """Training loss and sampling of a `DiffusionSpec` DDPM over (B, D) vectors; `mask` (D,) excludes padding
    from the loss (p-diff's NaN padding)."""

    def __init__(self, spec: DiffusionSpec, net: OneDimCNN):
        self.spec, self.net, self.dim = spec, net, net.dim
        self.train_sched = make_scheduler("ddpm", spec.num_train_timesteps, spec.beta_start, spec.beta_end,
                                          spec.beta_schedule)

    @staticmethod
    def denoiser(spec: DiffusionSpec, dim: int) -> OneDimCNN:
        return OneDimCNN(spec.channels, dim, spec.kernel_size, spec.time_embed_dim)

    def loss(self, x0: torch.Tensor, g: torch.Generator, mask: torch.Tensor | None = None) -> torch.Tensor:
        t = torch.randint(0, self.spec.num_train_timesteps, (x0.shape[0],), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        t, eps = t.to(x0.device), eps.to(x0.device)
        err = (self.net(self.train_sched.add_noise(x0, eps, t), t) - eps) ** 2
        return err[:, mask].mean() if mask is not None else err.mean()

    @torch.no_grad()
    def sample(self, num: int, sampler: str, steps: int, g: torch.Generator, device: str) -> torch.Tensor:
        s = self.spec
        sched = make_scheduler(sampler, s.num_train_timesteps, s.beta_start, s.beta_end, s.beta_schedule, steps,
                               s.ddim_eta)
        self.net.eval()
        x = torch.randn((num, self.dim), generator=g).to(device)
        for t in sched.timesteps:
            eps = self.net(x, torch.full((num,), int(t), device=device))
            # noise of each step drawn on the CPU generator (same weights on every device)
            x = sched.step(eps.cpu(), int(t), x.cpu(), generator=g).prev_sample.to(device)
        return x


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent: the two views of a sample are positives, the other 2B - 2 vectors negatives."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)                      # (2B, e)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    b = len(z1)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, target)


def kde_sample(anchors: torch.Tensor, num: int, bandwidth: float, g: torch.Generator, per: str) -> torch.Tensor:
    """Draw `num` samples of a Gaussian KDE over `anchors` (A, ...): pick an anchor, add N(0, bandwidth^2).

    per = "coordinate": every coordinate has its own 1-D KDE (independent anchor and noise per coordinate);
    per = "model": one anchor and ONE noise value per sample, shared by all coordinates (what SKDE30's code
    does by giving every coordinate's KDE random_state=42); per = "token": one KDE per position of dim 1 over
    the vectors of the last dim (SANE's `token` mode)."""
    a, shape = anchors.shape[0], anchors.shape[1:]
    if per == "model":
        idx = torch.randint(0, a, (num,), generator=g)
        return anchors[idx] + bandwidth * torch.randn((num,) + (1,) * len(shape), generator=g)
    if per == "token":
        idx = torch.randint(0, a, (num, shape[0]), generator=g)                    # (num, T)
        picked = anchors[idx, torch.arange(shape[0])[None, :]]                    # (num, T, e)
        return picked + bandwidth * torch.randn(picked.shape, generator=g)
    if per == "coordinate":
        flat = anchors.reshape(a, -1)
        idx = torch.randint(0, a, (num, flat.shape[1]), generator=g)
        picked = flat.gather(0, idx)                                               # picked[i, j] = flat[idx[i, j], j]
        return (picked + bandwidth * torch.randn(picked.shape, generator=g)).reshape((num,) + shape)
    raise RPGInputError(f"kde per={per!r}: expected coordinate, model or token")


# ------------------------------------------------------------------------------------------------ neuron tokens
@dataclass
class NeuronLayout:
    """Per-neuron tokens (SANE, SKDE30): one row per output channel of a weight tensor, its bias appended; a row
    longer than the token size is cut into several tokens; every token is zero-padded. `index` maps a token slot
    to its entry of the parameter vector (-1 = padding)."""

    index: torch.Tensor        # (L, d) long
    layer: torch.Tensor        # (L,) layer (row group) index l
    channel: torch.Tensor      # (L,) neuron index k within its layer
    row_lengths: list[int]     # per layer: values per row (fan_in * kernel + 1 with a bias)

    @property
    def num_tokens(self) -> int:
        return self.index.shape[0]

    @property
    def token_size(self) -> int:
        return self.index.shape[1]

    @property
    def mask(self) -> torch.Tensor:
        return self.index >= 0

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, P) -> (B, L, d), padding 0."""
        xp = F.pad(x, (0, 1))                                       # slot P holds the padding value 0
        idx = torch.where(self.index >= 0, self.index, x.shape[1])
        return xp[:, idx]

    def vector(self, tokens: torch.Tensor, num_params: int) -> torch.Tensor:
        """(B, L, d) -> (B, P); padding slots are dropped."""
        idx = torch.where(self.index >= 0, self.index, num_params).reshape(-1)
        out = torch.zeros(tokens.shape[0], num_params + 1, dtype=tokens.dtype, device=tokens.device)
        out[:, idx] = tokens.reshape(tokens.shape[0], -1)
        return out[:, :num_params]


def neuron_layout(tok: ParamTokenizer, token_size: int = 0) -> NeuronLayout:
    """The neuron tokens of the tokenizer's generated tensors; token_size 0 = the longest row (no row is cut)."""
    keys = {layer.key: i for i, layer in enumerate(tok.layers)}
    paired: dict[int, int] = {}               # weight layer -> its bias layer
    for i, layer in enumerate(tok.layers):
        if len(layer.shape) >= 2 and layer.key.endswith("weight"):
            b = keys.get(layer.key[: -len("weight")] + "bias")
            if b is not None and tok.layers[b].shape == (layer.shape[0],):
                paired[i] = b
    biases = set(paired.values())
    rows: list[tuple[int, int, torch.Tensor]] = []     # (group, channel, indices of the row)
    row_lengths: list[int] = []
    for i, layer in enumerate(tok.layers):
        if i in biases:
            continue
        off = tok.offsets[i]
        n_rows = layer.shape[0] if len(layer.shape) >= 2 else 1
        per_row = layer.numel // n_rows
        idx = off + torch.arange(layer.numel).reshape(n_rows, per_row)              # (rows, per_row)
        if i in paired:
            idx = torch.cat([idx, tok.offsets[paired[i]] + torch.arange(n_rows)[:, None]], dim=1)
        group = len(row_lengths)
        row_lengths.append(idx.shape[1])
        rows += [(group, k, idx[k]) for k in range(n_rows)]
    d = token_size or max(row_lengths)
    index, lay, chan = [], [], []
    for group, k, r in rows:
        for s in range(0, len(r), d):
            piece = r[s:s + d]
            index.append(F.pad(piece, (0, d - len(piece)), value=-1))
            lay.append(group)
            chan.append(k)
    return NeuronLayout(torch.stack(index), torch.tensor(lay), torch.tensor(chan), row_lengths)


# ------------------------------------------------------------------------------------------------ fit
class StagedFit:
    """Stages run in order with one resumable state file (see the module docstring)."""

    def __init__(self, run_dir: Path, cfg_dict: dict, fingerprint: str, modules: dict[str, nn.Module],
                 save_every: int, seed: int, device: str, restart_on_change: bool, quiet: bool,
                 max_steps: int | None = None):
        self.run_dir, self.cfg_dict, self.fingerprint = run_dir, cfg_dict, fingerprint
        self.modules, self.save_every, self.seed, self.device, self.quiet = modules, save_every, seed, device, quiet
        # FitSettings.max_steps: every stage stops there. Nothing is saved then: a later stage trained on a cut
        # earlier one is no state a full fit could resume from. `capped` says a stage was cut (no generator).
        self.max_steps, self.capped = max_steps, False
        self.path = run_dir / "train_state.pt"
        self.state: dict = {"completed": [], "stage": None}
        if self.path.is_file():
            st = io.load_torch_file(self.path)
            why = None
            if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
                why = "is not a state of this method's training"
            elif st.get("config") != cfg_dict:
                why = "was written with a different config"
            elif st.get("zoo_fingerprint") != fingerprint:
                why = "was trained on other contents of the zoo (its fingerprint changed)"
            if why is None:
                for name, m in modules.items():
                    m.load_state_dict(st["modules"][name])
                self.state = st
                self.say(f"resuming {run_dir}: stages done {st['completed']}, {st['stage']} at step {st['step']}")
            elif not restart_on_change:
                raise RPGInputError(f"{self.path}: {why}; use a new --out, delete it, or pass --restart-on-change")
            else:
                self.say(f"{self.path}: {why}; starting over")
        if not self.state["completed"] and self.state["stage"] is None:
            for stale in ("train_state.pt", "log.jsonl", "generator.safetensors"):
                (run_dir / stale).unlink(missing_ok=True)

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def _save(self, stage: str | None, step: int, opt=None, sched=None, g=None) -> None:
        st = {"format": STATE_FORMAT, "config": self.cfg_dict, "zoo_fingerprint": self.fingerprint,
              "modules": {k: m.state_dict() for k, m in self.modules.items()}, "completed": self.state["completed"],
              "stage": stage, "step": step, "optimizer": None if opt is None else opt.state_dict(),
              "scheduler": None if sched is None else sched.state_dict(), "rng": None if g is None else g.get_state()}
        tmp = self.path.with_name(".train_state.pt.tmp")
        torch.save(st, tmp)
        os.replace(tmp, self.path)
        self.state = st

    def run(self, name: str, params, stage: StageConfig, loss_fn: Callable[[torch.Generator], torch.Tensor],
            train_modules: list[nn.Module]) -> None:
        """Optimise `params` for `stage.steps` steps of `loss_fn(generator)`; skipped when already done."""
        if name in self.state["completed"]:
            return
        params = list(params)
        opt = optim.make_optimizer(params, stage.optimizer, stage.lr, stage.weight_decay, log=self.say)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, optim.lr_schedule(
            1.0, stage.schedule, stage.warmup_steps, span=max(1, stage.steps - stage.warmup_steps)))
        g = torch.Generator().manual_seed(self.seed + len(self.state["completed"]))
        step = 0
        if self.state.get("stage") == name and self.state.get("optimizer") is not None:
            opt.load_state_dict(self.state["optimizer"])
            sched.load_state_dict(self.state["scheduler"])
            g.set_state(self.state["rng"])
            step = self.state["step"]
        for m in train_modules:
            m.train()
        log_every = max(1, min(50, stage.steps // 10))
        t0, ema = time.time(), None
        end = stage.steps if self.max_steps is None else min(stage.steps, self.max_steps)
        while step < end:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(g)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise RPGInputError(f"{self.run_dir}: stage {name}: the training loss is {value} at step {step + 1}; "
                                    "no generator was written (lower the stage's lr)")
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            ema = value if ema is None else 0.98 * ema + 0.02 * value
            if step % log_every == 0 or step == stage.steps:
                with open(self.run_dir / "log.jsonl", "a") as f:
                    f.write(json.dumps({"stage": name, "step": step, "loss": value, "loss_ema": ema,
                                        "lr": sched.get_last_lr()[0],
                                        "sec_per_step": (time.time() - t0) / log_every}) + "\n")
                self.say(f"{name} step {step}/{stage.steps} loss {ema:.4f}")
                t0 = time.time()
            if step % self.save_every == 0 and step < stage.steps and self.max_steps is None:
                self._save(name, step, opt, sched, g)
        if step < stage.steps:
            self.capped = True            # cut by max_steps: not completed, nothing saved
        else:
            self.state["completed"] = [*self.state["completed"], name]
            self._save(None, 0)
        for m in train_modules:
            m.eval()


def stage_losses(run_dir: str | os.PathLike, stage: str) -> list[float]:
    """The logged losses of one stage, in order (tests and reports)."""
    out = []
    for line in (Path(run_dir) / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("stage") == stage:
            out.append(rec["loss"])
    return out


# ------------------------------------------------------------------------------------------------ method
class BaselineMethod:
    """A Table 8 baseline behind the method seam (`rpg.methods.base.Method`). Subclasses set `name`,
    `config_class` and implement `build`, `fit_stages`, `finalize` and `draw`."""

    name = "baseline"
    config_class: type = object

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str], tuple] = {}

    # subclass hooks ---------------------------------------------------------------------------------
    def build(self, cfg, data: ZooData) -> tuple[dict[str, nn.Module], dict]:
        """The networks (name -> module) and sizes worth recording (JSON, saved in meta.json). Built from the
        tokenizer and `data.num_params` only, so sampling rebuilds the same networks without the zoo."""
        raise NotImplementedError

    def fit_stages(self, cfg, data: ZooData, modules: dict[str, nn.Module], fit: StagedFit, device: str) -> None:
        raise NotImplementedError

    def finalize(self, cfg, data: ZooData, modules: dict[str, nn.Module], device: str) -> dict[str, torch.Tensor]:
        """Tensors sampling needs besides the networks (anchors, latent scale)."""
        return {}

    def draw(self, cfg, tok: ParamTokenizer, modules: dict[str, nn.Module], extra: dict[str, torch.Tensor],
             num: int, options: SampleOptions, g: torch.Generator, device: str) -> torch.Tensor:
        """`num` normalised parameter vectors (num, >= P; anything past P is padding)."""
        raise NotImplementedError

    def diffusion_spec(self, cfg) -> DiffusionSpec | None:
        return None

    # the seam ---------------------------------------------------------------------------------------
    def config(self, settings: FitSettings):
        return build_config(self.config_class, self.name, settings.preset, settings.config_file, settings.overrides)

    def resolved_config(self, preset: str, overrides: list[str]) -> dict:
        return configs.to_dict(build_config(self.config_class, self.name, preset, None,
                                            configs.parse_overrides(overrides)))

    def normalised_config(self, record: dict) -> dict:
        return record      # compared as written: the baselines' config.json has kept its fields

    def fit(self, zoo_dir: str | os.PathLike, run_dir: str | os.PathLike, settings: FitSettings) -> Path:
        from rpg.generator.training import _run_lock
        from rpg.memory import address_space_cap
        cfg = self.config(settings)
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        with _run_lock(run_dir), address_space_cap(settings.memory_cap_bytes):
            if (run_dir / "run.json").is_file():     # a finished run is fitted again from step 0 (as RPG's training)
                (run_dir / "train_state.pt").unlink(missing_ok=True)
            (run_dir / "run.json").unlink(missing_ok=True)       # marks a complete fit: dropped until this one is
            data = load_zoo(zoo_dir, run_dir)
            torch.manual_seed(cfg.seed)
            modules, shape = self.build(cfg, data)
            for m in modules.values():
                m.to(settings.device)
            cfg_dict = configs.to_dict(cfg)
            fit = StagedFit(run_dir, cfg_dict, data.fingerprint, modules, cfg.save_every, cfg.seed,
                            settings.device, settings.restart_on_change, settings.quiet, settings.max_steps)
            self.fit_stages(cfg, data, modules, fit, settings.device)
            if fit.capped:             # a measurement or a test: no generator, no run.json
                return run_dir / "generator.safetensors"
            with torch.no_grad():
                extra = self.finalize(cfg, data, modules, settings.device)
            io.write_json(run_dir / "config.json", cfg_dict)
            io.write_json(run_dir / "meta.json", {
                "method": self.name, "shape": shape, "num_params": data.num_params,
                "num_checkpoints": data.x.shape[0], "zoo": str(zoo_dir), "zoo_manifest": data.manifest,
                "zoo_fingerprint": data.fingerprint, "device": settings.device})
            tensors = {f"{name}.{k}": v for name, m in modules.items() for k, v in m.state_dict().items()}
            tensors.update({f"extra.{k}": v for k, v in extra.items()})
            out = run_dir / "generator.safetensors"
            io.save_state_dict(out, tensors)
            formats.write_run(run_dir, self.name, zoo_dir, data.fingerprint)
        return out

    def _load(self, run_dir: str | os.PathLike, device: str) -> tuple:
        key = (str(Path(run_dir).resolve()), str(device))
        if key not in self._loaded:
            run_dir = Path(run_dir)
            cfg = build_config(self.config_class, self.name, None, str(run_dir / "config.json"), {})
            meta = io.read_json(run_dir / "meta.json")
            tok = ParamTokenizer.load(run_dir / "tokenizer.safetensors")
            weights = io.load_state_dict(run_dir / "generator.safetensors")
            data = ZooData(tok, torch.zeros(0, meta["num_params"]), meta["zoo_fingerprint"], [], meta["zoo_manifest"])
            modules, _ = self.build(cfg, data)
            for name, m in modules.items():
                prefix = f"{name}."
                m.load_state_dict({k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)})
                m.to(device).eval()
            extra = {k[len("extra."):]: v for k, v in weights.items() if k.startswith("extra.")}
            self._loaded[key] = (cfg, meta, tok, modules, extra)
        return self._loaded[key]

    def info(self, run_dir: str | os.PathLike) -> RunInfo:
        _, meta, *_ = self._load(run_dir, "cpu")
        return RunInfo(zoo=dict(meta.get("zoo_manifest") or {}), permutations=[], num_permutations=0)

    def resolve(self, run_dir: str | os.PathLike, options: SampleOptions, device: str) -> SampleOptions:
        cfg = self._load(run_dir, "cpu")[0]
        if options.mode is not None or options.chunk_size is not None:
            raise RPGInputError(f"--mode/--chunk-size: {self.name} samples whole models (no tokens to chunk)")
        if options.precision not in ("auto", "fp32"):
            raise RPGInputError(f"--precision {options.precision!r}: {self.name} samples in fp32 (auto or fp32)")
        spec = self.diffusion_spec(cfg)
        if spec is None:
            if options.sampler is not None or options.steps is not None:
                raise RPGInputError(f"--sampler/--steps: {self.name} samples by kernel density (no diffusion)")
            return SampleOptions(None, None, None, None, "fp32", options.progress)
        sampler = options.sampler or spec.sampler
        steps = options.steps
        if steps is None:
            steps = spec.sampling_steps if sampler == spec.sampler else (
                spec.num_train_timesteps if sampler == "ddpm" else 60)
        make_scheduler(sampler, spec.num_train_timesteps, spec.beta_start, spec.beta_end, spec.beta_schedule,
                       steps, spec.ddim_eta)            # checks sampler and steps against the trained schedule
        return SampleOptions(sampler, steps, None, None, "fp32", options.progress)

    def sample(self, run_dir: str | os.PathLike, num: int, condition: Condition, options: SampleOptions,
               seed: int, device: str) -> list[GeneratedModel]:
        cfg, meta, tok, modules, extra = self._load(run_dir, device)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            x = self.draw(cfg, tok, modules, extra, num, options, g, device).cpu()
        x = x[:, :meta["num_params"]]                                                 # (num, P): padding dropped
        out = []
        for i in range(num):
            tokens = pad_to(x[i:i + 1], tok.token_size).reshape(tok.num_tokens, tok.token_size)   # (L, d)
            out.append(GeneratedModel(tok.detokenize(tokens)))
        return out


def config_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]
