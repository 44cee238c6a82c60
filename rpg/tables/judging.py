"""What a paper claim is, and the pieces its judge uses: a `Claim` names the table CSVs it reads, states its rule
in words, and has a judge, a function of those tables (read as strings, one DataFrame per name) that returns our
number, the paper's number (the same rule applied to the paper's columns the table carries, `paper_*`) and a
verdict:

- `holds`: the rule is met by our numbers;
- `does not hold`: it is not;
- `inconclusive`: the numbers cannot decide it (a table not built, a grid too coarse, a split result).

A claim is defined next to the builder of its table and registered with it (rpg.tables.registry); a judge reads
columns and the builder module's own constants for printed values, never row labels. rpg.tables.claims writes the
report. The tolerances are the constants below; a claim's rule text quotes them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE)

MATCH_WITHIN = 1.0        # points: generated average vs original mean (the paper's worst Tab. 1 row is -0.9)
AS_GOOD_WITHIN = 0.5      # points: "as good as" / "suffices" (a setting vs the reference setting)
BEST_WITHIN = 0.5         # points: "the best structure" may trail the most accurate one by this much


class Missing(Exception):
    """A table (or a row the rule needs) is not there: the claim is inconclusive, saying which."""


class NotANumber(Exception):
    """A cell the rule needs holds no finite number (blank, nan, inf, text): the claim does not hold, saying which."""


def needed(row: pd.Series, column: str, name: str) -> float:
    """The number in a cell the rule cannot do without (NotANumber naming the row and column otherwise)."""
    x = num(row.get(column))
    if x is None:
        raise NotANumber(f"row {name!r}: {column} is {row.get(column)!r}, not a number")
    return x


def one_of(row: pd.Series, column: str, name: str, values: tuple[str, ...]) -> str:
    """The value of a cell the rule reads as one of `values` (NotANumber naming the row and column otherwise:
    a blank or garbled cell is not a result)."""
    value = row.get(column)
    if value not in values:
        raise NotANumber(f"row {name!r}: {column} is {value!r}, not one of {', '.join(map(repr, values))}")
    return value


@dataclass(frozen=True)
class Finding:
    ours: str
    paper: str
    verdict: str


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    tables: tuple[str, ...]
    rule: str
    judge: Callable[[dict[str, pd.DataFrame]], Finding]


def num(value) -> float | None:
    """A CSV cell as a float; None for blanks, "fail", "OOM" and other text."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def matching(df: pd.DataFrame, **match) -> pd.DataFrame:
    """The rows whose columns equal the given values (Missing when a column is absent)."""
    mask = pd.Series(True, index=df.index)
    for col, value in match.items():
        if col not in df.columns:
            raise Missing(f"no column {col!r}")
        mask &= df[col] == value
    return df[mask]


def one(df: pd.DataFrame, what: str, **match) -> pd.Series:
    """The first row matching (Missing, naming `what`, when none does)."""
    found = matching(df, **match)
    if found.empty:
        raise Missing(f"no {what} row")
    return found.iloc[0]


def verdict(ok: bool) -> str:
    return HOLDS if ok else FAILS


def fmt(x: float | None, signed: bool = False) -> str:
    """A number in a finding's text: 2 decimals, "n/a" for none."""
    if x is None:
        return "n/a"
    return f"{x:+.2f}" if signed else f"{x:.2f}"
