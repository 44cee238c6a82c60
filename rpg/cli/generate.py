"""`rpg generate`: argument parsing for sampling (rpg.generator.sampling)."""

from __future__ import annotations

import argparse

import torch

from rpg import io
from rpg.cli.common import add_threads_arg, int_in, resolve_device, seed_arg, set_threads, use_bf16
from rpg.cli.common import run as run_cli
from rpg.errors import RPGInputError
from rpg.generator.sampling import load_run, resolve_sampling, sample_tokens, write_generated


def parse_task(bits: str, dim: int) -> torch.Tensor:
    if len(bits) != dim or set(bits) - {"0", "1"}:
        raise RPGInputError(f"--task {bits!r}: expected {dim} characters of 0/1")
    return torch.tensor([[float(b) for b in bits]])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="rpg generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder written by `rpg train` (holds generator.safetensors)")
    p.add_argument("--num", type=int_in(1), default=10, help="how many models to generate (default 10, as the paper)")
    p.add_argument("--out", required=True, help="output folder: generated_000.safetensors ... + manifest.json")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="random seed in 0..2**63-1; the same seed gives identical weights on CPU")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], help="default: the run's config (Tiny-Base DDPM, Large DDIM)")
    p.add_argument("--steps", type=int_in(1), help="sampling steps, 1..diffusion.num_train_timesteps (DDPM runs all "
                   "of them, 1000; DDIM: e.g. 60)")
    p.add_argument("--mode", choices=["sequential", "partial", "full"],
                   help="tokens denoised at once: 1, --chunk-size (paper default 256), or all")
    p.add_argument("--chunk-size", type=int_in(1), help="tokens per chunk in partial mode (>= 1)")
    p.add_argument("--permutation", type=int_in(0),
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
    io.check_output_dir(args.out, swapped=True)        # before sampling, which may take long
    model, tok, meta = load_run(args.run, device)
    # what will actually run (run defaults filled in, the rest checked against this run's config)
    plan = resolve_sampling(model.cfg, args.sampler, args.steps, args.mode, args.chunk_size)
    bf16 = use_bf16(args.precision, device)
    task = None
    if model.cfg.condition.task != "none":
        if not args.task:
            raise RPGInputError(f"{args.run}: this generator is task-conditioned; pass --task")
        task = parse_task(args.task, model.cfg.condition.task_dim).expand(args.num, -1)
    elif args.task:
        raise RPGInputError(f"--task: the generator in {args.run} has no task condition")
    perm = None
    if args.permutation is not None and model.inputs.permutation is None:
        raise RPGInputError(f"--permutation: the generator in {args.run} has no permutation state")
    if args.permutation is not None:
        if not 0 <= args.permutation < meta["num_permutations"]:
            raise RPGInputError(f"--permutation {args.permutation}: must be in 0..{meta['num_permutations'] - 1}")
        perm = torch.full((args.num,), args.permutation, dtype=torch.long)
    g = torch.Generator().manual_seed(args.seed)
    if perm is None and model.inputs.permutation is not None and task is None:
        perm = torch.randint(0, meta["num_permutations"], (args.num,), generator=g)
    tokens = sample_tokens(model, args.num, **plan, permutation=perm, task=task, generator=g, device=device,
                           autocast=bf16, progress=True)
    write_generated(args.out, tok, tokens, meta, run=str(args.run), seed=args.seed, **plan,
                    precision="bf16" if bf16 else "fp32",
                    permutation=perm, task=None if task is None else [int(b) for b in args.task])

if __name__ == "__main__":
    raise SystemExit(main())
