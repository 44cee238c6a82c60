"""Table 3 (paper §3.2, "Results on commonsense reasoning"): DoRA adapters of a causal LM, original vs generated.

One experiment per adapter rank (its eval JSON comes from the language-model domain: per-task accuracies in
`breakdown`, the base model without adapter in `baseline`). Rows per rank, as the issue asks:

- `base model (no adapter)`: the base LM alone;
- `original`: the mean over the zoo's adapter checkpoints (the paper's "original" row);
- `generated best / average / min / median / std`: over the generated adapters (the paper prints one "ours" row
  without saying which statistic; its numbers sit beside our `generated average`).

Columns: one per task we scored (lm-eval accuracy, %), `mean` over those tasks, then the paper's seven tasks as
`paper_<task>`, `params_m` (adapter parameters, millions) and `dataset` naming what the mini scale substitutes.
The paper prints numbers for rank 4 only (resources/paper/table3.csv); the other ranks' paper columns are empty.
"""

from __future__ import annotations

import pandas as pd

from rpg.errors import RPGInputError
from rpg.tables.builders import TableInputs, _dots, _figure, _fmt, _params_m, _zoom

PAPER_TASKS = ("boolq", "piqa", "siqa", "hellaswag", "arc_e", "arc_c", "obqa")
STATS = (("best", "best"), ("average", "mean"), ("min", "min"), ("median", "median"), ("std", "std"))


def _check(ev: dict, label: str) -> None:
    for key in ("breakdown", "baseline"):
        if not isinstance(ev.get(key), dict):
            raise RPGInputError(f"table3 row {label}: eval JSON has no {key!r} (not a language_model zoo's "
                                "`rpg evaluate` output)")


def _paper(inputs: TableInputs, rank: int | None, which: str) -> dict[str, str]:
    key = f"r{rank}_{which}"
    if inputs.paper is None or key not in inputs.paper.index:
        return {}
    return {c: str(v) for c, v in inputs.paper.loc[key].items()}


def table3(inputs: TableInputs) -> pd.DataFrame:
    out = []
    for row in inputs.rows:
        ev = row.eval
        _check(ev, row.label)
        tasks = list(ev["breakdown"])
        rank = (ev.get("architecture") or {}).get("rank")
        common = {"label": row.label, "rank": rank, "scale": inputs.scale}
        tail = {"params_m": _params_m(ev["params"]), "dataset": ev.get("dataset", ""),
                "substitute_for": ev.get("substitute_for") or ""}

        def line(name: str, values: dict[str, float], n: int, paper: dict[str, str], tail=tail, common=common,
                 tasks=tasks) -> dict:
            mean = sum(values[t] for t in tasks) / len(tasks)
            return {**common, "row": name, **{t: _fmt(values[t]) for t in tasks}, "mean": _fmt(mean), "n": n,
                    **tail, "paper_params_m": paper.get("params_m", ""),
                    **{f"paper_{t}": paper.get(t, "") for t in PAPER_TASKS}}

        out.append(line("base model (no adapter)", ev["baseline"]["breakdown"], 1, {}))
        bd = ev["breakdown"]
        out.append(line("original", {t: bd[t]["original"]["mean"] for t in tasks}, ev["original"]["n"],
                        _paper(inputs, rank, "original")))
        for name, key in STATS:
            values = {t: bd[t]["generated"][key] for t in tasks}
            paper = _paper(inputs, rank, "ours") if name == "average" else {}
            line_ = line(f"generated {name}", values, ev["generated"]["n"], paper)
            if name == "std":   # the std of the per-model mean over tasks, not a mean of stds
                line_["mean"] = _fmt(ev["generated"]["std"])
            out.append(line_)
    return pd.DataFrame(out)


def plot_table3(inputs: TableInputs, table: pd.DataFrame):
    """Per rank: every original and generated adapter (mean accuracy over tasks) as dots, the base model as a
    dashed line."""
    import numpy as np

    labels = [r.label for r in inputs.rows]
    x = np.arange(len(labels))
    fig, ax = _figure(len(labels))
    orig = [r.eval["original"]["accuracies"] for r in inputs.rows]
    gen = [r.eval["generated"]["accuracies"] for r in inputs.rows]
    _dots(ax, x - 0.2, orig, "tab:blue", "original adapters")
    _dots(ax, x + 0.2, gen, "tab:orange", "generated adapters")
    base = [r.eval["baseline"]["metric"] for r in inputs.rows]
    ax.hlines(base, x - 0.45, x + 0.45, color="black", ls="--", lw=1.2, label="base model (no adapter)")
    _zoom(ax, [a for accs in orig + gen for a in accs] + base)
    ax.set_xticks(x, labels)
    ax.set_ylabel("accuracy (%), mean over tasks")
    tasks = sorted({t for r in inputs.rows for t in r.eval["breakdown"]})
    subs = sorted({r.eval.get("substitute_for") or "" for r in inputs.rows} - {""})
    ax.set_title(inputs.title or f"DoRA adapters, {inputs.scale} scale: {', '.join(tasks)}"
                 + (f"\n(substitute for {'; '.join(subs)})" if subs else ""), fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
