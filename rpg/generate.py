"""Generate new weights from a trained RPG run (paper §3.1 "Inference details"; reference §5.4).

1. One parallel pass of the recurrent model gives every token's prototype (per generated model: a
   permutation state drawn uniformly from the training ones, or given; or a task vector).
2. The prototypes' condition embeddings are computed once; the time embeddings once per timestep.
3. All tokens of all requested models are denoised together, in chunks: ``sequential`` (1 token at a
   time), ``partial`` (``chunk_size`` tokens, paper default 256) or ``full`` (all at once).
4. Tokens are un-normalised into state_dicts that load with strict=True into the original architecture.

    python -m rpg generate --run RUN_DIR --num 10 --out OUT_DIR [--sampler ddim --steps 60] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm import tqdm

from rpg import io
from rpg.cli import add_threads_arg, resolve_device, set_threads, use_bf16
from rpg.cli import run as run_cli
from rpg.denoiser import fold_batchnorm
from rpg.errors import RPGInputError
from rpg.model import RPG
from rpg.schedulers import make_scheduler
from rpg.tokenizer import ParamTokenizer


@torch.no_grad()
def sample_tokens(model: RPG, num: int, *, sampler: str | None = None, steps: int | None = None,
                  mode: str | None = None, chunk_size: int | None = None,
                  permutation: torch.Tensor | None = None, task: torch.Tensor | None = None,
                  generator: torch.Generator | None = None, device: str | torch.device = "cpu",
                  autocast: bool = False, progress: bool = False) -> torch.Tensor:
    """Sample `num` token sequences, (num, L, d). Defaults come from the model's diffusion config."""
    dc = model.cfg.diffusion
    sampler, mode = sampler or dc.sampler, mode or dc.mode
    chunk_size = chunk_size or dc.chunk_size
    if steps is None:
        steps = dc.sampling_steps if sampler == dc.sampler else (dc.num_train_timesteps if sampler == "ddpm" else 60)
    scheduler = make_scheduler(sampler, dc.num_train_timesteps, dc.beta_start, dc.beta_end, dc.beta_schedule,
                               steps=steps, eta=dc.ddim_eta, offset=dc.ddim_offset)
    model.eval()
    L, d = model.num_tokens, model.token_size
    if permutation is None and model.inputs.permutation is not None and model.cfg.condition.task == "none":
        permutation = torch.randint(0, model.inputs.num_permutations, (num,), generator=generator)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
        P = model.prototypes(num, None if permutation is None else permutation.to(device),
                             None if task is None else task.to(device))          # (num, L, d_cond)
        unet = fold_batchnorm(model.denoiser)
        c_emb = unet.embed_condition(P.reshape(num * L, -1))                     # (num*L, 1, d), once
        t_all = scheduler.timesteps
        t_emb = unet.embed_time(t_all.to(device))                                # (K, 1, d), once
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
    return out.view(num, L, d)


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[RPG, ParamTokenizer, dict]:
    """Rebuild a trained generator from its run folder (config.json, tokenizer, generator.safetensors)."""
    from rpg.config import RPGConfig
    run_dir = Path(run_dir)
    weights = run_dir / "generator.safetensors"
    if not weights.is_file():
        raise RPGInputError(f"{weights}: not found (is {run_dir} a finished `rpg train` run?)")
    cfg = RPGConfig.from_dict(io.read_json(run_dir / "config.json"), where=str(run_dir / "config.json"))
    meta = io.read_json(run_dir / "meta.json")
    tok = ParamTokenizer.load(run_dir / "tokenizer.safetensors")
    model = RPG(cfg, tok.layer_ids, tok.token_ids, meta["num_permutations"])
    sd = io.load_state_dict(weights)
    model.load_state_dict(sd, strict=True)
    return model.to(device).eval(), tok, meta


