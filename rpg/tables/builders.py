"""`python -m rpg table <name>`: assemble a paper table (CSV + plot) from evaluation JSON files.

Each table is one builder in `TABLES`. A builder reads the `rpg evaluate` outputs (format
`rpg-eval/1`, one file per table row), puts the paper's own numbers (typed from the PDF into
`resources/paper/tableN.csv`) beside ours, and writes a CSV plus a PNG plot.

Table 1 (RPG paper, arXiv 2501.11587): for every architecture the accuracy of the collected
checkpoints ("original") and best / average / minimum / median / std over the generated models.
The paper prints one "original acc." per architecture; it matches the MEAN accuracy of the collected
checkpoints (e.g. ViT-Base: checkpoints 84.27-84.63 %, mean 84.44 %, paper 84.4 %), so that is what
we report. std is the population standard deviation (numpy's default, ddof=0), as in the eval JSON.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rpg.errors import RPGInputError
from rpg.io import atomic_path, read_json

EVAL_FORMAT = "rpg-eval/1"
STAT_KEYS = ("best", "mean", "min", "median", "std")

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


# --------------------------------------------------------------------------------------------------
# Reading inputs
# --------------------------------------------------------------------------------------------------

def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RPGInputError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _stats(block: Any, where: str) -> dict[str, Any]:
    """Check one `original` / `generated` block of an eval JSON and return it normalised."""
    if not isinstance(block, dict):
        raise RPGInputError(f"{where}: expected an object with accuracies and statistics")
    missing = [k for k in ("accuracies", *STAT_KEYS, "n") if k not in block]
    if missing:
        raise RPGInputError(f"{where}: missing key(s) {', '.join(missing)}")
    accs = block["accuracies"]
    if not isinstance(accs, list) or not accs:
        raise RPGInputError(f"{where}.accuracies: expected a non-empty list")
    out = {k: _number(block[k], f"{where}.{k}") for k in STAT_KEYS}
    out["accuracies"] = [_number(a, f"{where}.accuracies[{i}]") for i, a in enumerate(accs)]
    for i, a in enumerate(out["accuracies"]):
        if not 0.0 <= a <= 100.0:
            raise RPGInputError(f"{where}.accuracies[{i}]={a}: accuracies are percentages (0-100)")
    if block["n"] != len(accs):
        raise RPGInputError(f"{where}.n={block['n']!r} but {len(accs)} accuracies are listed")
    out["n"] = len(accs)
    return out


def read_eval(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check one `rpg evaluate` output (format rpg-eval/1)."""
    d = read_json(path)
    if not isinstance(d, dict) or d.get("format") != EVAL_FORMAT:
        got = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise RPGInputError(f"{path}: not an evaluation file (format {got!r}, expected {EVAL_FORMAT!r})")
    for key in ("params", "dataset", "original", "generated"):
        if key not in d:
            raise RPGInputError(f"{path}: missing key {key!r}")
    if isinstance(d["params"], bool) or not isinstance(d["params"], int) or d["params"] <= 0:
        raise RPGInputError(f"{path}: params must be a positive integer, got {d['params']!r}")
    if not isinstance(d["dataset"], str):
        raise RPGInputError(f"{path}: dataset must be a string, got {d['dataset']!r}")
    return {
        "params": d["params"],
        "dataset": d["dataset"],
        "substitute_for": d.get("substitute_for"),
        "architecture": d.get("architecture"),
        "original": _stats(d["original"], f"{path}: original"),
        "generated": _stats(d["generated"], f"{path}: generated"),
    }


def read_paper_table(path: str | os.PathLike, columns: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """resources/paper/tableN.csv -> {architecture: {column: value as printed}}."""
    path = Path(path)
    if not path.is_file():
        raise RPGInputError(f"{path}: file not found")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in ("architecture", *columns) if c not in header]
        if missing:
            raise RPGInputError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = {}
        for line, row in enumerate(reader, start=2):
            name = row["architecture"]
            if name in rows:
                raise RPGInputError(f"{path}:{line}: architecture {name!r} listed twice")
            rows[name] = {c: row[c] for c in columns}
    return rows


