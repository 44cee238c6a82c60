"""Table 3 (paper §3.2, "Results on commonsense reasoning"): DoRA adapters of a causal LM, original vs generated.

One experiment per adapter rank (its eval JSON comes from the language-model domain: per-task accuracies in
`breakdown`, the base model without adapter in `baseline`). Rows per rank:

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
from rpg.tables.common import TableInputs, dots, figure, fmt, params_m, zoom
from rpg.tables.judging import MATCH_WITHIN, Claim, Finding, Missing, matching, num, one, verdict
from rpg.tables.registry import register_table

PAPER_TASKS = ("boolq", "piqa", "siqa", "hellaswag", "arc_e", "arc_c", "obqa")
STATS = (("best", "best"), ("average", "mean"), ("min", "min"), ("median", "median"), ("std", "std"))
# The `row` column: the base model, the zoo's adapters, and "generated <statistic>" per STATS
BASE_ROW, ORIGINAL_ROW, GENERATED_ROW = "base model (no adapter)", "original", "generated {}"


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


def plot_table3(inputs: TableInputs, table: pd.DataFrame):
    """Per rank: every original and generated adapter (mean accuracy over tasks) as dots, the base model as a
    dashed line."""
    import numpy as np

    labels = [r.label for r in inputs.rows]
    x = np.arange(len(labels))
    fig, ax = figure(len(labels))
    orig = [r.eval["original"]["accuracies"] for r in inputs.rows]
    gen = [r.eval["generated"]["accuracies"] for r in inputs.rows]
    dots(ax, x - 0.2, orig, "tab:blue", "original adapters")
    dots(ax, x + 0.2, gen, "tab:orange", "generated adapters")
    base = [r.eval["baseline"]["metric"] for r in inputs.rows]
    ax.hlines(base, x - 0.45, x + 0.45, color="black", ls="--", lw=1.2, label="base model (no adapter)")
    zoom(ax, [a for accs in orig + gen for a in accs] + base)
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


def judge_table3(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table3"]
    average = GENERATED_ROW.format("average")
    ours, paper, ok = [], [], []
    for label in dict.fromkeys(df["label"]):     # a rank's rows share its label (display text, never parsed)
        found = matching(df, label=label)
        orig = one(found, f"{label} original", row=ORIGINAL_ROW)
        gen = one(found, f"{label} {average}", row=average)
        o, g = num(orig["mean"]), num(gen["mean"])
        if o is None or g is None:
            raise Missing(f"{label}: no mean")
        ok.append(abs(g - o) <= MATCH_WITHIN)
        ours.append(f"{label}: {g:.2f} vs {o:.2f} ({g - o:+.2f})")
        tasks = [c for c in df.columns if c.startswith("paper_") and c != "paper_params_m"]
        po = [num(orig[c]) for c in tasks]
        pg = [num(gen[c]) for c in tasks]
        if tasks and None not in po and None not in pg:
            mo, mg = sum(po) / len(po), sum(pg) / len(pg)
            paper.append(f"{label}: {mg:.1f} vs {mo:.1f} ({mg - mo:+.1f}, mean of {len(tasks)} tasks)")
    if not ok:
        raise Missing("no rank")
    return Finding("; ".join(ours), "; ".join(paper) or "n/a", verdict(all(ok)))


TAB3 = Claim("tab3", "Generated DoRA adapters match the originals", ("table3",),
             f"every rank's generated average within {MATCH_WITHIN} point of the originals' mean", judge_table3)


@register_table("table3", plot=plot_table3, paper_key="id", claims=(TAB3,),
                domain=("language_model", "accuracy"), row_column="label", unique_rows=False,
                description="DoRA adapters per rank: base model, original, generated (paper Table 3)")
def table3(inputs: TableInputs) -> pd.DataFrame:
    out = []
    for row in inputs.rows:
        ev = row.eval
        _check(ev, row.label)
        tasks = list(ev["breakdown"])
        rank = (ev.get("architecture") or {}).get("rank")
        common = {"label": row.label, "rank": rank, "scale": inputs.scale}
        tail = {"params_m": params_m(ev["params"]), "dataset": ev.get("dataset", ""),
                "substitute_for": ev.get("substitute_for") or ""}

        def line(name: str, values: dict[str, float], n: int, paper: dict[str, str], tail=tail, common=common,
                 tasks=tasks) -> dict:
            mean = sum(values[t] for t in tasks) / len(tasks)
            return {**common, "row": name, **{t: fmt(values[t]) for t in tasks}, "mean": fmt(mean), "n": n,
                    **tail, "paper_params_m": paper.get("params_m", ""),
                    **{f"paper_{t}": paper.get(t, "") for t in PAPER_TASKS}}

        out.append(line(BASE_ROW, ev["baseline"]["breakdown"], 1, {}))
        bd = ev["breakdown"]
        out.append(line(ORIGINAL_ROW, {t: bd[t]["original"]["mean"] for t in tasks}, ev["original"]["n"],
                        _paper(inputs, rank, "original")))
        for name, key in STATS:
            values = {t: bd[t]["generated"][key] for t in tasks}
            paper = _paper(inputs, rank, "ours") if name == "average" else {}
            line_ = line(GENERATED_ROW.format(name), values, ev["generated"]["n"], paper)
            if name == "std":   # the std of the per-model mean over tasks, not a mean of stds
                line_["mean"] = fmt(ev["generated"]["std"])
            out.append(line_)
    return pd.DataFrame(out)
