"""What every table builder shares: the typed inputs (`TableInputs`, `Row`), the paper CSV reader, printed
dataset names, number formats and the plot helpers. Builder modules import from here (and from
rpg.tables.registry / rpg.tables.judging), never each other's private names.

A `Row` carries explicit fields: its printed `label` (display only, and the join key of the paper's CSV), its
evaluation, and where given one per row by `rpg table`: the generator's run folder (`--runs`, read into `run`),
the zoo folder (`--zoos`), the generated folder (`--generated`) and the group it belongs to (`--groups`: the
generator of a sampling variant, the model of a token size, the architecture column of Table 8).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rpg import domains, formats
from rpg.errors import RPGInputError

MIB = 2 ** 20



# --------------------------------------------------------------------------------------------------
# Typed inputs
# --------------------------------------------------------------------------------------------------

@dataclass
class Row:
    """One table row (see the module docstring)."""

    label: str
    eval: dict[str, Any]
    run: dict[str, Any] | None = None       # read_run_summary of the row's run folder
    zoo: Path | None = None                 # the row's zoo folder
    generated: Path | None = None           # the row's generated folder
    group: str | None = None                # the row's group, as printed


@dataclass
class TableInputs:
    rows: list[Row]
    paper: pd.DataFrame | None = None   # the paper's numbers as printed (str), indexed by row label
    scale: str = "mini"
    title: str | None = None            # plot title; None = the builder's own
    memory: dict[str, Any] | None = None          # a memory study (formats.read_memory_study), where given
    memory_sizes: dict[str, str] = field(default_factory=dict)   # table column -> the study's size id


def read_run_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A run folder of `rpg train` -> {"folder", "config": config.json, "meta": meta.json (with `training`: wall
    time, s/step, peak memory, where training recorded it), "generator": {"bytes", "params", "tensors": {name:
    numel}}} (None for files the run does not have: a method that writes neither config nor meta, and its
    builders must not need them)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RPGInputError(f"{run_dir}: run folder not found")
    gen = run_dir / "generator.safetensors"
    return {"folder": str(run_dir),
            "config": formats.read_run_config(run_dir, required=False),
            "meta": formats.read_run_meta(run_dir, required=False),
            "generator": formats.read_generator_sizes(gen) if gen.is_file() else None}


def run_config(row: Row, table: str) -> dict[str, Any]:
    """The row's run config.json (one-line error when the table was not given the row's run folder)."""
    cfg = (row.run or {}).get("config")
    if not cfg:
        raise RPGInputError(f"table {table}: row {row.label!r} has no run config (pass the generators' run "
                            "folders with --runs; the workflow's table rule does)")
    return cfg


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


def paper_row(paper: pd.DataFrame | None, key: str) -> dict[str, str]:
    """The paper's row `key` as {column: printed value}; {} where the paper has no such row."""
    if paper is None or key not in paper.index:
        return {}
    return {c: str(v) for c, v in paper.loc[key].items()}


def paper_columns(inputs: TableInputs) -> tuple[list[str], list[dict[str, str]]]:
    """paper_<column> for every column of the paper CSV, and each row's values ("" where it has none)."""
    if inputs.paper is None:
        return [], [{} for _ in inputs.rows]
    cols = [f"paper_{c}" for c in inputs.paper.columns]
    vals = [{f"paper_{c}": v for c, v in paper_row(inputs.paper, r.label).items()} for r in inputs.rows]
    return cols, [{c: v.get(c, "") for c in cols} for v in vals]


def paper_float(text: Any) -> float | None:
    """A printed paper value as a float; None for blanks and notes ("fail", "OOM")."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def paper_drawable(inputs: TableInputs) -> bool:
    """The paper's values are drawn only when we measured on the paper's own dataset (no substitute)."""
    return inputs.paper is not None and all(not r.eval.get("substitute_for") for r in inputs.rows)


def generation(ev: dict[str, Any]) -> dict[str, Any]:
    """The eval JSON's `generation` provenance block ({} where it has none)."""
    gen = ev.get("generation")
    return gen if isinstance(gen, dict) else {}


# --------------------------------------------------------------------------------------------------
# Printed values
# --------------------------------------------------------------------------------------------------

def dataset_label(dataset: str, substitute_for: str | None) -> str:
    """'fashion_mnist', 'ImageNet-1K' -> 'Fashion-MNIST (substitute for ImageNet-1K)'."""
    name = domains.dataset_names().get(dataset.lower(), dataset)
    return f"{name} (substitute for {substitute_for})" if substitute_for else name


def datasets(inputs: TableInputs) -> str:
    """Every row's dataset label, sorted and joined (plot titles)."""
    return "; ".join(sorted({dataset_label(r.eval["dataset"], r.eval.get("substitute_for")) for r in inputs.rows}))


def fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def params_m(n: int) -> str:
    """Parameter count in millions, as the paper prints it; 4 significant digits (mini nets are small)."""
    return f"{n / 1e6:.4g}"


def ratio(x: float | None, ref: float | None, digits: int = 2) -> float | None:
    """x / ref rounded to `digits`; None where either is missing (None, NaN) or ref is 0."""
    if x is None or ref is None or pd.isna(x) or pd.isna(ref) or not ref:
        return None
    return round(float(x) / float(ref), digits)


def metric_axis(inputs: TableInputs) -> str:
    names = {r.eval.get("metric") or "top-1 accuracy" for r in inputs.rows}
    return f"{names.pop() if len(names) == 1 else 'metric'} (%)".replace("top-1 accuracy", "test accuracy")


# --------------------------------------------------------------------------------------------------
# Plot helpers
# --------------------------------------------------------------------------------------------------

def figure(n: float):
    """(fig, ax) sized for n groups on the x axis."""
    import matplotlib

    matplotlib.use("Agg")  # no display on CI/cluster nodes
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(max(5.5, 1.3 * n + 1.5), 4.4))


def zoom(ax, values) -> None:
    """Zoom the y axis to the data (accuracies of good models differ by tenths of a percent)."""
    import numpy as np

    every = np.asarray(values, dtype=float)
    low, high = float(every.min()), float(every.max())
    pad = max(1.0, 0.15 * (high - low))
    ax.set_ylim(max(0.0, low - pad), min(100.0, high + pad))


def dots(ax, x, accuracies: list[list[float]], colour: str, label: str | None) -> None:
    """Every model as a jittered dot at its group's x."""
    import numpy as np

    rng = np.random.default_rng(0)  # jitter only; fixed so the PNG is reproducible
    for i, accs in enumerate(accuracies):
        a = np.asarray(accs)
        ax.scatter(x[i] + rng.uniform(-0.12, 0.12, size=a.size), a, s=10, color=colour, alpha=0.7, zorder=3,
                   label=label if i == 0 else None)
