"""Paper tables: typed inputs (rows of `rpg evaluate` results + the paper's numbers) -> a pandas DataFrame
written as CSV, and a PNG plot. Both files are written atomically.

A builder is one entry of `BUILDERS`: a function `TableInputs -> DataFrame`, a plot function
`(TableInputs, DataFrame) -> Figure`, a description (listed by `rpg table --help`) and the paper CSV's key and
required columns. Adding a paper table is one builder function (or reusing a generic one) plus config entries.

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

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rpg.errors import RPGInputError
from rpg.formats import read_eval, read_memory_study
from rpg.io import atomic_path, read_json
from rpg.tables import baselines as _baselines
from rpg.tables.ablations import _ablation_builders

# Printable dataset names for the `dataset` column (the eval JSON holds registry names).
DATASET_NAMES = {
    "fashion_mnist": "Fashion-MNIST",
    "mnist": "MNIST",
    "digits": "scikit-learn digits",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "imagenet": "ImageNet-1K",
    "imagenet1k": "ImageNet-1K",
    "synthetic": "synthetic data",
}

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
# Typed inputs
# --------------------------------------------------------------------------------------------------

@dataclass
class Row:
    """One table row: its printed label, the `rpg evaluate` result (formats.read_eval) and, where the table
    was given the generator's run folder (`--runs`), what training recorded there (`read_run_summary`)."""

    label: str
    eval: dict[str, Any]
    run: dict[str, Any] | None = None


