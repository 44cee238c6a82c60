"""`rpg generate`: sample new weights from a fitted run into a generated set (rpg-generated/1).

The run's method (RUN/run.json) does the sampling (rpg.methods.generate). `--conditions` picks what the models
are conditioned on; a list of conditions puts each one's models in its own subfolder (perm_NNN, task_NNNN), and
the manifest lists every file with its permutation and task. The set is written into a temporary folder and
swapped in whole, so a rerun never leaves stale files; an --out holding a zoo or a run is refused.

    rpg generate --run RUN_DIR --out GEN_DIR --num 10 --seed 0 [--sampler ddim --steps 60]
    rpg generate --run RUN_DIR --out GEN_DIR --conditions permutations        # every permutation state
    rpg generate --run RUN_DIR --out GEN_DIR --conditions tasks:314,482       # a task-conditioned run
"""

from __future__ import annotations

import argparse

from rpg.cli.common import add_threads_arg, int_in, seed_arg
from rpg.cli.common import run as run_cli
from rpg.errors import RPGInputError
from rpg.methods import ConditionSpec, SampleOptions, generate
from rpg.methods.base import SPEC_HELP
from rpg.runtime import resolve_device, set_threads


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="rpg generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder written by `rpg train` (its run.json names the method)")
    p.add_argument("--num", type=int_in(1), default=10,
                   help="models to generate per condition (default 10, as the paper)")
    p.add_argument("--out", required=True,
                   help="output folder: [condition/]generated_NNN.safetensors + manifest.json; replaced whole")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="random seed in 0..2**63-1; the same seed gives identical weights on CPU. "
                   "Every condition uses it")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], help="default: the run's config (Tiny-Base DDPM, Large DDIM)")
    p.add_argument("--steps", type=int_in(1),
                   help="sampling steps, 1..diffusion.num_train_timesteps (default: the run's config for its own "
                   "sampler; DDPM 1000, DDIM 60 otherwise)")
    p.add_argument("--mode", choices=["sequential", "partial", "full"],
                   help="tokens denoised at once: 1, --chunk-size (paper default 256), or all (default: the run's)")
    p.add_argument("--chunk-size", type=int_in(1),
                   help="tokens per chunk in partial mode, >= 1 (default: the run's config)")
    p.add_argument("--conditions", help=SPEC_HELP)
    p.add_argument("--permutation", type=int_in(0),
                   help="same as --conditions permutation:K: this permutation state for every model "
                   "(default: uniform random per model)")
    p.add_argument("--task", help="same as --conditions task:BITS: a task vector as a 0/1 string (task-conditioned "
                   "generators only; bit i = 1 makes class i positive), e.g. 0111110110")
    p.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda[:N]")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="bf16 autocast for the networks (the official sampler's precision) or fp32; auto (default): "
                   "bf16 where the device runs it natively (CUDA, CPUs with AMX/AVX512-BF16), else fp32")
    p.add_argument("--bf16", dest="precision", action="store_const", const="bf16", help="same as --precision bf16")
    add_threads_arg(p)
    return run_cli(_generate, p, argv)


def condition_spec(args: argparse.Namespace) -> ConditionSpec:
    """--conditions, or one of its single-condition shortcuts --permutation / --task."""
    given = [f for f, v in (("--conditions", args.conditions), ("--permutation", args.permutation),
                            ("--task", args.task)) if v is not None]
    if len(given) > 1:
        raise RPGInputError(f"{' and '.join(given)}: give only one of --conditions, --permutation, --task")
    if args.permutation is not None:
        return ConditionSpec.parse(f"permutation:{args.permutation}", where="--permutation")
    if args.task is not None:
        return ConditionSpec.parse(f"task:{args.task}", where="--task")
    return ConditionSpec.parse(args.conditions or "none")


def _generate(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    device = resolve_device(args.device)
    spec = condition_spec(args)
    options = SampleOptions(sampler=args.sampler, steps=args.steps, mode=args.mode, chunk_size=args.chunk_size,
                            precision=args.precision, progress=True)
    files = generate(args.run, args.out, args.num, args.seed, spec, options, device)
    print(f"wrote {len(files)} models to {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
