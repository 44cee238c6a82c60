"""The claims report: which of the paper's claims hold, judged by code from the table CSVs (no number typed here).

Each claim (rpg.tables.judging.Claim) is defined next to the builder of the table it reads and registered with it
(rpg.tables.registry); `CLAIMS` is every registered claim, in the report's order (`REPORT_ORDER`).
`write_claims` writes `claims.csv` (one row per claim) and `claims.md` (the same as a Markdown table, with the rules
and links to the tables).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pandas as pd

from rpg.errors import RPGInputError
from rpg.io import atomic_path
from rpg.tables.judging import (  # noqa: F401  (re-exported: the report's vocabulary)
    AS_GOOD_WITHIN,
    BEST_WITHIN,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    MATCH_WITHIN,
    VERDICTS,
    Claim,
    Finding,
    Missing,
    NotANumber,
    num,
)
from rpg.tables.registry import TABLES, all_claims

CLAIM_COLUMNS = ("id", "claim", "tables", "scale", "substitute", "paper", "ours", "verdict", "rule")

# The order the report lists the claims in (the order they were first published in results/claims.csv).
REPORT_ORDER = ("tab1", "tab2", "tab3", "tab4a", "tab4b", "fig4", "tab5", "tab6", "tab7", "tab8", "fig8", "tab9",
                "tab15", "tab13", "fig9")


def _in_report_order(claims: tuple[Claim, ...]) -> tuple[Claim, ...]:
    by_id = {c.id: c for c in claims}
    if len(by_id) != len(claims) or set(by_id) != set(REPORT_ORDER):
        raise AssertionError(f"registered claims {sorted(by_id)} are not the report's {sorted(REPORT_ORDER)}")
    return tuple(by_id[i] for i in REPORT_ORDER)


# rpg/tables/__init__.py has imported every registering module before this module runs
CLAIMS: tuple[Claim, ...] = _in_report_order(all_claims())


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------

def _provenance(tables: dict[str, pd.DataFrame], scale: str | None = None) -> tuple[str, str]:
    """(scales, substitutes) named by the tables; `scale` stands in for a table without a scale column (a benchmark
    such as Fig. 8 records machine measurements, not a scale)."""
    scales, subs = [], []
    for df in tables.values():
        if "scale" in df.columns:
            scales += [s for s in df["scale"] if s]
        elif scale:
            scales.append(scale)
        for col in ("substitute", "mini_substitute", "dataset", "substitute_for"):
            if col in df.columns:
                subs += [s for s in df[col] if s]
                break
    return ", ".join(dict.fromkeys(scales)), "; ".join(dict.fromkeys(subs))


def row_problems(name: str, df: pd.DataFrame, expected: list[str] | None = None) -> str | None:
    """What is wrong with the rows of table `name` (None: nothing): a judge that iterates rows would otherwise
    judge fewer rows, or one twice, and still hold. Checks the labels in the table's row column (registered),
    leaving out its extra rows (no configured row): duplicates always (of the row identity where registered),
    and against `expected` (the configured rows' labels; a label given k times must be there k times in a table
    of unique rows) missing and unexpected ones."""
    spec = TABLES.get(name)
    if spec is None or spec.row_column is None:
        return None
    if spec.row_column not in df.columns:
        # without expectations there is nothing to count the rows against (the judge names what it misses)
        return f"{name}: no column {spec.row_column!r}" if expected is not None else None
    extra = pd.Series(False, index=df.index)
    for col, value in spec.extra_rows:
        if col in df.columns:
            extra |= df[col] == value
    rows = df[~extra]
    labels = list(rows[spec.row_column])
    identity = spec.row_identity or (spec.row_column,)
    if spec.unique_rows and all(c in rows.columns for c in identity):
        keys = [" / ".join(k) for k in zip(*(rows[c] for c in identity))]
        twice = [key for key, k in Counter(keys).items() if k > 1]
        if twice:
            return f"{name}: duplicate rows: {', '.join(twice)}"
    if expected is None:
        return None
    have, want = Counter(labels), Counter(expected)
    missing = [label for label in want if have[label] < want[label]]
    if missing:
        return f"{name}: rows missing: {', '.join(missing)}"
    unexpected = [label for label in have if label not in want or (spec.unique_rows and have[label] > want[label])]
    if unexpected:
        return f"{name}: unexpected rows: {', '.join(unexpected)}"
    return None


def evaluate_claims(tables: dict[str, pd.DataFrame], claims: tuple[Claim, ...] = CLAIMS,
                    scale: str | None = None, expect: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """One row per claim (CLAIM_COLUMNS). `tables`: table name -> CSV as strings; absent names are not built.
    `scale`: the configured scale, for tables whose CSV names none. `expect`: table name -> the labels of the rows
    it must have (the configured rows); a claim reading a table with other rows is inconclusive."""
    expect = expect or {}
    rows = []
    for c in claims:
        have = {name: tables[name] for name in c.tables if name in tables}
        scale_used, sub = _provenance(have, scale)
        missing = [n for n in c.tables if n not in tables]
        problems = [p for p in (row_problems(n, df, expect.get(n)) for n, df in have.items()) if p]
        if missing:
            f = Finding("not built: " + ", ".join(f"results/{n}.csv" for n in missing), "", INCONCLUSIVE)
        elif problems:
            f = Finding("cannot judge: " + "; ".join(problems), "", INCONCLUSIVE)
        else:
            try:
                f = c.judge(have)
            except (Missing, KeyError) as e:
                f = Finding(f"cannot judge: {e}", "", INCONCLUSIVE)
            except NotANumber as e:
                f = Finding(f"not a number: {e}", "", FAILS)
        if f.verdict not in VERDICTS:
            raise AssertionError(f"claim {c.id}: verdict {f.verdict!r}")
        rows.append({"id": c.id, "claim": c.claim, "tables": " ".join(c.tables), "scale": scale_used,
                     "substitute": sub, "paper": f.paper, "ours": f.ours, "verdict": f.verdict, "rule": c.rule})
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


def read_tables(folder: str | os.PathLike, claims: tuple[Claim, ...] = CLAIMS) -> dict[str, pd.DataFrame]:
    """Every table CSV the claims read that exists in `folder`."""
    folder = Path(folder)
    names = dict.fromkeys(n for c in claims for n in c.tables)
    return {n: read_table(folder / f"{n}.csv") for n in names if (folder / f"{n}.csv").is_file()}


def markdown(report: pd.DataFrame, link_prefix: str = "") -> str:
    counts = report["verdict"].value_counts()
    lines = ["# Which of the paper's claims hold", "",
             f"Generated by `rpg claims` from the table CSVs; {len(report)} claims: "
             + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS) + ".", "",
             "| claim | paper | ours | verdict | scale | tables |", "|---|---|---|---|---|---|"]
    for _, r in report.iterrows():
        links = ", ".join(f"[{n}]({link_prefix}{n}.csv)" for n in r["tables"].split())
        cells = [r["claim"], r["paper"] or "n/a", r["ours"], f"**{r['verdict']}**", r["scale"] or "n/a", links]
        lines.append("| " + " | ".join(str(x).replace("|", "/") for x in cells) + " |")
    lines += ["", "## Rules", ""]
    lines += [f"- **{r['claim']}**: {r['rule']}." for _, r in report.iterrows()]
    subs = [(r["claim"], r["substitute"]) for _, r in report.iterrows() if r["substitute"]]
    if subs:
        lines += ["", "## What each scale substitutes", ""]
        lines += [f"- {claim}: {sub}" for claim, sub in subs]
    return "\n".join(lines) + "\n"


README_BEGIN, README_END = "<!-- claims:begin (rpg claims --readme) -->", "<!-- claims:end -->"


def readme_summary(report: pd.DataFrame, link: str = "results/claims.md") -> str:
    """The claims as a short list for the README's table index: verdict, claim, ours vs the paper."""
    counts = report["verdict"].value_counts()
    scales = sorted({s for s in report["scale"] if s})
    lines = [f"Claims summary, generated by `rpg claims --readme` from the table CSVs ([{link}]({link}); scale "
             f"{', '.join(scales) or 'n/a'}): " + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS) + ".", ""]
    for _, r in report.iterrows():
        paper = f"; paper: {r['paper']}" if r["paper"] else ""
        lines.append(f"- **{r['verdict']}**: {r['claim']} (ours: {r['ours']}{paper})")
    return "\n".join(lines)