def read_run_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A run folder of `rpg train` -> {"config": config.json, "meta": meta.json (with `training`: wall time,
    s/step, peak memory, where training recorded it), "generator": {"bytes", "params", "tensors": {name: numel}}}
    (None for files the run does not have). The generator's sizes come from the safetensors header; no tensor is
    loaded."""
    from safetensors import safe_open

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RPGInputError(f"{run_dir}: run folder not found")
    out: dict[str, Any] = {"folder": str(run_dir), "generator": None}
    for key in ("config", "meta"):      # None for a method that writes neither (its builders must not need them)
        path = run_dir / f"{key}.json"
        out[key] = read_json(path) if path.is_file() else None
    gen = run_dir / "generator.safetensors"
    if gen.is_file():
        with safe_open(str(gen), framework="pt") as f:
            tensors = {k: math.prod(f.get_slice(k).get_shape()) for k in f.keys()}
        out["generator"] = {"bytes": gen.stat().st_size, "params": sum(tensors.values()), "tensors": tensors}
    return out


@dataclass
class TableInputs:
    rows: list[Row]
    paper: pd.DataFrame | None = None   # the paper's numbers as printed (str), indexed by row label
    scale: str = "mini"
    title: str | None = None            # plot title; None = the builder's own
    memory: dict[str, Any] | None = None          # a memory study (formats.read_memory_study), where given
    memory_sizes: dict[str, str] = field(default_factory=dict)   # table column -> the study's size id


def read_paper_table(path: str | os.PathLike, key: str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """resources/paper/<table>.csv -> DataFrame of str (values as printed, "" where empty) indexed by the `key`
    column. `columns`: the ones a builder needs (default: all)."""
    path = Path(path)
    if not path.is_file():
        raise RPGInputError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RPGInputError(f"{path}: not a readable CSV ({type(e).__name__})") from None
    missing = [c for c in (key, *columns) if c not in df.columns]
    if missing:
        raise RPGInputError(f"{path}: missing column(s) {', '.join(missing)}")
    dup = df[key][df[key].duplicated()]
    if len(dup):
        line = int(dup.index[0]) + 2   # header is line 1
        raise RPGInputError(f"{path}:{line}: {key} {dup.iloc[0]!r} listed twice")
    df = df.set_index(key)
    return df[list(columns)] if columns else df


def _paper_row(paper: pd.DataFrame | None, label: str) -> dict[str, str]:
    if paper is None or label not in paper.index:
        return {}
    return {c: str(v) for c, v in paper.loc[label].items()}


def dataset_label(dataset: str, substitute_for: str | None) -> str:
    """'fashion_mnist', 'ImageNet-1K' -> 'Fashion-MNIST (substitute for ImageNet-1K)'."""
    name = DATASET_NAMES.get(dataset.lower(), dataset)
    return f"{name} (substitute for {substitute_for})" if substitute_for else name


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def _params_m(n: int) -> str:
    """Parameter count in millions, as the paper prints it; 4 significant digits (mini nets are small)."""
    return f"{n / 1e6:.4g}"


def _metric_axis(inputs: TableInputs) -> str:
    names = {r.eval.get("metric") or "top-1 accuracy" for r in inputs.rows}
    return f"{names.pop() if len(names) == 1 else 'metric'} (%)".replace("top-1 accuracy", "test accuracy")


def _figure(n: int):
    import matplotlib

    matplotlib.use("Agg")  # no display on CI/cluster nodes
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(max(5.5, 1.3 * n + 1.5), 4.4))


def _zoom(ax, values) -> None:
    """Zoom the y axis to the data (accuracies of good models differ by tenths of a percent)."""
    import numpy as np

    every = np.asarray(values, dtype=float)
    low, high = float(every.min()), float(every.max())
    pad = max(1.0, 0.15 * (high - low))
    ax.set_ylim(max(0.0, low - pad), min(100.0, high + pad))


def _datasets(inputs: TableInputs) -> str:
    return "; ".join(sorted({dataset_label(r.eval["dataset"], r.eval.get("substitute_for")) for r in inputs.rows}))


def _paper_drawable(inputs: TableInputs) -> bool:
    """The paper's values are drawn only when we measured on the paper's own dataset (no substitute)."""
    return inputs.paper is not None and all(not r.eval.get("substitute_for") for r in inputs.rows)


# --------------------------------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------------------------------

def table1(inputs: TableInputs) -> pd.DataFrame:
    rows = []
    for row in inputs.rows:
        ev = row.eval
        orig, gen = ev["original"], ev["generated"]
        theirs = _paper_row(inputs.paper, row.label)
        rows.append({
            "architecture": row.label,
            "scale": inputs.scale,
            "dataset": dataset_label(ev["dataset"], ev.get("substitute_for")),
            "params": _params_m(ev["params"]),
            "original": _fmt(orig["mean"]),
            "best": _fmt(gen["best"]),
            "average": _fmt(gen["mean"]),
            "minimum": _fmt(gen["min"]),
            "median": _fmt(gen["median"]),
            "std": _fmt(gen["std"]),
            "n_original": str(orig["n"]),
            "n_generated": str(gen["n"]),
            **{f"paper_{c}": theirs.get(c, "") for c in TABLE1_PAPER_COLUMNS},
        })
    return pd.DataFrame(rows, columns=list(TABLE1_COLUMNS), dtype=str)


def plot_table1(inputs: TableInputs, table: pd.DataFrame):
    """Original vs generated accuracy per architecture: every model as a dot, the means as lines."""
    import numpy as np

    labels = [r.label for r in inputs.rows]
    evals = [r.eval for r in inputs.rows]
    x = np.arange(len(labels))
    width = 0.36
    fig, ax = _figure(len(labels))
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
    if _paper_drawable(inputs):
        for i, label in enumerate(labels):
            theirs = _paper_row(inputs.paper, label)
            for offset, col in ((-width / 2, "original"), (width / 2, "average")):
                if theirs.get(col):
                    first = i == 0 and col == "original"
                    ax.plot([x[i] + offset - width / 2, x[i] + offset + width / 2], [float(theirs[col])] * 2,
                            color="black", lw=1.5, ls="--", label="paper" if first else None)
    _zoom(ax, np.concatenate([ev[k]["accuracies"] for ev in evals for k in ("original", "generated")]))
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(inputs.title or f"Table 1, {inputs.scale} scale\n{_datasets(inputs)}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Generic builders: ablations (one row per experiment) and sampling variants (one row per variant)
# --------------------------------------------------------------------------------------------------

def _paper_columns(inputs: TableInputs) -> tuple[list[str], list[dict[str, str]]]:
    """paper_<column> for every column of the paper CSV, and each row's values ("" where it has none)."""
    if inputs.paper is None:
        return [], [{} for _ in inputs.rows]
    cols = [f"paper_{c}" for c in inputs.paper.columns]
    vals = [{f"paper_{c}": v for c, v in _paper_row(inputs.paper, r.label).items()} for r in inputs.rows]
    return cols, [{c: v.get(c, "") for c in cols} for v in vals]


