"""`rpg table`: argument parsing for the table builders (rpg.tables.builders)."""

from __future__ import annotations

import argparse

from rpg.cli.common import run
from rpg.tables.builders import TABLES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rpg table",
        description="Assemble a paper table (CSV + PNG plot) from `rpg evaluate` JSON files. Tables: "
                    + "; ".join(f"{k}: {d}" for k, (_, d) in TABLES.items()),
    )
    p.add_argument("table", choices=sorted(TABLES), help="which paper table to build")
    p.add_argument("--metrics", nargs="+", required=True, metavar="JSON",
                   help="evaluation files (format rpg-eval/1), one per row, in the printed row order")
    p.add_argument("--labels", nargs="+", metavar="NAME",
                   help="row names as the paper prints them (e.g. ResNet-18), one per --metrics file; they "
                        "join our rows to the paper's. Default: the metrics file names without .json")
    p.add_argument("--paper", metavar="CSV",
                   help="the paper's numbers (resources/paper/<table>.csv); their columns appear as paper_*. "
                        "Without it the paper_* columns stay empty")
    p.add_argument("--scale", default="mini",
                   help="scale name written into the `scale` column (default: mini)")
    p.add_argument("--out", required=True, metavar="CSV", help="output CSV (written atomically)")
    p.add_argument("--plot", metavar="PNG", help="output plot (default: --out with .png)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()

    def _main(args: argparse.Namespace) -> None:
        TABLES[args.table][0](args)

    return run(_main, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