def update_readme(path: str | os.PathLike, summary: str) -> None:
    """Replace what stands between the README's claims markers with `summary` (atomic rewrite)."""
    path = Path(path)
    text = path.read_text()
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise RPGInputError(f"{path}: no claims block (a line {README_BEGIN!r}, later a line {README_END!r})")
    new = text[:begin + len(README_BEGIN)] + "\n" + summary.rstrip("\n") + "\n" + text[end:]
    with atomic_path(path) as tmp:
        tmp.write_text(new)


def read_claims(path: str | os.PathLike) -> pd.DataFrame:
    """A claims CSV as `write_claims` wrote it."""
    if not Path(path).is_file():
        raise RPGInputError(f"{path}: no such claims CSV (build it: snakemake results/claims.csv)")
    report = read_table(path)
    if list(report.columns) != list(CLAIM_COLUMNS):
        raise RPGInputError(f"{path}: not a claims CSV (columns {', '.join(CLAIM_COLUMNS)})")
    return report


def write_claims(report: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike) -> None:
    if list(report.columns) != list(CLAIM_COLUMNS):
        raise RPGInputError(f"{csv_path}: a claims report needs the columns {', '.join(CLAIM_COLUMNS)}")
    with atomic_path(csv_path) as tmp:
        report.to_csv(tmp, index=False)
    with atomic_path(md_path) as tmp:
        tmp.write_text(markdown(report))