def ablation(inputs: TableInputs) -> pd.DataFrame:
    paper_cols, paper_vals = _paper_columns(inputs)
    rows = []
    for row, theirs in zip(inputs.rows, paper_vals):
        orig, gen = row.eval["original"], row.eval["generated"]
        rows.append({"label": row.label, "scale": inputs.scale, "original_mean": orig["mean"],
                     **{k: gen[k] for k in ("best", "mean", "min", "median", "std", "n")}, **theirs})
    return pd.DataFrame(rows, columns=[*ABLATION_COLUMNS, *paper_cols])


def _generation(ev: dict[str, Any], key: str) -> Any:
    gen = ev.get("generation")
    return gen.get(key) if isinstance(gen, dict) else None


def sampling(inputs: TableInputs) -> pd.DataFrame:
    paper_cols, paper_vals = _paper_columns(inputs)
    rows = []
    for row, theirs in zip(inputs.rows, paper_vals):
        gen = row.eval["generated"]
        rows.append({"label": row.label, "scale": inputs.scale,
                     **{k: _generation(row.eval, k) for k in ("sampler", "steps", "mode")},
                     **{k: gen[k] for k in ("mean", "best", "min", "std", "n")}, **theirs})
    df = pd.DataFrame(rows, columns=[*SAMPLING_COLUMNS, *paper_cols])
    df["steps"] = df["steps"].astype("Int64")   # integers, empty where the provenance has none
    return df


def _dots(ax, x, accuracies: list[list[float]], colour: str, label: str) -> None:
    import numpy as np

    rng = np.random.default_rng(0)  # jitter only; fixed so the PNG is reproducible
    for i, accs in enumerate(accuracies):
        a = np.asarray(accs)
        ax.scatter(x[i] + rng.uniform(-0.12, 0.12, size=a.size), a, s=10, color=colour, alpha=0.7, zorder=3,
                   label=label if i == 0 else None)