def dataset_label(dataset: str, substitute_for: str | None) -> str:
    """'fashion_mnist', 'ImageNet-1K' -> 'Fashion-MNIST (substitute for ImageNet-1K)'."""
    name = DATASET_NAMES.get(dataset.lower(), dataset)
    return f"{name} (substitute for {substitute_for})" if substitute_for else name


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def _params_m(n: int) -> str:
    """Parameter count in millions, as the paper prints it; 4 significant digits (mini nets are small)."""
    return f"{n / 1e6:.4g}"


# --------------------------------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------------------------------

def table1_rows(evals: list[dict[str, Any]], labels: list[str], scale: str,
                paper: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    rows = []
    for ev, label in zip(evals, labels):
        orig, gen = ev["original"], ev["generated"]
        theirs = paper.get(label, {})
        rows.append({
            "architecture": label,
            "scale": scale,
            "dataset": dataset_label(ev["dataset"], ev["substitute_for"]),
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
    return rows


def plot_table1(evals: list[dict[str, Any]], labels: list[str], scale: str,
                paper: dict[str, dict[str, str]], out: Path) -> None:
    """Original vs generated accuracy per architecture: every model as a dot, the means as lines.
    The paper's values are drawn only when we measured on the paper's own dataset (no substitute)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on CI/cluster nodes
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(labels))
    width = 0.36
    fig, ax = plt.subplots(figsize=(max(5.5, 1.3 * len(labels) + 1.5), 4.4))
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
    same_dataset = all(not ev["substitute_for"] for ev in evals)
    if same_dataset:
        for i, label in enumerate(labels):
            theirs = paper.get(label, {})
            for offset, col in ((-width / 2, "original"), (width / 2, "average")):
                if theirs.get(col):
                    first = i == 0 and col == "original"
                    ax.plot([x[i] + offset - width / 2, x[i] + offset + width / 2], [float(theirs[col])] * 2,
                            color="black", lw=1.5, ls="--", label="paper" if first else None)
    every = np.concatenate([ev[k]["accuracies"] for ev in evals for k in ("original", "generated")])
    low, high = float(every.min()), float(every.max())
    pad = max(1.0, 0.15 * (high - low))
    ax.set_ylim(max(0.0, low - pad), min(100.0, high + pad))
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel("test accuracy (%)")
    datasets = sorted({dataset_label(ev["dataset"], ev["substitute_for"]) for ev in evals})
    ax.set_title(f"Table 1, {scale} scale\n{'; '.join(datasets)}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def build_table1(args: argparse.Namespace) -> None:
    labels = args.labels or [_default_label(p) for p in args.metrics]
    if len(labels) != len(args.metrics):
        raise RPGInputError(f"--labels: {len(labels)} labels for {len(args.metrics)} --metrics files")
    if len(set(labels)) != len(labels):
        raise RPGInputError(f"--labels: duplicate row names in {labels}")
    evals = [read_eval(p) for p in args.metrics]
    paper = read_paper_table(args.paper, TABLE1_PAPER_COLUMNS) if args.paper else {}
    rows = table1_rows(evals, labels, args.scale, paper)
    write_csv(args.out, TABLE1_COLUMNS, rows)
    plot = args.plot or Path(args.out).with_suffix(".png")
    plot_table1(evals, labels, args.scale, paper, Path(plot))
    print(f"wrote {args.out} ({len(rows)} rows) and {plot}")


def _default_label(path: str) -> str:
    """Row name when --labels is not given: the file name without .json (e.g. resnet18)."""
    return Path(path).stem


def write_csv(path: str | os.PathLike, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


# name -> (builder, one-line description). Add a paper table here and as a rule in workflow/rules/tables.smk.
TABLES: dict[str, tuple[Callable[[argparse.Namespace], None], str]] = {
    "table1": (build_table1, "original vs generated accuracy across architectures (paper Table 1)"),
}
