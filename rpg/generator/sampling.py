"""Generate new weights from a trained RPG run (paper §3.1 "Inference details";
official model/diffusion.py, `DiffusionLoss.sample`).

1. One parallel pass of the recurrent model gives every token's prototype (per generated model: a
   permutation state drawn uniformly from the training ones, or given; or a task vector).
2. The prototypes' condition embeddings are computed once; the time embeddings once per timestep.
3. All tokens of all requested models are denoised together, in chunks: ``sequential`` (1 token at a
   time), ``partial`` (``chunk_size`` tokens, paper default 256) or ``full`` (all at once).
4. Tokens are un-normalised into state_dicts that load with strict=True into the original architecture.

    python -m rpg generate --run RUN_DIR --num 10 --out OUT_DIR [--sampler ddim --steps 60] [--seed 0]

The generated set is written by rpg.methods.generate (rpg.methods.rpg samples with the functions here).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

from rpg import io
from rpg.errors import RPGInputError
from rpg.generator.denoiser import fold_batchnorm
from rpg.generator.model import RPG
from rpg.generator.schedulers import make_scheduler
from rpg.generator.tokenizer import ParamTokenizer


def resolve_sampling(cfg, sampler: str | None = None, steps: int | None = None, mode: str | None = None,
                     chunk_size: int | None = None) -> dict:
    """What a sampling call will actually run: None falls back to the run's diffusion config, anything
    given is checked (0 is a value, never "default"). The generated manifest records this dict."""
    dc = cfg.diffusion
    sampler = dc.sampler if sampler is None else sampler
    mode = dc.mode if mode is None else mode
    chunk_size = dc.chunk_size if chunk_size is None else chunk_size
    if steps is None:
        steps = dc.sampling_steps if sampler == dc.sampler else (dc.num_train_timesteps if sampler == "ddpm" else 60)
    if sampler not in ("ddpm", "ddim"):
        raise RPGInputError(f"--sampler {sampler!r}: expected ddpm or ddim")
    if mode not in ("sequential", "partial", "full"):
        raise RPGInputError(f"--mode {mode!r}: expected sequential, partial or full")
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise RPGInputError(f"--chunk-size {chunk_size}: must be an integer >= 1")
    T = dc.num_train_timesteps
    if not (isinstance(steps, int) and 1 <= steps <= T):
        raise RPGInputError(f"--steps {steps}: must be in 1..{T} (diffusion.num_train_timesteps of this run)")
    if sampler == "ddpm" and steps != T:
        raise RPGInputError(f"--steps {steps}: the DDPM sampler runs all {T} steps; use --sampler ddim for fewer")
    return {"sampler": sampler, "steps": steps, "mode": mode, "chunk_size": chunk_size}


@torch.no_grad()
def sample_tokens(model: RPG, num: int, *, sampler: str | None = None, steps: int | None = None,
                  mode: str | None = None, chunk_size: int | None = None,
                  permutation: torch.Tensor | None = None, task: torch.Tensor | None = None,
                  generator: torch.Generator | None = None, device: str | torch.device = "cpu",
                  autocast: bool = False, progress: bool = False, timings: dict | None = None,
                  prototype_chunk: int | None = None) -> torch.Tensor:
    """Sample `num` token sequences, (num, L, d). Defaults come from the model's diffusion config.
    `timings`, if given, receives the seconds of the prototype pass (once) and of the denoising loop (per step).
    `prototype_chunk` runs the recurrent pass that many tokens at a time, carrying its state (same prototypes,
    less memory; our addition: the paper's partial mode chunks the denoising only)."""
    dc = model.cfg.diffusion
    sampler, steps, mode, chunk_size = resolve_sampling(model.cfg, sampler, steps, mode, chunk_size).values()
    if num < 1:
        raise RPGInputError(f"--num {num}: must be >= 1")
    scheduler = make_scheduler(sampler, dc.num_train_timesteps, dc.beta_start, dc.beta_end, dc.beta_schedule,
                               steps=steps, eta=dc.ddim_eta, offset=dc.ddim_offset)
    model.eval()
    L, d = model.num_tokens, model.token_size
    if permutation is None and model.inputs.permutation is not None and model.cfg.condition.task == "none":
        permutation = torch.randint(0, model.inputs.num_permutations, (num,), generator=generator)
    t0 = time.perf_counter()
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
        P = model.prototypes(num, None if permutation is None else permutation.to(device),
                             None if task is None else task.to(device), segment=prototype_chunk)  # (num, L, d_cond)
        unet = fold_batchnorm(model.denoiser)
        c_emb = unet.embed_condition(P.reshape(num * L, -1))                     # (num*L, 1, d), once
        del P                                                                    # only c_emb is used from here
        t_all = scheduler.timesteps
        t_emb = unet.embed_time(t_all.to(device))                                # (K, 1, d), once
    t1 = time.perf_counter()
    n_tok = num * L
    chunk = {"sequential": 1, "partial": chunk_size, "full": n_tok}[mode]
    # all starting noise drawn up front on the CPU generator: the result does not depend on the device
    x = torch.randn(n_tok, d, generator=generator).to(device)
    out = torch.empty(n_tok, d)
    bar = tqdm(total=len(t_all) * -(-n_tok // chunk), desc="denoising", disable=None if progress else True, unit="step")
    for lo in range(0, n_tok, chunk):
        hi = min(lo + chunk, n_tok)
        xc, cc = x[lo:hi], c_emb[lo:hi]
        for k, t in enumerate(t_all.tolist()):
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
                eps = unet(xc, None, c_emb=cc, t_emb=t_emb[k:k + 1])
            xc = scheduler.step(eps.float(), t, xc, generator=generator).prev_sample
            bar.update()
        out[lo:hi] = xc.float().cpu()
    bar.close()
    if timings is not None:
        timings.update(prototypes_s=t1 - t0, denoising_s=time.perf_counter() - t1, steps=len(t_all))
    return out.view(num, L, d)


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[RPG, ParamTokenizer, dict]:
    """Rebuild a trained generator from its run folder (config.json, tokenizer, generator.safetensors)."""
    from rpg.generator.config import RPGConfig
    run_dir = Path(run_dir)
    weights = run_dir / "generator.safetensors"
    if not weights.is_file():
        raise RPGInputError(f"{weights}: not found (is {run_dir} a finished `rpg train` run?)")
    cfg = RPGConfig.from_dict(io.read_json(run_dir / "config.json"), where=str(run_dir / "config.json"))
    meta = read_meta(run_dir / "meta.json")
    tok = ParamTokenizer.load(run_dir / "tokenizer.safetensors")
    model = RPG(cfg, tok.layer_ids, tok.token_ids, meta["num_permutations"])
    sd = io.load_state_dict(weights)
    model.load_state_dict(sd, strict=True)
    return model.to(device).eval(), tok, meta


def read_meta(path: Path) -> dict:
    """A run's meta.json, with the entries generation relies on checked: a missing or absurd entry is one
    line naming the file and the key (not a KeyError, and not a 1 PB embedding table)."""
    meta = io.read_json(path)
    if not isinstance(meta, dict):
        raise RPGInputError(f"{path}: expected a JSON object")
    for key in ("num_checkpoints", "num_permutations"):
        if key not in meta:
            raise RPGInputError(f"{path}: key {key!r} is missing (rerun `rpg train` to rewrite it)")
        if not (isinstance(meta[key], int) and not isinstance(meta[key], bool) and meta[key] >= 1):
            raise RPGInputError(f"{path}: key {key!r} must be an integer >= 1, got {meta[key]!r}")
    if meta["num_permutations"] > meta["num_checkpoints"]:   # one permutation state needs >= 1 checkpoint
        raise RPGInputError(f"{path}: key 'num_permutations'={meta['num_permutations']} exceeds "
                            f"num_checkpoints={meta['num_checkpoints']}")
    return meta