def parse_task(bits: str, dim: int) -> torch.Tensor:
    if len(bits) != dim or set(bits) - {"0", "1"}:
        raise RPGInputError(f"--task {bits!r}: expected {dim} characters of 0/1")
    return torch.tensor([[float(b) for b in bits]])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="rpg generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder written by `rpg train` (holds generator.safetensors)")
    p.add_argument("--num", type=int, default=10, help="how many models to generate (default 10, as the paper)")
    p.add_argument("--out", required=True, help="output folder: generated_000.safetensors ... + manifest.json")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical weights on CPU")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], help="default: the run's config (Tiny-Base DDPM, Large DDIM)")
    p.add_argument("--steps", type=int, help="sampling steps (DDPM: 1000; DDIM: e.g. 60)")
    p.add_argument("--mode", choices=["sequential", "partial", "full"],
                   help="tokens denoised at once: 1, --chunk-size (paper default 256), or all")
    p.add_argument("--chunk-size", type=int, help="tokens per chunk in partial mode")
    p.add_argument("--permutation", type=int,
                   help="use this permutation state for every model (default: uniform random per model)")
    p.add_argument("--task", help="task vector as a 0/1 string (task-conditioned generators only), e.g. 0111110110")
    p.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda[:N]")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="bf16 autocast for the networks (the official sampler's precision) or fp32; auto (default): "
                   "bf16 where the device runs it natively (CUDA, CPUs with AMX/AVX512-BF16), else fp32")
    p.add_argument("--bf16", dest="precision", action="store_const", const="bf16", help="same as --precision bf16")
    add_threads_arg(p)
    return run_cli(_generate, p, argv)


def _generate(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    device = resolve_device(args.device)
    if args.num < 1:
        raise RPGInputError(f"--num {args.num}: must be >= 1")
    model, tok, meta = load_run(args.run, device)
    bf16 = use_bf16(args.precision, device)
    task = None
    if model.cfg.condition.task != "none":
        if not args.task:
            raise RPGInputError(f"{args.run}: this generator is task-conditioned; pass --task")
        task = parse_task(args.task, model.cfg.condition.task_dim).expand(args.num, -1)
    elif args.task:
        raise RPGInputError(f"--task: the generator in {args.run} has no task condition")
    perm = None
    if args.permutation is not None:
        if not 0 <= args.permutation < meta["num_permutations"]:
            raise RPGInputError(f"--permutation {args.permutation}: must be in 0..{meta['num_permutations'] - 1}")
        perm = torch.full((args.num,), args.permutation, dtype=torch.long)
    g = torch.Generator().manual_seed(args.seed)
    if perm is None and model.inputs.permutation is not None and task is None:
        perm = torch.randint(0, meta["num_permutations"], (args.num,), generator=g)
    tokens = sample_tokens(model, args.num, sampler=args.sampler, steps=args.steps, mode=args.mode,
                           chunk_size=args.chunk_size, permutation=perm, task=task, generator=g, device=device,
                           autocast=bf16, progress=True)
    write_generated(args.out, tok, tokens, meta, run=str(args.run), seed=args.seed,
                    sampler=args.sampler or model.cfg.diffusion.sampler, steps=args.steps,
                    precision="bf16" if bf16 else "fp32",
                    permutation=perm, task=args.task)


def write_generated(out: str | Path, tok: ParamTokenizer, tokens: torch.Tensor, meta: dict, **info) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)   # the manifest marks a complete folder: written last
    files = []
    perm = info.pop("permutation", None)
    task = info.pop("task", None)
    for i in range(tokens.shape[0]):
        path = out / f"generated_{i:03d}.safetensors"
        io.save_state_dict(path, tok.detokenize(tokens[i]))
        files.append({"file": path.name, "permutation": None if perm is None else int(perm[i]), "task": task})
    zoo = meta.get("zoo_manifest") or {}
    io.write_json(out / "manifest.json", {
        "format": "rpg-generated/1", "architecture": zoo.get("architecture"), "dataset": zoo.get("dataset"),
        "substitute_for": zoo.get("substitute_for"), **info, "files": files})
    return [out / f["file"] for f in files]


if __name__ == "__main__":
    raise SystemExit(main())
