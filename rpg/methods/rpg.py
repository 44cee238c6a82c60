"""RPG as a generation method: `rpg.generator.training.train` to fit, `rpg.generator.sampling` to sample.

Sampling is today's `rpg generate`, unchanged: with no condition the permutation ids are drawn from the seeded
generator first, then the same generator draws the diffusion noise, so a run, a seed and the options give the
same weights as before this seam existed (the Table 1 numbers do not move).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rpg import configs, formats, io
from rpg.errors import RPGInputError
from rpg.formats import GeneratedModel
from rpg.generator.config import RPGConfig, preset_config
from rpg.methods.base import Condition, FitSettings, RunInfo, SampleOptions


def build_config(preset: str | None, config_file: str | None, overrides: dict[str, str]) -> RPGConfig:
    """A preset (paper Tab. 12 sizes, or mini) or a full config JSON, with dotted overrides."""
    if config_file:
        cfg = RPGConfig.from_dict(io.read_json(config_file), where=config_file)
        return cfg.override(overrides) if overrides else cfg
    return preset_config(preset or "mini", overrides)


def zoo_fingerprint(zoo_dir: str | os.PathLike) -> str:
    """The fingerprint training keeps of its zoo (in train_state.pt and zoo.json), recorded in run.json."""
    return formats.read_zoo(zoo_dir, trainable=True).fingerprint()


def _rank() -> int:
    """This process's rank under torchrun (0 otherwise); readable before training joins the process group."""
    return int(os.environ.get("RANK", "0"))


class RPGMethod:
    """Recurrent diffusion (paper §3). Run folder: config.json, meta.json, tokenizer.safetensors, tokens.npy,
    zoo.json, train_state.pt, generator.safetensors, and run.json once training is complete."""

    name = "rpg"
    display_name = "RPG"
    stages = ("train",)   # dotted config keys of each training stage (steps, batch size)

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str], tuple] = {}

    # -------------------------------------------------------------------------------------------- config
    def resolved_config(self, preset: str, overrides: list[str]) -> dict:
        return build_config(preset, None, configs.parse_overrides(overrides)).to_dict()

    def normalised_config(self, record: dict) -> dict:
        try:
            return RPGConfig.from_dict(record).to_dict()
        except (RPGInputError, KeyError, TypeError, ValueError):
            return record

    # -------------------------------------------------------------------------------------------- fit
    def fit(self, zoo_dir: str | os.PathLike, run_dir: str | os.PathLike, settings: FitSettings) -> Path:
        from rpg.generator.training import train
        from rpg.memory import address_space_cap
        overrides = dict(settings.overrides)
        if settings.eval_every is not None:
            overrides["train.eval_every"] = str(settings.eval_every)
        cfg = build_config(settings.preset, settings.config_file, overrides)
        eval_fn = None
        if cfg.train.eval_every and settings.eval_hook is not None:
            eval_fn = settings.eval_hook(Path(zoo_dir))
        run_dir = Path(run_dir)
        if _rank() == 0:
            # run.json marks a complete fit: drop a previous one until this fit is complete
            (run_dir / "run.json").unlink(missing_ok=True)
        with address_space_cap(settings.memory_cap_bytes):
            out = train(cfg, zoo_dir, run_dir, device=settings.device, eval_fn=eval_fn, quiet=settings.quiet,
                        restart_on_change=settings.restart_on_change, max_steps=settings.max_steps)
        if _rank() == 0 and out.is_file():
            # the fingerprint training checked and recorded, not a second read of the zoo
            fingerprint = io.read_json(run_dir / "meta.json")["zoo_fingerprint"]
            formats.write_run(run_dir, self.name, zoo_dir, fingerprint)
        return out

    # -------------------------------------------------------------------------------------------- sample
    def _load(self, run_dir: str | os.PathLike, device: str) -> tuple:
        from rpg.generator.sampling import load_run
        key = (str(Path(run_dir).resolve()), str(device))
        if key not in self._loaded:
            self._loaded[key] = load_run(run_dir, device)
        return self._loaded[key]

    def info(self, run_dir: str | os.PathLike) -> RunInfo:
        model, _, meta = self._load(run_dir, "cpu")
        cond = model.cfg.condition
        perms = sorted(set(meta["permutations"])) if model.inputs.permutation is not None else []
        return RunInfo(zoo=dict(meta.get("zoo_manifest") or {}), permutations=perms,
                       num_permutations=meta["num_permutations"], task_conditioned=cond.task != "none")

    def resolve(self, run_dir: str | os.PathLike, options: SampleOptions, device: str) -> SampleOptions:
        from rpg.generator.sampling import resolve_sampling
        from rpg.runtime import use_bf16
        plan = resolve_sampling(self._load(run_dir, "cpu")[0].cfg, options.sampler, options.steps, options.mode,
                                options.chunk_size)                  # defaults filled in, the rest checked
        sampler, steps, mode, chunk_size = plan["sampler"], plan["steps"], plan["mode"], plan["chunk_size"]
        if options.precision not in ("auto", "bf16", "fp32"):
            raise RPGInputError(f"--precision {options.precision!r}: expected auto, bf16 or fp32")
        precision = "bf16" if use_bf16(options.precision, device) else "fp32"
        return SampleOptions(sampler, steps, mode, chunk_size, precision, options.progress)

    def sample(self, run_dir: str | os.PathLike, num: int, condition: Condition, options: SampleOptions,
               seed: int, device: str) -> list[GeneratedModel]:
        from rpg.generator.sampling import sample_tokens
        model, tok, meta = self._load(run_dir, device)
        task = perm = None
        if condition.task is not None:
            if model.cfg.condition.task_dim != len(condition.task):
                raise RPGInputError(f"task {formats.task_string(list(condition.task))}: the generator in {run_dir} "
                                    f"takes tasks of {model.cfg.condition.task_dim} bits")
            task = torch.tensor([[float(b) for b in condition.task]]).expand(num, -1)       # (num, task_dim)
        if condition.permutation is not None:
            perm = torch.full((num,), condition.permutation, dtype=torch.long)
        g = torch.Generator().manual_seed(seed)
        if perm is None and model.inputs.permutation is not None and task is None:
            perm = torch.randint(0, meta["num_permutations"], (num,), generator=g)      # drawn before the noise
        tokens = sample_tokens(model, num, sampler=options.sampler, steps=options.steps, mode=options.mode,
                               chunk_size=options.chunk_size, permutation=perm, task=task, generator=g,
                               device=device, autocast=options.precision == "bf16", progress=options.progress)
        bits = None if condition.task is None else [int(b) for b in condition.task]
        return [GeneratedModel(tok.detokenize(tokens[i]), None if perm is None else int(perm[i]), bits)
                for i in range(num)]
