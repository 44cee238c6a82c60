"""Table 1, the generic builders, and the one entry point (`load_inputs`, `build_table`) of `rpg table`.

A table is a builder `TableInputs -> DataFrame` and a plot `(TableInputs, DataFrame) -> Figure`, registered with
`rpg.tables.registry.register_table` next to the claims judged from its CSV; both files are written atomically.

- `table1` (paper Table 1): for every architecture the accuracy of the collected checkpoints ("original") and
  best / average / minimum / median / std over the generated models. The paper prints one "original acc." per
  architecture; it matches the MEAN accuracy of the collected checkpoints (e.g. ViT-Base: checkpoints
  84.27-84.63 %, mean 84.44 %, paper 84.4 %), so that is what we report. std is the population standard
  deviation (numpy's default, ddof=0), as in the eval JSON.
- `ablation`: one row per experiment (e.g. generators of one zoo with different position embeddings).
- `sampling`: one row per sampling variant of one generator (sampler, steps, mode from the eval JSON's
  `generation` provenance).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from rpg.errors import RPGInputError
from rpg.formats import read_eval, read_memory_study
from rpg.io import atomic_path
from rpg.tables.common import (
    Row,
    TableInputs,
    dataset_label,
    datasets,
    dots,
    figure,
    fmt,
    generation,
    metric_axis,
    paper_columns,
    paper_drawable,
    paper_row,
    params_m,
    read_paper_table,
    read_run_summary,
    zoom,
)
from rpg.tables.judging import MATCH_WITHIN, Claim, Finding, Missing, needed, num, verdict
from rpg.tables.registry import get_table, register_table

# Table 1: columns as the paper prints them, then provenance, counts and the paper's numbers.
TABLE1_PAPER_COLUMNS = ("params_m", "original", "best", "average", "minimum", "median", "std")
TABLE1_COLUMNS = (
    "architecture", "scale", "dataset", "params", "original", "best", "average", "minimum", "median", "std",
    "n_original", "n_generated",
    *(f"paper_{c}" for c in TABLE1_PAPER_COLUMNS),
)
ABLATION_COLUMNS = ("label", "scale", "original_mean", "best", "mean", "min", "median", "std", "n")
SAMPLING_COLUMNS = ("label", "scale", "sampler", "steps", "mode", "mean", "best", "min", "std", "n")


# --------------------------------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------------------------------

def plot_table1(inputs: TableInputs, table: pd.DataFrame):
    """Original vs generated accuracy per architecture: every model as a dot, the means as lines."""
    import numpy as np

    labels = [r.label for r in inputs.rows]
    evals = [r.eval for r in inputs.rows]
    x = np.arange(len(labels))
    width = 0.36
    fig, ax = figure(len(labels))
    rng = np.random.default_rng(0)  # jitter only; fixed so the PNG is reproducible
    for offset, key, colour, name in ((-width / 2, "original", "tab:blue", "original checkpoints"),
                                      (width / 2, "generated", "tab:orange", "generated (RPG)")):
        # The y axis is zoomed to the data, so means are short thick lines rather than bars from 0.
        means = [ev[key]["mean"] for ev in evals]
        ax.hlines(means, x + offset - width / 2, x + offset + width / 2, color=colour, lw=3,
                  label=f"{name} (mean: line)")
        for i, ev in enumerate(evals):
            accs = np.asarray(ev[key]["accuracies"])
            jitter = rng.uniform(-width / 4, width / 4, size=accs.size)
            ax.scatter(np.full(accs.size, x[i] + offset) + jitter, accs, s=10, color=colour, zorder=3)
    if paper_drawable(inputs):
        for i, label in enumerate(labels):
            theirs = paper_row(inputs.paper, label)
            for offset, col in ((-width / 2, "original"), (width / 2, "average")):
                if theirs.get(col):
                    first = i == 0 and col == "original"
                    ax.plot([x[i] + offset - width / 2, x[i] + offset + width / 2], [float(theirs[col])] * 2,
                            color="black", lw=1.5, ls="--", label="paper" if first else None)
    zoom(ax, np.concatenate([ev[k]["accuracies"] for ev in evals for k in ("original", "generated")]))
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(inputs.title or f"Table 1, {inputs.scale} scale\n{datasets(inputs)}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _gaps(df: pd.DataFrame, name: str, original: str, generated: str) -> list[tuple[str, float]]:
    out = []
    for _, r in df.iterrows():
        o, g = num(r.get(original)), num(r.get(generated))
        if o is not None and g is not None:
            out.append((r[name], g - o))
    return out


def judge_table1(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table1"]
    # every row needs both numbers: a row dropped for a blank or nan average would let the rest hold
    ours = [(r["architecture"], needed(r, "average", r["architecture"]) - needed(r, "original", r["architecture"]))
            for _, r in df.iterrows()]
    if not ours:
        raise Missing("no row with an original and a generated average")
    paper = _gaps(df, "architecture", "paper_original", "paper_average")

    def summary(gaps: list[tuple[str, float]]) -> str:
        name, worst = max(gaps, key=lambda p: abs(p[1]))
        within = sum(abs(g) <= MATCH_WITHIN for _, g in gaps)
        return f"largest gap {worst:+.2f} ({name}); {within}/{len(gaps)} rows within"

    text, ptext = summary(ours), summary(paper) if paper else "n/a"
    return Finding(text, ptext, verdict(all(abs(g) <= MATCH_WITHIN for _, g in ours)))


TAB1 = Claim("tab1", "Generated models match the originals (ImageNet classifiers)", ("table1",),
             f"every architecture's generated average within {MATCH_WITHIN} point of the original mean", judge_table1)


@register_table("table1", plot=plot_table1, paper_key="architecture", paper_columns=TABLE1_PAPER_COLUMNS,
                claims=(TAB1,), domain=("classification", "top-1 accuracy"), row_column="architecture",
                description="original vs generated accuracy across architectures (paper Table 1)")
def table1(inputs: TableInputs) -> pd.DataFrame:
    rows = []
    for row in inputs.rows:
        ev = row.eval
        orig, gen = ev["original"], ev["generated"]
        theirs = paper_row(inputs.paper, row.label)
        rows.append({
            "architecture": row.label,
            "scale": inputs.scale,
            "dataset": dataset_label(ev["dataset"], ev.get("substitute_for")),
            "params": params_m(ev["params"]),
            "original": fmt(orig["mean"]),
            "best": fmt(gen["best"]),
            "average": fmt(gen["mean"]),
            "minimum": fmt(gen["min"]),
            "median": fmt(gen["median"]),
            "std": fmt(gen["std"]),
            "n_original": str(orig["n"]),
            "n_generated": str(gen["n"]),
            **{f"paper_{c}": theirs.get(c, "") for c in TABLE1_PAPER_COLUMNS},
        })
    return pd.DataFrame(rows, columns=list(TABLE1_COLUMNS), dtype=str)


# --------------------------------------------------------------------------------------------------
# Generic builders: ablations (one row per experiment) and sampling variants (one row per variant)
# --------------------------------------------------------------------------------------------------

def plot_ablation(inputs: TableInputs, table: pd.DataFrame):
    """Each experiment: generated models as dots, their mean as a line, the zoo's original mean dashed."""
    import numpy as np

    labels = [r.label for r in inputs.rows]
    x = np.arange(len(labels))
    fig, ax = figure(len(labels))
    gen = [r.eval["generated"]["accuracies"] for r in inputs.rows]
    ax.hlines(table["mean"], x - 0.3, x + 0.3, color="tab:orange", lw=3, label="generated (mean: line)")
    dots(ax, x, gen, "tab:orange", "generated models")
    ax.hlines(table["original_mean"], x - 0.4, x + 0.4, color="tab:blue", lw=1.5, ls="--",
              label="original checkpoints (mean)")
    every = [a for accs in gen for a in accs] + list(table["original_mean"])
    if paper_drawable(inputs) and "paper_mean" in table:
        paper = pd.to_numeric(table["paper_mean"], errors="coerce")
        ax.scatter(x, paper, marker="x", color="black", zorder=4, label="paper (mean)")
        every += [v for v in paper if v == v]
    zoom(ax, every)
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel(metric_axis(inputs))
    ax.set_title(inputs.title or f"Ablation, {inputs.scale} scale\n{datasets(inputs)}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_sampling(inputs: TableInputs, table: pd.DataFrame):
    """Metric vs sampling variant (in the given row order): mean with a min-best range, every model as a dot."""
    import numpy as np

    labels = [r.label for r in inputs.rows]
    x = np.arange(len(labels))
    fig, ax = figure(len(labels))
    mean, lo, hi = (table[k].to_numpy(dtype=float) for k in ("mean", "min", "best"))
    ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], color="tab:orange", marker="o", capsize=4,
                label="generated: mean, min-best")
    gen = [r.eval["generated"]["accuracies"] for r in inputs.rows]
    dots(ax, x, gen, "tab:orange", None)
    orig = float(np.mean([r.eval["original"]["mean"] for r in inputs.rows]))
    ax.axhline(orig, color="tab:blue", ls="--", lw=1.2, label="original checkpoints (mean)")
    zoom(ax, [a for accs in gen for a in accs] + [orig])
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_xlabel("sampling variant")
    ax.set_ylabel(metric_axis(inputs))
    ax.set_title(inputs.title or f"Sampling variants, {inputs.scale} scale\n{datasets(inputs)}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


@register_table("ablation", plot=plot_ablation,
                description="one row per experiment: original mean, generated best/mean/min/median/std, n")
def ablation(inputs: TableInputs) -> pd.DataFrame:
    paper_cols, paper_vals = paper_columns(inputs)
    rows = []
    for row, theirs in zip(inputs.rows, paper_vals):
        orig, gen = row.eval["original"], row.eval["generated"]
        rows.append({"label": row.label, "scale": inputs.scale, "original_mean": orig["mean"],
                     **{k: gen[k] for k in ("best", "mean", "min", "median", "std", "n")}, **theirs})
    return pd.DataFrame(rows, columns=[*ABLATION_COLUMNS, *paper_cols])


@register_table("sampling", plot=plot_sampling,
                description="one row per sampling variant of one generator: sampler/steps/mode, generated "
                            "mean/best/min/std")
def sampling(inputs: TableInputs) -> pd.DataFrame:
    paper_cols, paper_vals = paper_columns(inputs)
    rows = []
    for row, theirs in zip(inputs.rows, paper_vals):
        gen = row.eval["generated"]
        rows.append({"label": row.label, "scale": inputs.scale,
                     **{k: generation(row.eval).get(k) for k in ("sampler", "steps", "mode")},
                     **{k: gen[k] for k in ("mean", "best", "min", "std", "n")}, **theirs})
    df = pd.DataFrame(rows, columns=[*SAMPLING_COLUMNS, *paper_cols])
    df["steps"] = df["steps"].astype("Int64")   # integers, empty where the provenance has none
    return df


# --------------------------------------------------------------------------------------------------
# The one entry point
# --------------------------------------------------------------------------------------------------

def _per_row(option: str, values: list | None, n: int) -> list:
    if not values:
        return [None] * n
    if len(values) != n:
        raise RPGInputError(f"--{option}: {len(values)} values for {n} --metrics files")
    return list(values)


def _folder(option: str, path: str | os.PathLike | None) -> Path | None:
    if path is None:
        return None
    if not Path(path).is_dir():
        raise RPGInputError(f"--{option} {path}: folder not found")
    return Path(path)


def _read_eval(spec, path: str | os.PathLike) -> dict:
    """An eval file of the domain and metric the table reports (a segmentation file in Table 1 would print mIoU
    as top-1 accuracy)."""
    ev = read_eval(path)
    if spec.domain is not None and (ev.get("domain"), ev.get("metric")) != spec.domain:
        raise RPGInputError(f"{path}: an evaluation of domain {ev.get('domain')!r}, metric {ev.get('metric')!r}; "
                            f"table {spec.id} reads {spec.domain[0]!r} ({spec.domain[1]})")
    return ev


def load_inputs(builder: str, metrics: list[str | os.PathLike], labels: list[str] | None = None,
                paper: str | os.PathLike | None = None, scale: str = "mini", title: str | None = None,
                runs: list[str | os.PathLike] | None = None, memory: str | os.PathLike | None = None,
                memory_sizes: dict[str, str] | None = None, zoos: list[str | os.PathLike] | None = None,
                generated: list[str | os.PathLike] | None = None, groups: list[str] | None = None) -> TableInputs:
    """Read the eval files (one per row), the rows' run folders, zoo folders, generated folders and groups
    (optional, one per row each; a builder says which it needs), the paper's numbers and a memory study
    (optional; `memory_sizes` maps a table column to the study's size of that column's paper architecture) into
    `TableInputs`. Default labels: the metrics file names without .json."""
    spec = get_table(builder)
    labels = list(labels) if labels else [Path(p).stem for p in metrics]
    if len(labels) != len(metrics):
        raise RPGInputError(f"--labels: {len(labels)} labels for {len(metrics)} --metrics files")
    if len(set(labels)) != len(labels):
        raise RPGInputError(f"--labels: duplicate row names in {labels}")
    given = {"runs": runs, "zoos": zoos, "generated": generated, "groups": groups}
    for need in spec.needs:
        if not given[need]:
            raise RPGInputError(f"table {builder}: needs --{need} (one per --metrics file)")
    n = len(metrics)
    runs_, zoos_, gens_, groups_ = (_per_row(k, given[k], n) for k in ("runs", "zoos", "generated", "groups"))
    rows = [Row(label, _read_eval(spec, p), read_run_summary(run) if run is not None else None,
                _folder("zoos", zoo), _folder("generated", gen), group)
            for label, p, run, zoo, gen, group in zip(labels, metrics, runs_, zoos_, gens_, groups_)]
    table = read_paper_table(paper, spec.paper_key, spec.paper_columns) if paper else None
    study = read_memory_study(memory) if memory else None
    if study is not None:
        known = {r["size"] for r in study["records"]}
        unknown = sorted(v for v in (memory_sizes or {}).values() if v not in known)
        if unknown:
            raise RPGInputError(f"{memory}: no records of size(s) {', '.join(unknown)} "
                                f"(has: {', '.join(sorted(known))})")
    return TableInputs(rows, table, scale, title, study, dict(memory_sizes or {}))


def build_table(builder: str, inputs: TableInputs, out_csv: str | os.PathLike,
                out_png: str | os.PathLike | None = None) -> pd.DataFrame:
    """Build the table, write the CSV and the PNG plot (default: out_csv with .png), both atomically."""
    import matplotlib.pyplot as plt

    spec = get_table(builder)
    table = spec.table(inputs)
    fig = spec.plot(inputs, table)
    try:
        # both or neither: the PNG is rendered before either file is renamed into place
        with (atomic_path(out_csv) as tmp_csv,
              atomic_path(out_png if out_png is not None else Path(out_csv).with_suffix(".png")) as tmp_png):
            # csv module line ends (\r\n), as Table 1 has always been written
            table.to_csv(tmp_csv, index=False, lineterminator="\r\n")
            fig.savefig(tmp_png, format="png", dpi=120)
    finally:
        plt.close(fig)
    return table
