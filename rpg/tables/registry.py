"""The one registry of tables and figures: a table id (= `rpg table BUILDER`, = config `tables.<id>.builder`)
bound to its builder, its plot, the paper CSV's key, the row fields it needs and the paper claims judged from its
CSV (rpg.tables.claims reports them).

A builder module registers with the decorator, next to the builder:

    @register_table("table7", plot=plot_table7, description="...", paper_columns=TABLE7_PAPER,
                    needs=("groups",), claims=(Claim("tab7", ...),))
    def table7(inputs: TableInputs) -> pd.DataFrame: ...

A figure whose CSV another rule writes (Fig. 8: rpg memory-study) registers with `register_figure`, so its
claims sit in the same registry. rpg/tables/__init__.py imports every registering module once; this module imports
none of them (no cycle).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from rpg.errors import RPGInputError

# What a row can carry besides its label and evaluation (`rpg table` options, one value per --metrics file).
ROW_INPUTS = ("runs", "zoos", "generated", "groups")
# What a table's row column holds of its configured rows, so the workflow can say which labels it expects:
# each row's label; each group once (one CSV row per group); each row's group (one CSV row per row, so a group
# is expected as many times as it has rows).
EXPECT_FROM = ("label", "group", "row group")


@dataclass(frozen=True)
class TableSpec:
    id: str
    table: Callable[..., Any] | None                 # TableInputs -> DataFrame; None: another rule writes the CSV
    plot: Callable[..., Any] | None                  # (TableInputs, DataFrame) -> matplotlib Figure
    description: str                                 # listed by `rpg table --help`
    paper_key: str = "label"                         # the paper CSV's row-name column
    paper_columns: tuple[str, ...] = ()              # columns it must have (empty: every column)
    needs: tuple[str, ...] = ()                      # row inputs (ROW_INPUTS) the builder cannot do without
    claims: tuple[Any, ...] = ()                     # rpg.tables.judging.Claim objects judged from its CSV
    domain: tuple[str, str] | None = None            # (domain, metric) every row's eval file must be of
    row_column: str | None = None                    # the CSV column holding each row's label (--labels)
    unique_rows: bool = True                         # one CSV row per label (else several, e.g. per statistic)
    extra_rows: tuple[tuple[str, str], ...] = ()     # (column, value): rows that stand for no configured row
    expect_from: str = "label"                       # what the row column holds of the config rows (EXPECT_FROM)
    row_identity: tuple[str, ...] = ()               # columns naming a row for the duplicate check (row_column)

    @property
    def buildable(self) -> bool:
        return self.table is not None


_TABLES: dict[str, TableSpec] = {}
TABLES: Mapping[str, TableSpec] = MappingProxyType(_TABLES)   # read-only view, in registration order


def _add(spec: TableSpec) -> None:
    if spec.id in _TABLES:
        raise ValueError(f"table {spec.id!r} registered twice")
    unknown = [n for n in spec.needs if n not in ROW_INPUTS]
    if unknown:
        raise ValueError(f"table {spec.id!r}: unknown row input(s) {unknown} (known: {', '.join(ROW_INPUTS)})")
    if spec.expect_from not in EXPECT_FROM:
        raise ValueError(f"table {spec.id!r}: expect_from {spec.expect_from!r} (known: {', '.join(EXPECT_FROM)})")
    for claim in spec.claims:
        if spec.id not in claim.tables:
            raise ValueError(f"table {spec.id!r}: claim {claim.id!r} does not read it (tables {claim.tables})")
    _TABLES[spec.id] = spec


def register_table(table_id: str, *, plot: Callable[..., Any], description: str, paper_key: str = "label",
                   paper_columns: tuple[str, ...] = (), needs: tuple[str, ...] = (),
                   claims: tuple[Any, ...] = (), domain: tuple[str, str] | None = None,
                   row_column: str | None = None, unique_rows: bool = True,
                   extra_rows: tuple[tuple[str, str], ...] = (), expect_from: str = "label",
                   row_identity: tuple[str, ...] = ()) -> Callable:
    """Decorator: register the decorated function as the builder of `table_id` (returned unchanged).
    `domain`: the (domain, metric) its eval files must be of; `row_column`: the CSV column with the row labels,
    so the claims can check that the table has exactly the configured rows; `extra_rows`: (column, value) of
    rows that are no configured row (an original-checkpoints row); `expect_from`: what the row column holds
    (EXPECT_FROM); `row_identity`: the columns that tell rows apart when the row column alone does not."""

    def register(builder: Callable[..., Any]) -> Callable[..., Any]:
        _add(TableSpec(table_id, builder, plot, description, paper_key, tuple(paper_columns), tuple(needs),
                       tuple(claims), domain, row_column, unique_rows, tuple(extra_rows), expect_from,
                       tuple(row_identity)))
        return builder

    return register


def register_figure(figure_id: str, *, description: str, claims: tuple[Any, ...] = (), row_column: str | None = None,
                    row_identity: tuple[str, ...] = ()) -> None:
    """Register a figure whose CSV another rule writes (no builder here), for the claims judged from it;
    `row_column`/`row_identity` as for register_table (its rows are checked for duplicates)."""
    _add(TableSpec(figure_id, None, None, description, claims=tuple(claims), row_column=row_column,
                   row_identity=tuple(row_identity)))


def get_table(table_id: str) -> TableSpec:
    """The buildable table `table_id` (one-line error naming the known ones)."""
    spec = _TABLES.get(table_id)
    if spec is None or not spec.buildable:
        raise RPGInputError(f"table builder {table_id!r}: unknown (known: {', '.join(builder_ids())})")
    return spec


def builder_ids() -> list[str]:
    return [k for k, s in _TABLES.items() if s.buildable]


def all_claims() -> tuple[Any, ...]:
    """Every registered claim, in registration order."""
    return tuple(c for s in _TABLES.values() for c in s.claims)
