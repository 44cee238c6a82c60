"""`rpg memory`: peak training memory vs token size (paper Fig. 7), JSON + PNG (rpg.generator.cost).

    python -m rpg memory --checkpoints ZOO --token-sizes 32 64 128 256 512 1024 --out fig7.json [--plot fig7.png]

Each token size d trains a few steps (recurrent width = d, same batch and diffusion batch) in a fresh process and
reports the peak memory training recorded (rpg.memory: CUDA allocated bytes, or the peak RSS delta on CPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rpg.cli.common import add_threads_arg, int_in
from rpg.cli.common import run as run_cli
from rpg.configs import parse_overrides
from rpg.generator.config import PRESETS
from rpg.runtime import resolve_device, set_threads


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rpg memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", required=True, help="the zoo folder the generator trains on")
    p.add_argument("--token-sizes", nargs="+", type=int_in(1), required=True, metavar="D",
                   help="token sizes to measure (each also sets recurrent.d_model=[D,D])")
    p.add_argument("--preset", default="mini", help=f"generator preset ({', '.join(sorted(PRESETS))}); default mini")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", default=[],
                   help="config override applied at every point (e.g. train.batch_size=4)")
    p.add_argument("--steps", type=int_in(1), default=2,
                   help="training steps per point (the optimizer state is allocated at the first; default 2)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda[:N]")
    p.add_argument("--out", required=True, metavar="JSON", help="output JSON (written atomically)")
    p.add_argument("--plot", metavar="PNG", help="output plot (default: --out with .png)")
    add_threads_arg(p)
    return p


def _main(args: argparse.Namespace) -> None:
    from rpg.formats import check_output_file
    from rpg.generator.cost import token_size_sweep, write_sweep
    check_output_file(args.out, "--out")
    check_output_file(args.plot or Path(args.out).with_suffix(".png"), "--plot")
    threads = set_threads(args.threads)
    device = resolve_device(args.device)
    result = token_size_sweep(args.checkpoints, args.token_sizes, args.preset, parse_overrides(args.set),
                              args.steps, device, threads)
    plot = args.plot or Path(args.out).with_suffix(".png")
    write_sweep(result, args.out, plot)
    for pt in result["points"]:
        if pt.get("oom"):
            print(f"d={pt['token_size']:>6}  out of memory")
            continue
        print(f"d={pt['token_size']:>6}  tokens {pt['num_tokens']:>6}  recurrent {pt['recurrent_params']:>11,}  "
              f"peak {pt['peak_delta_mib']:>9.1f} MiB  {pt['s_per_step']:.3f} s/step")
    print(f"wrote {args.out} and {plot} ({result['measure']})")


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
