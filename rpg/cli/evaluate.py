"""`rpg evaluate`: argument parsing for evaluation (rpg.evaluation)."""

from __future__ import annotations

import argparse
import math
import sys
import time

from rpg.cli.common import add_threads_arg, int_in
from rpg.errors import RPGInputError
from rpg.evaluation.evaluate import evaluate_zoo
from rpg.evaluation.similarity import PAPER_NOISE_LEVELS
from rpg.runtime import set_threads

# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from rpg.zoos.datasets import DATA_KEYS

    p = argparse.ArgumentParser(
        prog="rpg evaluate",
        description="Score a zoo's original checkpoints and (optionally) generated weights with the metric of "
        "the zoo's domain (classification: top-1 test accuracy), with the paper's summary "
        "(best/mean/min/median/std) and optional similarity analysis (App. B.4). "
        "Domain, architecture and dataset come from ZOO_DIR/manifest.json.",
    )
    p.add_argument("--zoo", required=True, metavar="ZOO_DIR", help="zoo folder written by `rpg collect`")
    p.add_argument(
        "--generated",
        metavar="GEN_DIR",
        help="generated set written by `rpg generate` (manifest.json; one subfolder per condition), "
        "a folder of weight files, or one weight file",
    )
    p.add_argument("--out", required=True, metavar="JSON", help="where to write the rpg-eval/1 metrics JSON")
    p.add_argument(
        "--similarity",
        action="store_true",
        help="add the IoU similarity analysis and the noise-added-originals baseline",
    )
    p.add_argument(
        "--noise-levels",
        default=",".join(str(x) for x in PAPER_NOISE_LEVELS),
        help="comma-separated noise levels of the baseline (default: %(default)s); empty = none",
    )
    p.add_argument(
        "--noise-repeats",
        type=int_in(0),
        default=5,
        help="noised copies per level, drawn from evenly spaced originals (default: 5)",
    )
    p.add_argument(
        "--batch-size",
        type=int_in(1),
        default=None,
        help="evaluation batch size (default: the zoo's eval_batch_size, else 1000)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    add_threads_arg(p)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="data settings (" + ", ".join(DATA_KEYS) + "); also from RPG_<KEY> environment variables",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _main(args: argparse.Namespace) -> None:
    from rpg.configs import parse_overrides
    from rpg.formats import check_output_file, write_eval
    from rpg.zoos.datasets import DATA_KEYS, DataConfig

    check_output_file(args.out)             # before the scoring, not after it
    overrides = parse_overrides(args.overrides)
    bad = [k for k in overrides if k not in DATA_KEYS]
    if bad:
        raise RPGInputError(f"--set {bad[0]}: not a data setting (known: {', '.join(DATA_KEYS)})")
    try:
        levels = tuple(float(x) for x in args.noise_levels.split(",") if x.strip())
    except ValueError:
        raise RPGInputError(
            f"--noise-levels {args.noise_levels!r}: expected comma-separated numbers"
        ) from None
    if any(not math.isfinite(x) or x < 0 for x in levels):
        raise RPGInputError("--noise-levels: levels must be finite and >= 0")
    if args.batch_size is not None and args.batch_size < 1:
        raise RPGInputError("--batch-size: must be >= 1")
    set_threads(args.threads)
    t0 = time.time()
    res = evaluate_zoo(
        args.zoo,
        args.generated,
        with_similarity=args.similarity,
        data_cfg=DataConfig.from_sources(overrides),
        device=args.device,
        batch_size=args.batch_size,
        noise_levels=levels,
        noise_repeats=args.noise_repeats,
        progress=False if args.no_progress else None,
    )
    write_eval(args.out, res)
    o, g = res["original"], res["generated"]
    print(
        f"original  n={o['n']}: best {o['best']:.2f} mean {o['mean']:.2f} min {o['min']:.2f} "
        f"median {o['median']:.2f} std {o['std']:.2f}"
    )
    if g:
        print(
            f"generated n={g['n']}: best {g['best']:.2f} mean {g['mean']:.2f} min {g['min']:.2f} "
            f"median {g['median']:.2f} std {g['std']:.2f}"
        )
    print(f"wrote {args.out} in {time.time() - t0:.1f} s")


def main(argv: list[str] | None = None) -> int:
    from rpg.cli.common import run

    return run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
