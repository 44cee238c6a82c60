"""A workflow config entry `tables.<id>` as `rpg table` needs it: each row's group from `groups` ({group: [row
ids]}), and the checks the JSON schema cannot express (a registered builder, the row inputs it needs, every row in
exactly one group), and the rows a claim must find in its CSV. The workflow (workflow/rules/params.smk) calls
these; they hold no paths."""

from __future__ import annotations

from typing import Any

from rpg.tables.registry import TABLES, builder_ids


def row_groups(spec: dict[str, Any]) -> list[str] | None:
    """Each row's group, in print order; None for an entry without `groups`."""
    groups = spec.get("groups")
    if not groups:
        return None
    of = {row: name for name, rows in groups.items() for row in rows}
    return [of[row] for row in spec["rows"]]


def config_problems(table_id: str, spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(config key, message) for everything wrong with the entry that the schema cannot see; [] when fine."""
    key = f"tables.{table_id}"
    builder = spec["builder"]
    if builder not in builder_ids():
        return [(f"{key}.builder", f"unknown builder {builder!r} (known: {', '.join(builder_ids())})")]
    problems = []
    groups = spec.get("groups") or {}
    if "groups" in TABLES[builder].needs and not groups:
        problems.append((f"{key}.groups", f"builder {builder} needs each row's group ({{group: [row ids]}})"))
    placed: dict[str, str] = {}
    for name, rows in groups.items():
        for row in rows:
            if row not in spec["rows"]:
                problems.append((f"{key}.groups.{name}", f"{row} is not one of the table's rows"))
            elif row in placed:
                problems.append((f"{key}.groups.{name}", f"{row} is also in group {placed[row]!r}"))
            placed[row] = name
    missing = [row for row in spec["rows"] if groups and row not in placed]
    if missing:
        problems.append((f"{key}.groups", f"row(s) {', '.join(missing)} in no group"))
    return problems


def expected_rows(table_id: str, spec: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """What the table's CSV row column must hold for its configured rows (`rpg claims --expect`): each row's label,
    each group once, or each row's group, as the registered table declares (`expect_from`); [] for a table without
    a row column. `labels`: row id -> its display label."""
    table = TABLES.get(table_id)
    if table is None or not table.row_column:
        return []
    if table.expect_from == "label":
        return list(dict.fromkeys(labels[row] for row in spec["rows"]))
    groups = row_groups(spec) or []
    return groups if table.expect_from == "row group" else list(dict.fromkeys(groups))
