"""Table 8 (comparison with earlier parameter-generation methods) from `rpg evaluate` files.

Each row is one experiment: a method on one architecture column. The column is the row's group (`rpg table
--groups`, config `tables.table8.groups`), the method is the evaluation's recorded `generation.method` (rpg, pdiff,
skde30, sane, d2nwg; RPG where the provenance names none), printed by its registered display name
(`rpg.methods.get_method(name).display_name`). The row label is display only. Output: long format, one row per
(method, column) in the order of the rows, each column headed by its "original" row (the collected checkpoints),
with best and mean of the generated models (the paper prints one accuracy per cell and does not say which
statistic), their count, and the paper's number (or its OOM / "not reported" note) beside ours, joined on
"<method> / <column>" as the paper CSV prints it. Given the Fig. 8 memory study (`--memory`), each method's cell
also says what happened when it trained at the column's paper size (fits with its peak, or OOM with the projected
peak), so the paper's "OOM" is checked, never copied. Table 8 is CIFAR-10: any other dataset is reported as a
substitute for it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from rpg.tables.common import dataset_label, figure, fmt, generation, paper_drawable, paper_row, params_m
from rpg.tables.judging import Claim, Finding, Missing, matching, needed, num, verdict
from rpg.tables.registry import register_table

PAPER_DATASET = "CIFAR-10"
TABLE8_COLUMNS = ("method", "architecture", "scale", "dataset", "params_m", "best", "mean", "n",
                  "paper_params_m", "paper_accuracy", "paper_note", "paper_size_params_m", "paper_size_memory")
ORIGINAL = "original"      # the `method` of each column's leading row: the collected checkpoints
DEFAULT_METHOD = "rpg"     # an evaluation whose provenance names no method sampled an RPG generator


def method_id(ev: dict[str, Any]) -> str:
    """The method that generated the row's models, from the evaluation's recorded provenance."""
    return generation(ev).get("method") or DEFAULT_METHOD


def display_name(method: str) -> str:
    """A method id as Table 8 prints it ('pdiff' -> 'p-diff'), from the method registry."""
    from rpg.methods import get_method

    return get_method(method, where="generation.method").display_name


def paper_size_memory(study: dict[str, Any] | None, size: str | None, method: str) -> tuple[str, str]:
    """What happened when `method` (a method id) trained at the column's paper size in the memory study
    (rpg memory-study, paper Fig. 8), one clause per preset the study ran, in its order:
    ('11.7', 'rpg:base: OOM under the 20 GiB cap (projected 27.1 GiB); rpg:small: fits: 9.8 GiB peak ...')."""
    if study is None or size is None:
        return "", ""
    records = [r for r in study["records"] if r["method"] == method and r["size"] == size]
    clauses = [f"{method}:{r['preset']}: {_memory_outcome(r)}" for r in records]
    params = next((f"{r['params'] / 1e6:.3g}" for r in records if r.get("params")), "")
    return params, "; ".join(clauses)


def _memory_outcome(r: dict[str, Any]) -> str:
    gib = 2 ** 30
    cap = f"{r['cap_bytes'] / gib:.0f} GiB cap" if r.get("cap_bytes") else "no cap"
    projected = ""
    if r.get("projected_peak_bytes"):
        at_least = "at least " if r.get("projected_lower_bound") else ""
        projected = f" (projected {at_least}{r['projected_peak_bytes'] / gib:.1f} GiB)"
    if r["status"] == "ok":
        return f"fits: {r.get('peak_bytes', 0) / gib:.1f} GiB peak under the {cap}"
    if r["status"] == "oom":
        return f"OOM under the {cap}{projected}"
    if r["status"] == "skipped":
        return f"not run: OOM at a smaller size under the {cap}{projected}"
    if r["status"] == "timeout":
        return f"timeout after {r.get('seconds', '?')} s"
    return f"error: {r.get('error', '')}"


def _dataset(ev: dict[str, Any]) -> str:
    return dataset_label(ev["dataset"], None if ev["dataset"].lower() == "cifar10" else PAPER_DATASET)


def plot_table8(inputs, table: pd.DataFrame):
    """Per column (architecture), every generated model of every method as a dot and its mean as a line,
    the original checkpoints first; the paper's accuracies as crosses when we measured on CIFAR-10."""
    import numpy as np

    columns: list[str] = []
    methods: list[str] = [ORIGINAL]
    cells: dict[tuple[str, str], list[float]] = {}
    for row in inputs.rows:
        column = row.group
        if column not in columns:
            columns.append(column)
            cells[(ORIGINAL, column)] = list(row.eval["original"]["accuracies"])
        method = display_name(method_id(row.eval))
        if method not in methods:
            methods.append(method)
        cells[(method, column)] = list(row.eval["generated"]["accuracies"])
    fig, ax = figure(len(columns) * 1.6)
    width = 0.8 / len(methods)
    colours = ["black", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    rng = np.random.default_rng(0)   # jitter only; fixed so the PNG is reproducible
    draw_paper = paper_drawable(inputs)
    for j, method in enumerate(methods):
        colour = colours[j % len(colours)]
        for i, column in enumerate(columns):
            x = i - 0.4 + (j + 0.5) * width
            accs = np.asarray(cells.get((method, column), []), dtype=float)
            if accs.size:
                ax.scatter(x + rng.uniform(-width / 4, width / 4, accs.size), accs, s=6, color=colour,
                           label=method if i == 0 or (method, columns[0]) not in cells else None)
                ax.hlines(accs.mean(), x - width / 2, x + width / 2, color=colour, lw=2)
            theirs = paper_row(inputs.paper, f"{method} / {column}").get("accuracy")
            if draw_paper and theirs:
                ax.scatter([x], [float(theirs)], marker="x", color="black", s=30)
    ax.set_xticks(range(len(columns)), columns, rotation=15)
    ax.set_ylabel("test accuracy (%)")
    datasets = "; ".join(sorted({_dataset(r.eval) for r in inputs.rows}))
    ax.set_title(inputs.title or f"Table 8, {inputs.scale} scale\n{datasets}", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig



def judge_table8(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table8"]
    ours_name = display_name(DEFAULT_METHOD)

    def side(col: str) -> tuple[str, bool | None]:
        parts, oks = [], []
        for arch in dict.fromkeys(df["architecture"]):
            rows = matching(df, architecture=arch)
            if col == "mean":      # ours are needed (a baseline's blank mean would drop it; the paper's may be absent)
                for _, r in rows[rows["method"] != ORIGINAL].iterrows():
                    needed(r, col, f"{r['method']} / {arch}")
            vals = {r["method"]: num(r.get(col)) for _, r in rows.iterrows()}
            rpg = vals.get(ours_name)
            others = {m: v for m, v in vals.items() if m not in (ours_name, ORIGINAL) and v is not None}
            if rpg is None or not others:
                continue
            oks.append(all(rpg >= v for v in others.values()))
            best_other = max(others, key=others.get)
            parts.append(f"{arch}: RPG {rpg:.2f} vs best baseline {best_other} {others[best_other]:.2f}")
        return "; ".join(parts) or "n/a", (all(oks) if oks else None)

    ours, ok = side("mean")
    if ok is None:
        raise Missing("no column with RPG and a baseline")
    paper, _ = side("paper_accuracy")
    return Finding(ours, paper, verdict(ok))


TAB8 = Claim("tab8", "RPG beats the earlier methods", ("table8",),
             "RPG's mean at least every baseline's mean on every column where both ran", judge_table8)


@register_table("table8", plot=plot_table8, needs=("groups",), claims=(TAB8,), row_column="architecture",
                expect_from="row group", extra_rows=(("method", ORIGINAL),), row_identity=("method", "architecture"),
                description="earlier methods vs RPG per architecture: original, best and mean (paper Table 8; "
                            "--groups: each row's architecture column)")
def table8(inputs) -> pd.DataFrame:
    rows, seen_columns = [], set()
    for row in inputs.rows:
        ev = row.eval
        column = row.group
        common = {"architecture": column, "scale": inputs.scale, "dataset": _dataset(ev),
                  "params_m": params_m(ev["params"])}
        cells = ((ORIGINAL, None, ev["original"]),) if column not in seen_columns else ()
        for method, mid, stats in cells + ((display_name(method_id(ev)), method_id(ev), ev["generated"]),):
            theirs = paper_row(inputs.paper, f"{method} / {column}")
            size_m, memory = paper_size_memory(inputs.memory, inputs.memory_sizes.get(column), mid) \
                if mid is not None else ("", "")
            rows.append({"method": method, **common, "best": fmt(stats["best"]), "mean": fmt(stats["mean"]),
                         "n": str(stats["n"]), "paper_params_m": theirs.get("params_m", ""),
                         "paper_accuracy": theirs.get("accuracy", ""), "paper_note": theirs.get("note", ""),
                         "paper_size_params_m": size_m, "paper_size_memory": memory})
        seen_columns.add(column)
    return pd.DataFrame(rows, columns=list(TABLE8_COLUMNS), dtype=str)
