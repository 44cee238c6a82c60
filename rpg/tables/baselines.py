"""Table 8 (comparison with earlier parameter-generation methods) from `rpg evaluate` files.

Rows are experiments labelled `METHOD / COLUMN` (e.g. `p-diff / CNN (s)`); a label without ` / ` is a column on its
own (Table 1's ResNet-18 and ViT-Base experiments, reused at mini scale). The method is read from the evaluation's
`generation.method` (rpg, pdiff, skde30, sane, d2nwg), the label only names it as a fallback. Output: long format,
one row per (method, column) in the order of the rows, each column headed by its "original" row (the collected
checkpoints), with best and mean of the generated models (the paper prints one accuracy per cell and does not say
which statistic), their count, and the paper's number (or its OOM / "not reported" note) beside ours. Given the
Fig. 8 memory study (`--memory`), each method's cell also says what happened when it trained at the column's paper
size (fits with its peak, or OOM with the projected peak), so the paper's "OOM" is checked, never copied.
Table 8 is CIFAR-10: any other dataset is reported as a substitute for it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

METHOD_NAMES = {"rpg": "RPG", "pdiff": "p-diff", "skde30": "SKDE30", "sane": "SANE", "d2nwg": "D2NWG"}
PAPER_DATASET = "CIFAR-10"
TABLE8_COLUMNS = ("method", "architecture", "scale", "dataset", "params_m", "best", "mean", "n",
                  "paper_params_m", "paper_accuracy", "paper_note", "paper_size_params_m", "paper_size_memory")
METHOD_IDS = {v: k for k, v in METHOD_NAMES.items()}


def paper_size_memory(study: dict[str, Any] | None, size: str | None, method: str) -> tuple[str, str]:
    """What happened when `method` (a printed name) trained at the column's paper size in the memory study
    (benchmarks/memory.py, paper Fig. 8), one clause per preset the study ran, in its order:
    ('11.7', 'rpg:base: OOM under the 20 GiB cap (projected 27.1 GiB); rpg:small: fits: 9.8 GiB peak ...')."""
    if study is None or size is None:
        return "", ""
    mid = METHOD_IDS.get(method, method)
    records = [r for r in study["records"] if r["method"] == mid and r["size"] == size]
    clauses = [f"{mid}:{r['preset']}: {_memory_outcome(r)}" for r in records]
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


def split_label(label: str) -> tuple[str | None, str]:
    """'p-diff / CNN (s)' -> ('p-diff', 'CNN (s)'); 'ResNet-18' -> (None, 'ResNet-18')."""
    method, sep, column = label.partition(" / ")
    return (method, column) if sep else (None, label)


def method_of(label: str, ev: dict[str, Any]) -> str:
    gen = ev.get("generation") if isinstance(ev.get("generation"), dict) else {}
    if gen.get("method"):
        return METHOD_NAMES.get(gen["method"], gen["method"])
    return split_label(label)[0] or "RPG"


def _dataset(ev: dict[str, Any]) -> str:
    from rpg.tables.builders import dataset_label
    return dataset_label(ev["dataset"], None if ev["dataset"].lower() == "cifar10" else PAPER_DATASET)


def table8(inputs) -> pd.DataFrame:
    from rpg.tables.builders import _fmt, _paper_row, _params_m
    rows, seen_columns = [], set()
    for row in inputs.rows:
        ev = row.eval
        column = split_label(row.label)[1]
        common = {"architecture": column, "scale": inputs.scale, "dataset": _dataset(ev),
                  "params_m": _params_m(ev["params"])}
        for method, stats in ((("original", ev["original"]),) if column not in seen_columns else ()) + (
                (method_of(row.label, ev), ev["generated"]),):
            theirs = _paper_row(inputs.paper, f"{method} / {column}")
            size_m, memory = paper_size_memory(inputs.memory, inputs.memory_sizes.get(column), method) \
                if method != "original" else ("", "")
            rows.append({"method": method, **common, "best": _fmt(stats["best"]), "mean": _fmt(stats["mean"]),
                         "n": str(stats["n"]), "paper_params_m": theirs.get("params_m", ""),
                         "paper_accuracy": theirs.get("accuracy", ""), "paper_note": theirs.get("note", ""),
                         "paper_size_params_m": size_m, "paper_size_memory": memory})
        seen_columns.add(column)
    return pd.DataFrame(rows, columns=list(TABLE8_COLUMNS), dtype=str)


def plot_table8(inputs, table: pd.DataFrame):
    """Per column (architecture), every generated model of every method as a dot and its mean as a line,
    the original checkpoints first; the paper's accuracies as crosses when we measured on CIFAR-10."""
    import numpy as np

    from rpg.tables.builders import _figure, _paper_drawable, _paper_row

    columns: list[str] = []
    methods: list[str] = ["original"]
    cells: dict[tuple[str, str], list[float]] = {}
    for row in inputs.rows:
        column = split_label(row.label)[1]
        if column not in columns:
            columns.append(column)
            cells[("original", column)] = list(row.eval["original"]["accuracies"])
        method = method_of(row.label, row.eval)
        if method not in methods:
            methods.append(method)
        cells[(method, column)] = list(row.eval["generated"]["accuracies"])
    fig, ax = _figure(len(columns) * 1.6)
    width = 0.8 / len(methods)
    colours = ["black", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    rng = np.random.default_rng(0)   # jitter only; fixed so the PNG is reproducible
    draw_paper = _paper_drawable(inputs)
    for j, method in enumerate(methods):
        colour = colours[j % len(colours)]
        for i, column in enumerate(columns):
            x = i - 0.4 + (j + 0.5) * width
            accs = np.asarray(cells.get((method, column), []), dtype=float)
            if accs.size:
                ax.scatter(x + rng.uniform(-width / 4, width / 4, accs.size), accs, s=6, color=colour,
                           label=method if i == 0 or (method, columns[0]) not in cells else None)
                ax.hlines(accs.mean(), x - width / 2, x + width / 2, color=colour, lw=2)
            theirs = _paper_row(inputs.paper, f"{method} / {column}").get("accuracy")
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
