"""`rpg table`: argument parsing for the table builders (rpg.tables.builders, registered in rpg.tables.registry)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from rpg.cli.common import run
from rpg.errors import RPGInputError
from rpg.tables.builders import build_table, load_inputs
from rpg.tables.registry import TABLES, builder_ids

# A group name is printed in a table cell and joins the paper's CSV: one line of printable text.
GROUP_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]+$")


def build_parser() -> argparse.ArgumentParser:
    names = builder_ids()
    p = argparse.ArgumentParser(
        prog="rpg table",
        description="Assemble a paper table (CSV + PNG plot) from `rpg evaluate` JSON files, one file per row.",
        epilog="builders:\n" + "\n".join(f"  {k:10s} {TABLES[k].description}" for k in names),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("table", metavar="BUILDER", choices=names, help="which table builder: " + ", ".join(names))
    p.add_argument("--metrics", nargs="+", required=True, metavar="JSON",
                   help="evaluation files (format rpg-eval/1), one per row, in the printed row order")
    p.add_argument("--labels", nargs="+", metavar="NAME",
                   help="row names as the paper prints them (e.g. ResNet-18), one per --metrics file; display "
                        "only, and they join our rows to the paper's. Default: the metrics file names without .json")
    p.add_argument("--paper", metavar="CSV",
                   help="the paper's numbers (resources/paper/<table>.csv), one row per label (column "
                        "`architecture` for table1, `embedding` for table9/10/14, `label` otherwise); their "
                        "columns appear as paper_*. "
                        "Without it table1's paper_* columns stay empty and the other builders have none")
    p.add_argument("--runs", nargs="+", metavar="RUN",
                   help="the run folder of each row's generator (`rpg train --out`), one per --metrics file: "
                        "builders that report training cost, generator size or settings read config.json, "
                        "meta.json and the generator's header there")
    p.add_argument("--zoos", nargs="+", metavar="DIR",
                   help="the zoo folder of each row (`rpg collect --out`), one per --metrics file: fig6/fig10 "
                        "read the original checkpoints there, table15 its seeds")
    p.add_argument("--generated", nargs="+", metavar="DIR",
                   help="the generated folder of each row (`rpg generate --out`), one per --metrics file: "
                        "fig6/fig10 read the generated checkpoints there")
    p.add_argument("--groups", nargs="+", metavar="NAME",
                   help="the group of each row as printed, one per --metrics file: the generator a sampling "
                        "variant samples (table7, table13), the model of a token size (table6), the "
                        "architecture column (table8)")
    p.add_argument("--memory", metavar="JSON",
                   help="a memory study (rpg memory-study, format rpg-memory/1): table8 reports what happened "
                        "when each method trained at a column's paper size (see --memory-size)")
    p.add_argument("--memory-size", nargs="+", default=[], metavar="COLUMN=SIZE",
                   help="the study's size id of a column's paper architecture, e.g. 'ResNet-18=resnet18'")
    p.add_argument("--scale", default="mini", help="scale name written into the `scale` column (default: mini)")
    p.add_argument("--title", help="plot title (default: the builder's, with scale and datasets)")
    p.add_argument("--out", required=True, metavar="CSV", help="output CSV (written atomically)")
    p.add_argument("--plot", metavar="PNG", help="output plot (default: --out with .png)")
    return p


def _check_output(option: str, path: Path) -> None:
    """Before anything is built: an output must be a file in a folder (existing or creatable), so that a bad
    --plot never leaves the CSV written alone."""
    if path.is_dir():
        raise RPGInputError(f"{option} {path}: is a folder, give a file path")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise RPGInputError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RPGInputError(f"{option} {path}: cannot write in {parent}")


def _main(args: argparse.Namespace) -> None:
    pairs = [pair.rpartition("=")[::2] for pair in args.memory_size]      # 'ResNet-18=resnet18' -> (col, size)
    for pair, (column, size) in zip(args.memory_size, pairs):
        if not (column and size):
            raise RPGInputError(f"--memory-size: expected COLUMN=SIZE, got {pair!r}")
    for group in args.groups or []:
        if not GROUP_PATTERN.match(group):
            raise RPGInputError(f"--groups: {group!r} is not a printable one-line name")
    sizes = dict(pairs)
    plot = args.plot or Path(args.out).with_suffix(".png")
    for option, path in (("--out", args.out), ("--plot", plot)):
        _check_output(option, Path(path))
    inputs = load_inputs(args.table, args.metrics, args.labels, args.paper, args.scale, args.title, args.runs,
                         args.memory, sizes, zoos=args.zoos, generated=args.generated, groups=args.groups)
    table = build_table(args.table, inputs, args.out, plot)
    print(f"wrote {args.out} ({len(table)} rows) and {plot}")


def main(argv: list[str] | None = None) -> int:
    return run(_main, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
