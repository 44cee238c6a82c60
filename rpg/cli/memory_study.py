"""`rpg memory-study`: training memory vs generated parameters of RPG and the Table 8 baselines (paper Fig. 8).

    python -m rpg memory-study --out results/mini/fig8.json [--csv ...] [--plot ...] \\
        [--sizes cnn_m_mini,resnet18_mini,...] [--methods rpg:base,pdiff:original,...] [--cap-gib 20] [--steps 2]

Each (method, preset, size) is the method's own fit (`rpg train`'s), stopped after --steps steps of every stage, in
a fresh process under the memory cap (rpg.memory_study). --methods '' with --rpg-generate: the untrained
generation alone (no CSV or plot).
"""

from __future__ import annotations

import argparse
import json

from rpg.cli.common import int_in, run, threads_arg
from rpg.errors import RPGInputError
from rpg.memory_study import METHODS, SIZES, machine_memory_gib, run_study


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rpg memory-study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated ids, ascending (known: "
                   f"{', '.join(SIZES)})")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated METHOD:PRESET pairs")
    mem_gib = machine_memory_gib()
    p.add_argument("--cap-gib", type=float, default=mem_gib,
                   help=f"memory cap per run in GiB (default: this machine's memory, {mem_gib:.1f})")
    p.add_argument("--steps", type=int_in(1), default=2, help="optimisation steps per training stage (default 2)")
    p.add_argument("--batch", type=int_in(1), default=1, help="checkpoints per step (default 1)")
    p.add_argument("--timeout", type=int_in(1), default=900,
                   help="seconds per run before it is recorded as timeout")
    p.add_argument("--threads", type=threads_arg, help="OMP threads of each child (default: torch's choice)")
    p.add_argument("--rpg-generate", metavar="SIZE:PRESET",
                   help="also sample one model of SIZE from an untrained RPG generator of PRESET in partial mode "
                        "(e.g. convnext_large:large), --steps DDIM steps, time projected to the preset's steps; "
                        "with --methods '' it is the only run (no CSV or plot)")
    p.add_argument("--rpg-chunk", type=int_in(1), metavar="N",
                   help="tokens per denoising chunk of --rpg-generate (default: the preset's diffusion.chunk_size, "
                        "256; the recurrent pass keeps that segment length)")
    p.add_argument("--out", required=True, metavar="JSON", help="the study (format rpg-memory/1)")
    p.add_argument("--csv", help="the records as CSV (default: --out with .csv)")
    p.add_argument("--plot", help="PNG (default: --out with .png)")
    return p


def _main(args: argparse.Namespace) -> None:
    from rpg.methods import METHODS as REGISTRY
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise RPGInputError(f"--sizes: unknown {', '.join(unknown)} (known: {', '.join(SIZES)})")
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in methods if m.partition(":")[0] not in REGISTRY]
    if bad:
        raise RPGInputError(f"--methods: unknown method in {', '.join(bad)} (known: {', '.join(REGISTRY)})")
    if args.rpg_generate and args.rpg_generate.partition(":")[0] not in SIZES:
        raise RPGInputError(f"--rpg-generate {args.rpg_generate}: unknown size (known: {', '.join(SIZES)})")
    from rpg.formats import check_output_file
    for flag, path in (("--out", args.out), ("--csv", args.csv), ("--plot", args.plot)):
        if path:
            check_output_file(path, flag)          # before hours of measuring
    study = run_study(args.out, sizes, methods, int(args.cap_gib * 2 ** 30), args.steps, args.batch, args.timeout,
                      args.threads, args.rpg_generate, args.rpg_chunk, args.csv, args.plot,
                      log=lambda line: print(line, flush=True))
    print(json.dumps({k: study[k] for k in ("largest_fitting_params", "rpg_ratio")}, indent=2))


def main(argv: list[str] | None = None) -> int:
    return run(_main, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
