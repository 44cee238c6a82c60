"""`rpg claims`: argument parsing for the claims report (rpg.tables.claims)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rpg.cli.common import run
from rpg.errors import RPGInputError
from rpg.tables.claims import (
    CLAIMS,
    evaluate_claims,
    read_claims,
    read_table,
    readme_summary,
    update_readme,
    write_claims,
)
from rpg.tables.registry import TABLES


def build_parser() -> argparse.ArgumentParser:
    known = sorted({n for c in CLAIMS for n in c.tables})
    p = argparse.ArgumentParser(
        prog="rpg claims",
        description="Judge the paper's claims from the table CSVs: one row per claim with the paper's number, "
                    "ours, the scale, what it substitutes and a verdict (holds / does not hold / inconclusive) "
                    "from a rule stated in the report. A claim whose table is not given is inconclusive.",
        epilog="claims:\n" + "\n".join(f"  {c.id:6s} {c.claim} ({', '.join(c.tables)}): {c.rule}" for c in CLAIMS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tables", nargs="+", metavar="CSV",
                   help="table CSVs, each named by its table (e.g. results/table1.csv); known: " + ", ".join(known)
                        + ". Without --tables, --out is read (as `snakemake results/claims.csv` wrote it) and only "
                          "--readme is rewritten")
    p.add_argument("--out", required=True, metavar="CSV", help="claims CSV (written atomically)")
    p.add_argument("--md", metavar="MD", help="claims as Markdown (default: --out with .md)")
    p.add_argument("--scale", metavar="NAME",
                   help="the scale the tables were built at, reported for a table whose CSV has no scale column "
                        "(the Fig. 8 memory benchmark); the workflow passes its configured scale")
    p.add_argument("--expect", nargs="+", action="append", default=[], metavar="ITEM",
                   help="TABLE LABEL [LABEL ...]: the labels of the rows a table must have (its configured rows; "
                        "repeat per table). A claim reading a table with a row missing, duplicated or not "
                        "expected is inconclusive. Without it only duplicate rows are caught. Tables with a row "
                        "column: " + ", ".join(t for t, s in TABLES.items() if s.row_column))
    p.add_argument("--readme", metavar="MD",
                   help="also rewrite the claims summary between the claims markers of this file (the README's "
                        "table index), linking to --md")
    return p


def _readme(args: argparse.Namespace, report, md) -> None:
    link = Path(os.path.relpath(Path(md).resolve(), Path(args.readme).resolve().parent)).as_posix()
    update_readme(args.readme, readme_summary(report, link))
    print(f"rewrote the claims summary in {args.readme}")


def _expectations(items: list[list[str]]) -> dict[str, list[str]]:
    expect: dict[str, list[str]] = {}
    for table, *labels in items:
        spec = TABLES.get(table)
        if spec is None or spec.row_column is None:
            raise RPGInputError(f"--expect {table}: not a table with a row column (known: "
                                f"{', '.join(t for t, s in TABLES.items() if s.row_column)})")
        if not labels:
            raise RPGInputError(f"--expect {table}: give the labels of its rows after the table name")
        if table in expect:
            raise RPGInputError(f"--expect {table}: given twice")
        expect[table] = labels
    return expect


def _main(args: argparse.Namespace) -> None:
    md = args.md or Path(args.out).with_suffix(".md")
    if not args.tables:
        if not args.readme:
            raise RPGInputError("give --tables (to judge the claims) or --readme (to quote an existing --out)")
        _readme(args, read_claims(args.out), md)
        return
    known = {n for c in CLAIMS for n in c.tables}
    tables = {}
    for path in map(Path, args.tables):
        if path.stem not in known:
            raise RPGInputError(f"--tables {path}: no claim reads a table named {path.stem!r} "
                                f"(known: {', '.join(sorted(known))})")
        if not path.is_file():
            raise RPGInputError(f"--tables {path}: no such file")
        tables[path.stem] = read_table(path)
    report = evaluate_claims(tables, scale=args.scale, expect=_expectations(args.expect))
    write_claims(report, args.out, md)
    if args.readme:
        _readme(args, report, md)
    counts = report["verdict"].value_counts().to_dict()
    print(f"wrote {args.out} and {md}: {len(report)} claims, " + ", ".join(f"{v} {k}" for k, v in counts.items()))


def main(argv: list[str] | None = None) -> int:
    return run(_main, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