def plot_ablation(inputs: TableInputs, table: pd.DataFrame):
    """Each experiment: generated models as dots, their mean as a line, the zoo's original mean dashed."""
    import numpy as np

    labels = [r.label for r in inputs.rows]
    x = np.arange(len(labels))
    fig, ax = _figure(len(labels))
    gen = [r.eval["generated"]["accuracies"] for r in inputs.rows]
    ax.hlines(table["mean"], x - 0.3, x + 0.3, color="tab:orange", lw=3, label="generated (mean: line)")
    _dots(ax, x, gen, "tab:orange", "generated models")
    ax.hlines(table["original_mean"], x - 0.4, x + 0.4, color="tab:blue", lw=1.5, ls="--",
              label="original checkpoints (mean)")
    every = [a for accs in gen for a in accs] + list(table["original_mean"])
    if _paper_drawable(inputs) and "paper_mean" in table:
        paper = pd.to_numeric(table["paper_mean"], errors="coerce")
        ax.scatter(x, paper, marker="x", color="black", zorder=4, label="paper (mean)")
        every += [v for v in paper if v == v]
    _zoom(ax, every)
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel(_metric_axis(inputs))
    ax.set_title(inputs.title or f"Ablation, {inputs.scale} scale\n{_datasets(inputs)}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_sampling(inputs: TableInputs, table: pd.DataFrame):
    """Metric vs sampling variant (in the given row order): mean with a min-best range, every model as a dot."""
    import numpy as np

    labels = [r.label for r in inputs.rows]
    x = np.arange(len(labels))
    fig, ax = _figure(len(labels))
    mean, lo, hi = (table[k].to_numpy(dtype=float) for k in ("mean", "min", "best"))
    ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], color="tab:orange", marker="o", capsize=4,
                label="generated: mean, min-best")
    gen = [r.eval["generated"]["accuracies"] for r in inputs.rows]
    _dots(ax, x, gen, "tab:orange", None)
    orig = float(np.mean([r.eval["original"]["mean"] for r in inputs.rows]))
    ax.axhline(orig, color="tab:blue", ls="--", lw=1.2, label="original checkpoints (mean)")
    _zoom(ax, [a for accs in gen for a in accs] + [orig])
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_xlabel("sampling variant")
    ax.set_ylabel(_metric_axis(inputs))
    ax.set_title(inputs.title or f"Sampling variants, {inputs.scale} scale\n{_datasets(inputs)}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Registry and the one entry point
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Builder:
    table: Callable[[TableInputs], pd.DataFrame]
    plot: Callable[[TableInputs, pd.DataFrame], Any]     # -> matplotlib Figure
    description: str
    paper_key: str = "label"                    # the paper CSV's row-label column
    paper_columns: tuple[str, ...] = ()         # columns it must have (empty: every column, as paper_*)


# Add a paper table here (or reuse a generic builder from the workflow config's `tables:` entry).
BUILDERS: dict[str, Builder] = {
    "table1": Builder(table1, plot_table1,
                      "original vs generated accuracy across architectures (paper Table 1)",
                      paper_key="architecture", paper_columns=TABLE1_PAPER_COLUMNS),
    "ablation": Builder(ablation, plot_ablation,
                        "one row per experiment: original mean, generated best/mean/min/median/std, n"),
    "sampling": Builder(sampling, plot_sampling,
                        "one row per sampling variant of one generator: sampler/steps/mode, generated "
                        "mean/best/min/std"),
    "table8": Builder(_baselines.table8, _baselines.plot_table8,
                      "earlier methods vs RPG per architecture: original, best and mean (paper Table 8)"),
}
BUILDERS.update(_ablation_builders(Builder))   # paper Tab. 4a/4b/5/6, Fig. 4 (rpg/tables/ablations.py)


def _register_segmentation() -> None:   # Table 2 (downstream segmentation) lives in its own module
    from rpg.tables.segmentation import PAPER_COLUMNS, plot_table2, table2

    DATASET_NAMES.update({"nuclei": "DSB-2018 nuclei tiles (stardist wheel)", "blobs": "synthetic blobs",
                          "ade20k": "ADE20K"})
    BUILDERS["table2"] = Builder(table2, plot_table2, "original vs generated segmentation mIoU/mAcc, COCO column "
                                 "(paper Table 2)", paper_key="method", paper_columns=PAPER_COLUMNS)


_register_segmentation()


from rpg.tables import language as _language  # noqa: E402  (Table 3: DoRA adapters; uses this module's helpers)

BUILDERS["table3"] = Builder(_language.table3, _language.plot_table3,
                             "DoRA adapters per rank: base model, original, generated (paper Table 3)", paper_key="id")


# Builders in their own modules, registered here (rpg/tables/__init__.py imports this module first).
from rpg.tables.sampling import BUILDERS as _SAMPLING_BUILDERS  # noqa: E402  (issue 11: Tab. 7/13/16, Fig. 9)

BUILDERS.update(_SAMPLING_BUILDERS)


def _builder(name: str) -> Builder:
    if name not in BUILDERS:
        raise RPGInputError(f"table builder {name!r}: unknown (known: {', '.join(BUILDERS)})")
    return BUILDERS[name]


def load_inputs(builder: str, metrics: list[str | os.PathLike], labels: list[str] | None = None,
                paper: str | os.PathLike | None = None, scale: str = "mini", title: str | None = None,
                runs: list[str | os.PathLike] | None = None, memory: str | os.PathLike | None = None,
                memory_sizes: dict[str, str] | None = None) -> TableInputs:
    """Read the eval files (one per row), the rows' run folders (optional, one per row), the paper's numbers and
    a memory study (optional; `memory_sizes` maps a table column to the study's size of that column's paper
    architecture) into `TableInputs`. Default labels: the metrics file names without .json."""
    b = _builder(builder)
    labels = list(labels) if labels else [Path(p).stem for p in metrics]
    if len(labels) != len(metrics):
        raise RPGInputError(f"--labels: {len(labels)} labels for {len(metrics)} --metrics files")
    if len(set(labels)) != len(labels):
        raise RPGInputError(f"--labels: duplicate row names in {labels}")
    if runs and len(runs) != len(metrics):
        raise RPGInputError(f"--runs: {len(runs)} run folders for {len(metrics)} --metrics files")
    summaries = [read_run_summary(r) for r in runs] if runs else [None] * len(metrics)
    rows = [Row(label, read_eval(p), run) for label, p, run in zip(labels, metrics, summaries)]
    table = read_paper_table(paper, b.paper_key, b.paper_columns) if paper else None
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

    b = _builder(builder)
    table = b.table(inputs)
    fig = b.plot(inputs, table)
    try:
        # csv module line ends (\r\n), as Table 1 has always been written
        with atomic_path(out_csv) as tmp:
            table.to_csv(tmp, index=False, lineterminator="\r\n")
        with atomic_path(out_png if out_png is not None else Path(out_csv).with_suffix(".png")) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
    return table

# Paper §4 (unseen tasks) and Tab. 15 builders live in their own module (issue 12).
from rpg.tables.tasks import _builders as _task_builders  # noqa: E402

BUILDERS.update(_task_builders())
