"""`rpg claims`: argument parsing for the claims report (rpg.tables.claims)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rpg.cli.common import run
from rpg.errors import RPGInputError
from rpg.tables.claims import CLAIMS, evaluate_claims, read_table, write_claims


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
    p.add_argument("--tables", nargs="+", required=True, metavar="CSV",
                   help="table CSVs, each named by its table (e.g. results/table1.csv); known: " + ", ".join(known))
    p.add_argument("--out", required=True, metavar="CSV", help="claims CSV (written atomically)")
    p.add_argument("--md", metavar="MD", help="claims as Markdown (default: --out with .md)")
    return p


def _main(args: argparse.Namespace) -> None:
    known = {n for c in CLAIMS for n in c.tables}
    tables = {}
    for path in map(Path, args.tables):
        if path.stem not in known:
            raise RPGInputError(f"--tables {path}: no claim reads a table named {path.stem!r} "
                                f"(known: {', '.join(sorted(known))})")
        if not path.is_file():
            raise RPGInputError(f"--tables {path}: no such file")
        tables[path.stem] = read_table(path)
    report = evaluate_claims(tables)
    md = args.md or Path(args.out).with_suffix(".md")
    write_claims(report, args.out, md)
    counts = report["verdict"].value_counts().to_dict()
    print(f"wrote {args.out} and {md}: {len(report)} claims, " + ", ".join(f"{v} {k}" for k, v in counts.items()))


def main(argv: list[str] | None = None) -> int:
    return run(_main, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
