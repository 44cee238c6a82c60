"""Sampling tables: the cost and the similarity of generation, from Table 1's generators (never retrained).

- `table7` (paper Tab. 7): DDIM steps -> time per generated model, peak memory, accuracy.
- `table13` (paper Tab. 13): inference mode (sequential / partially parallel / fully parallel) -> time and peak
  memory of one generated model.
- `table16` (paper Tab. 16): accuracy decline of the generated models next to that of the originals with Gaussian
  noise of weight 0.01 / 0.10 / 1.00 in the tokenizer's normalized space (rpg.evaluation.similarity).
- `fig9` (paper Fig. 9): accuracy against nearest-neighbour IoU for originals, noised originals and generated
  models, and the check of the paper's claim that generated models are not noisy copies: each generated model
  is compared with the noise baseline at the same accuracy (the noise levels' mean IoU interpolated at the
  generated model's accuracy); a generated model passes when it is less similar to the originals than that.

Time and memory are the generation's own record (`generation.cost` of the eval JSON, written by `rpg generate`,
rpg.measure): seconds of sampling per model and the peak memory of the sampling (CPU: peak RSS delta; CUDA:
max_memory_allocated). Rows are compared as ratios within one table (same machine, one workflow run), which is
what transfers from a 2-core CPU to the paper's H100; the machine is a column.

Tab. 7 and Tab. 13 group their rows by generator: each row's group (`rpg table --groups`, config
`tables.<id>.groups`) names the generator it samples, as printed in the `model` column. A row's label is display
only, and the key that joins it to the paper's CSV.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rpg.errors import RPGInputError
from rpg.tables.common import (
    MIB,
    Row,
    TableInputs,
    dataset_label,
    datasets,
    generation,
    paper_float,
    paper_row,
    ratio,
)
from rpg.tables.judging import (
    AS_GOOD_WITHIN,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    Claim,
    Finding,
    Missing,
    matching,
    needed,
    num,
    one_of,
    verdict,
)
from rpg.tables.registry import register_table

TABLE16_LEVELS = (0.01, 0.10, 1.00)        # the paper's Tab. 16 noise weights
MODE_NAMES = {"sequential": "sequential", "partial": "partially parallel", "full": "fully parallel"}
RATIO_DIGITS = 3                           # time and memory ratios of these tables
# Fig. 9's check per model (claim_check): every generated model, most of them, or at most half pass
CHECK_HOLDS, CHECK_MOST, CHECK_FAILS = "holds", "holds for most", "does not hold"


# --------------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------------

def _cost(row: Row) -> dict[str, Any]:
    cost = generation(row.eval).get("cost")
    if not isinstance(cost, dict) or not all(k in cost for k in ("per_model_s", "peak_memory_bytes")):
        raise RPGInputError(f"row {row.label!r}: its evaluation has no generation.cost (time and memory of "
                            "sampling): evaluate a generated set written by this version of `rpg generate`")
    return cost


def _similarity(row: Row) -> dict[str, Any]:
    sim = row.eval.get("similarity")
    if not isinstance(sim, dict) or not sim.get("generated") or not isinstance(sim.get("noise"), dict):
        raise RPGInputError(f"row {row.label!r}: its evaluation has no similarity with a noise baseline "
                            "(`rpg evaluate --similarity`; config `evaluate: {similarity: true}`)")
    return sim


def _noise_level(row: Row, level: float) -> dict[str, Any]:
    for entry in _similarity(row)["noise"]["levels"]:
        if abs(float(entry["level"]) - level) < 1e-9:
            return entry
    raise RPGInputError(f"row {row.label!r}: the noise baseline has no level {level:g} (evaluate with "
                        f"--noise-levels including {','.join(f'{x:g}' for x in TABLE16_LEVELS)})")


def _substitute(inputs: TableInputs, row: Row, model: str, what: str) -> str:
    """What the row (a sample of `model`) stands in for at this scale ("" at paper scale on the paper's data)."""
    ev = row.eval
    if inputs.scale == "paper" and not ev.get("substitute_for"):
        return ""
    data = dataset_label(ev["dataset"], ev.get("substitute_for"))
    return f"{ev['params'] / 1e6:.3g}M-parameter {model} analogue on {data}; {what}"


def _ratio(value: float | None, ref: float | None) -> float | None:
    return ratio(value, ref, RATIO_DIGITS)


def _paper_ratio(value: float | None, ref: float | None) -> float | str:
    """The same ratio from the paper's numbers; "" where the paper has either figure missing."""
    return _ratio(value, ref) if value is not None and ref else ""


def _paper_cols(inputs: TableInputs, row: Row, columns: tuple[str, ...]) -> dict[str, str]:
    theirs = paper_row(inputs.paper, row.label)
    return {f"paper_{c}": theirs.get(c, "") for c in columns}


def _grouped(inputs: TableInputs) -> dict[str, list[int]]:
    """Row indices per group (the generator each row samples), in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(inputs.rows):
        groups.setdefault(row.group, []).append(i)
    return groups


# --------------------------------------------------------------------------------------------------
# Claims judged from these tables (rpg.tables.claims reports them)
# --------------------------------------------------------------------------------------------------

def judge_table7(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table7"]
    for _, r in df.iterrows():       # ours are needed: a row without them would drop out of the comparison
        for col in ("steps", "accuracy_mean", "time_per_model_s"):
            needed(r, col, r.get("label") or r["model"])

    def side(acc_col: str, time_col: str) -> tuple[str, bool | None]:
        parts, oks = [], []
        for model in dict.fromkeys(df["model"]):
            found = [(int(num(r["steps"])), num(r[acc_col]), num(r[time_col]))
                     for _, r in matching(df, model=model).iterrows() if num(r["steps"]) is not None]
            found = sorted(r for r in found if r[1] is not None and r[2] is not None)
            if len(found) < 2:
                return "n/a", None
            most = found[-1]
            enough = next(r for r in found if r[1] >= most[1] - AS_GOOD_WITHIN)
            oks.append(enough[0] < most[0] and enough[2] < most[2])
            parts.append(f"{model}: {enough[0]} steps {enough[1]:.2f} vs {most[0]} steps {most[1]:.2f}, "
                         f"time x{enough[2] / most[2]:.2f}")
        return "; ".join(parts), all(oks) if oks else None

    ours, ok = side("accuracy_mean", "time_per_model_s")
    if ok is None:
        raise Missing("fewer than two step counts with accuracy and time")
    paper, _ = side("paper_accuracy", "paper_time_min") if "paper_accuracy" in df.columns else ("n/a", None)
    return Finding(ours, paper, verdict(ok))


def judge_table13(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table13"]

    def side(time_col: str, mem_col: str) -> tuple[str, bool | None]:
        parts, oks = [], []
        for model in dict.fromkeys(df["model"]):
            by_mode = {r["mode"]: (num(r[time_col]), num(r[mem_col])) for _, r in matching(df, model=model).iterrows()}
            need = tuple(MODE_NAMES[m] for m in ("sequential", "partial", "full"))
            if not all(m in by_mode and None not in by_mode[m] for m in need):
                return "n/a", None
            (ts, _), (tp, mp), (_, mf) = (by_mode[m] for m in need)
            oks.append(mp < mf and tp < ts)
            parts.append(f"{model}: partial time x{tp / ts:.2f} of sequential, memory x{mp / mf:.2f} of full")
        return "; ".join(parts), all(oks) if oks else None

    ours, ok = side("time_per_model_s", "peak_memory_mib")
    if ok is None:
        raise Missing("a model without all three modes")
    paper, _ = side("paper_time_min", "paper_memory_gb") if "paper_time_min" in df.columns else ("n/a", None)
    return Finding(ours, paper, verdict(ok))


def judge_fig9(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["fig9"]
    if df.empty:
        raise Missing("no rows")
    for _, r in df.iterrows():       # a blank or garbled check is no result (it would count as a split one)
        one_of(r, "not_noisy_copy", r["label"], (CHECK_HOLDS, CHECK_MOST, CHECK_FAILS))
    parts = [f"{r['label']}: {r['less_similar_than_noise']} less similar than noise of equal accuracy"
             for _, r in df.iterrows()]
    checks = set(df["not_noisy_copy"])
    result = HOLDS if checks == {CHECK_HOLDS} else FAILS if checks == {CHECK_FAILS} else INCONCLUSIVE
    return Finding("; ".join(parts), "generated models lie upper left of the noised ones (Fig. 9)", result)


TAB7 = Claim("tab7", "Few DDIM steps suffice", ("table7",),
             f"for every model, fewer steps than the most tried reach its accuracy minus {AS_GOOD_WITHIN} point, in "
             "less time", judge_table7)
TAB13 = Claim("tab13", "Partial parallel mode trades memory for time", ("table13",),
              "for every model, partial mode is faster than sequential and uses less memory than fully parallel",
              judge_table13)
FIG9 = Claim("fig9", "Generated models are not noisy copies", ("fig9",),
             "every model's generated checkpoints are less similar to the originals than noise of equal accuracy "
             "(a split result is inconclusive)", judge_fig9)


# --------------------------------------------------------------------------------------------------
# Tab. 7: DDIM steps
# --------------------------------------------------------------------------------------------------

TABLE7_PAPER = ("time_min", "memory_gb", "accuracy")
TABLE7_REF_STEPS = 60          # the paper's default for the Large generators (ViT-Base, ConvNeXt-L)


def plot_table7(inputs: TableInputs, table: pd.DataFrame):
    """Per model: accuracy against DDIM steps (left), time per model relative to DDIM-60 (right), ours and the
    paper's."""
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_t) = plt.subplots(1, 2, figsize=(10, 4.2))
    for k, (model, group) in enumerate(table.groupby("model", sort=False)):
        colour = f"C{k}"
        ax_acc.plot(group["steps"], group["accuracy_mean"], "o-", color=colour, label=f"{model} (ours)")
        ax_acc.axhline(group["original_mean"].iloc[0], color=colour, ls=":", lw=1)
        ax_t.plot(group["steps"], group["time_ratio"], "o-", color=colour, label=f"{model} (ours)")
        paper_t = pd.to_numeric(group["paper_time_ratio"], errors="coerce")
        if paper_t.notna().any():
            ax_t.plot(group["steps"], paper_t, "x--", color=colour, label=f"{model} (paper, H100)")
    ax_acc.set_xscale("log")
    ax_t.set_xscale("log")
    ax_acc.set_xlabel("DDIM steps")
    ax_t.set_xlabel("DDIM steps")
    ax_acc.set_ylabel("generated accuracy, mean (%); dotted: originals")
    ax_t.set_ylabel(f"time per model / DDIM-{TABLE7_REF_STEPS}")
    for ax in (ax_acc, ax_t):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    machine = table["machine"].iloc[0] if len(table) else ""
    fig.suptitle(inputs.title or f"Table 7, {inputs.scale} scale: DDIM steps ({machine})\n{datasets(inputs)}",
                 fontsize=10)
    fig.tight_layout()
    return fig


@register_table("table7",
                row_column="label", plot=plot_table7, paper_columns=TABLE7_PAPER, needs=("groups",), claims=(TAB7,),
                description="DDIM steps: time per model, peak memory, accuracy (paper Table 7; --groups: each "
                            "row's generator)")
def table7(inputs: TableInputs) -> pd.DataFrame:
    """One row per (model, DDIM steps). Ratios are to the same model's DDIM-60 row (else its first row)."""
    rows = []
    for model, idx in _grouped(inputs).items():
        group = [inputs.rows[i] for i in idx]
        steps = [generation(r.eval).get("steps") for r in group]
        ref = group[steps.index(TABLE7_REF_STEPS)] if TABLE7_REF_STEPS in steps else group[0]
        ref_t, ref_m = _cost(ref)["per_model_s"], _cost(ref)["peak_memory_bytes"]
        ref_paper = paper_float(paper_row(inputs.paper, ref.label).get("time_min"))
        for row in group:
            gen, cost, ev = generation(row.eval), _cost(row), row.eval
            paper = _paper_cols(inputs, row, TABLE7_PAPER)
            rows.append({
                "label": row.label, "model": model, "scale": inputs.scale,
                "sampler": gen.get("sampler"), "steps": gen.get("steps"), "models": cost.get("models"),
                "time_per_model_s": round(cost["per_model_s"], 3),
                "time_ratio": _ratio(cost["per_model_s"], ref_t),
                "peak_memory_mib": round(cost["peak_memory_bytes"] / MIB, 1),
                "memory_ratio": _ratio(cost["peak_memory_bytes"], ref_m),
                "accuracy_mean": ev["generated"]["mean"], "accuracy_std": ev["generated"]["std"],
                "original_mean": ev["original"]["mean"],
                "gap": round(ev["generated"]["mean"] - ev["original"]["mean"], 2),
                "memory_measure": cost.get("memory"), "machine": cost.get("machine"),
                "mini_substitute": _substitute(inputs, row, model, f"{cost.get('device')} ({cost.get('machine')}) "
                                               "instead of one H100; time and memory as ratios to DDIM-60"),
                **paper,
                "paper_time_ratio": _paper_ratio(paper_float(paper.get("paper_time_min")), ref_paper),
            })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Tab. 13: inference modes
# --------------------------------------------------------------------------------------------------

TABLE13_PAPER = ("time_min", "memory_gb")


def plot_table13(inputs: TableInputs, table: pd.DataFrame):
    """Time against peak memory per model, both relative to fully parallel: one line per model through its three
    modes, ours (filled) and the paper's (crosses)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    markers = {"sequential": "o", "partially parallel": "s", "fully parallel": "^"}
    for k, (model, group) in enumerate(table.groupby("model", sort=False)):
        colour = f"C{k}"
        ax.plot(group["memory_vs_full"], group["time_vs_full"], "-", color=colour, alpha=0.6, label=model)
        for _, r in group.iterrows():
            ax.scatter(r["memory_vs_full"], r["time_vs_full"], color=colour, marker=markers.get(r["mode"], "o"))
        pm = pd.to_numeric(group["paper_memory_vs_full"], errors="coerce")
        pt = pd.to_numeric(group["paper_time_vs_full"], errors="coerce")
        if pm.notna().any():
            ax.plot(pm, pt, "x:", color=colour, alpha=0.8)
    for mode, marker in markers.items():
        ax.scatter([], [], color="grey", marker=marker, label=mode)
    ax.plot([], [], "x:", color="grey", label="paper (H100)")
    ax.set_yscale("log")
    ax.set_xlabel("peak memory / fully parallel")
    ax.set_ylabel("time per model / fully parallel")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    machine = table["machine"].iloc[0] if len(table) else ""
    ax.set_title(inputs.title or f"Table 13, {inputs.scale} scale: inference modes ({machine})\n"
                 f"{datasets(inputs)}", fontsize=9)
    fig.tight_layout()
    return fig


@register_table("table13",
                row_column="label", plot=plot_table13, paper_columns=TABLE13_PAPER, needs=("groups",), claims=(TAB13,),
                description="inference modes: time and peak memory per model (paper Table 13; --groups: each "
                            "row's generator)")
def table13(inputs: TableInputs) -> pd.DataFrame:
    """One row per (model, mode): time and peak memory per generated model, as ratios to the same model's fully
    parallel row (the largest memory, so the ratio never divides by a near-zero figure)."""
    rows = []
    for model, idx in _grouped(inputs).items():
        group = [inputs.rows[i] for i in idx]
        modes = [generation(r.eval).get("mode") for r in group]
        ref = group[modes.index("full")] if "full" in modes else group[0]
        ref_t, ref_m = _cost(ref)["per_model_s"], _cost(ref)["peak_memory_bytes"]
        ref_paper = paper_row(inputs.paper, ref.label)
        for row in group:
            gen, cost = generation(row.eval), _cost(row)
            paper = _paper_cols(inputs, row, TABLE13_PAPER)
            mode = gen.get("mode")
            rows.append({
                "label": row.label, "model": model, "scale": inputs.scale,
                "mode": MODE_NAMES.get(mode, mode), "chunk_size": gen.get("chunk_size") if mode == "partial" else "",
                "sampler": gen.get("sampler"), "steps": gen.get("steps"), "models": cost.get("models"),
                "time_per_model_s": round(cost["per_model_s"], 3),
                "time_vs_full": _ratio(cost["per_model_s"], ref_t),
                "peak_memory_mib": round(cost["peak_memory_bytes"] / MIB, 2),
                "memory_vs_full": _ratio(cost["peak_memory_bytes"], ref_m),
                "accuracy": row.eval["generated"]["mean"],
                "memory_measure": cost.get("memory"), "machine": cost.get("machine"),
                "mini_substitute": _substitute(
                    inputs, row, model, f"{gen.get('sampler')}-{gen.get('steps')} on {cost.get('device')} "
                    f"({cost.get('machine')}) instead of DDPM-1000 on one H100"
                    + (f"; chunk {gen.get('chunk_size')} tokens instead of 256" if mode == "partial" else "")),
                **paper,
                "paper_time_vs_full": _paper_ratio(paper_float(paper.get("paper_time_min")),
                                                   paper_float(ref_paper.get("time_min"))),
                "paper_memory_vs_full": _paper_ratio(paper_float(paper.get("paper_memory_gb")),
                                                     paper_float(ref_paper.get("memory_gb"))),
            })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Fig. 9 claim check, Tab. 16: noise sensitivity
# --------------------------------------------------------------------------------------------------

def noise_curve(row: Row) -> tuple[np.ndarray, np.ndarray]:
    """The noise baseline as (mean accuracy, mean nearest-neighbour IoU) per level, sorted by accuracy."""
    levels = _similarity(row)["noise"]["levels"]
    pts = sorted((float(lv["mean_accuracy"]), float(lv["mean_max_iou"])) for lv in levels)
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def claim_check(row: Row) -> dict[str, Any]:
    """Generated models against noise of equal accuracy. Each generated model's nearest-neighbour IoU is compared
    with the noise baseline's IoU at its accuracy (linear in accuracy between levels; beyond the levels, the
    nearest level's IoU). Less similar at equal accuracy = not a noisy copy (paper App. B.4: "upper left")."""
    acc_n, iou_n = noise_curve(row)
    gen = _similarity(row)["generated"]
    acc_g = np.array([float(g["accuracy"]) for g in gen])
    iou_g = np.array([float(g["max_iou"]) for g in gen])
    iou_eq = np.interp(acc_g, acc_n, iou_n)             # (G,) noise IoU at each generated model's accuracy
    less = int((iou_g < iou_eq).sum())
    n = len(gen)
    check = CHECK_HOLDS if less == n else (CHECK_MOST if 2 * less > n else CHECK_FAILS)
    return {"n_generated": n, "generated_accuracy_mean": round(float(acc_g.mean()), 2),
            "generated_max_iou_mean": round(float(iou_g.mean()), 4),
            "noise_iou_at_equal_accuracy": round(float(iou_eq.mean()), 4),
            "less_similar_than_noise": f"{less}/{n}", "not_noisy_copy": check}


TABLE16_PAPER = ("params_m", "sensitivity", "ours", "noise_0.01", "noise_0.10", "noise_1.00")


def plot_table16(inputs: TableInputs, table: pd.DataFrame):
    """Accuracy decline per model: the generated models' beside each noise weight (log scale), ours and paper."""
    import matplotlib.pyplot as plt

    cols = ["ours", *(f"noise_{lv:.2f}" for lv in TABLE16_LEVELS)]
    names = ["generated", *(f"noise {lv:.2f}" for lv in TABLE16_LEVELS)]
    x = np.arange(len(table))
    width = 0.8 / len(cols)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(table) + 2), 4.4))
    for k, (col, name) in enumerate(zip(cols, names)):
        ours = table[col].to_numpy(dtype=float).clip(min=0.005)      # log axis: a gain shows at the floor
        ax.bar(x + (k - (len(cols) - 1) / 2) * width, ours, width, color=f"C{k}", label=name)
        paper = pd.to_numeric(table.get(f"paper_{col}", pd.Series(dtype=str)), errors="coerce")
        if paper.notna().any():
            ax.scatter(x + (k - (len(cols) - 1) / 2) * width, paper.clip(lower=0.005), marker="x", color="black",
                       zorder=3, label="paper" if k == 0 else None)
    ax.set_yscale("log")
    ax.set_xticks(x, table["label"])
    ax.set_ylabel("accuracy decline (points; floor 0.005)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(inputs.title or f"Table 16, {inputs.scale} scale: sensitivity\n{datasets(inputs)}", fontsize=10)
    fig.tight_layout()
    return fig


@register_table("table16", plot=plot_table16, paper_columns=TABLE16_PAPER,
                description="accuracy decline: generated vs noised originals (paper Table 16)")
def table16(inputs: TableInputs) -> pd.DataFrame:
    """Accuracy decline (original mean - mean of the generated / noised models, points) per model and noise
    weight. `sensitivity` ranks the rows by their summed noise decline (most sensitive: most +), as the paper's
    plus signs do; the last columns carry the Fig. 9 claim check."""
    declines = [[_noise_level(r, lv)["accuracy_decline"] for lv in TABLE16_LEVELS] for r in inputs.rows]
    order = np.argsort([sum(d) for d in declines])                 # least sensitive first
    plus = {int(i): "+" * (rank + 1) for rank, i in enumerate(order)}
    rows = []
    for i, (row, dec) in enumerate(zip(inputs.rows, declines)):
        ev = row.eval
        check = claim_check(row)
        rows.append({
            "label": row.label, "scale": inputs.scale, "params_m": f"{ev['params'] / 1e6:.4g}",
            "sensitivity": plus[i],
            "ours": round(ev["original"]["mean"] - ev["generated"]["mean"], 2),
            **{f"noise_{lv:.2f}": d for lv, d in zip(TABLE16_LEVELS, dec)},
            "noise_repeats": _similarity(row)["noise"].get("repeats"),
            "n_generated": ev["generated"]["n"],
            "generated_max_iou_mean": check["generated_max_iou_mean"],
            "noise_iou_at_equal_accuracy": check["noise_iou_at_equal_accuracy"],
            "not_noisy_copy": check["not_noisy_copy"],
            "mini_substitute": _substitute(inputs, row, row.label, "noise in the tokenizer's normalized space, as the "
                                           "official evaluate.py; decline against the mean of all originals"),
            **_paper_cols(inputs, row, TABLE16_PAPER),
        })
    return pd.DataFrame(rows)


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of 2-D points (monotone chain), counter-clockwise; the shaded range of the noised models."""
    pts = sorted(map(tuple, points))
    if len(pts) < 3:
        return np.array(pts)

    def half(seq):
        out: list[tuple[float, float]] = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(half(pts) + half(reversed(pts)))


def plot_fig9(inputs: TableInputs, table: pd.DataFrame):
    """One panel per model: accuracy (y) against nearest-neighbour IoU (x) for originals, noised originals (shaded
    range, coloured by level) and generated models; upper left = accurate and dissimilar."""
    import matplotlib.pyplot as plt

    n = len(inputs.rows)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.2), squeeze=False)
    for ax, row, (_, summary) in zip(axes[0], inputs.rows, table.iterrows()):
        sim = _similarity(row)
        levels = sim["noise"]["levels"]
        pts = np.array([(iou, acc) for lv in levels for iou, acc in zip(lv["max_iou"], lv["accuracies"])])
        hull = _hull(pts)
        if len(hull) >= 3:
            ax.fill(hull[:, 0], hull[:, 1], color="grey", alpha=0.15, label="noise range")
        cmap = plt.get_cmap("viridis")
        for k, lv in enumerate(levels):
            ax.scatter(lv["max_iou"], lv["accuracies"], s=12, color=cmap(k / max(len(levels) - 1, 1)),
                       label=f"noise {lv['level']:g}")
        orig_iou = sim.get("original_max_iou") or []
        orig = [(i, a) for i, a in zip(orig_iou, row.eval["original"]["accuracies"]) if i is not None]
        if orig:
            ax.scatter(*zip(*orig), s=12, marker="s", color="tab:blue", label="originals (nearest other)")
        gen = sim["generated"]
        ax.scatter([g["max_iou"] for g in gen], [g["accuracy"] for g in gen], s=22, marker="*",
                   color="tab:orange", label="generated", zorder=4)
        acc_n, iou_n = noise_curve(row)
        ax.plot(iou_n, acc_n, "--", color="grey", lw=1)
        # zoomed to originals and generated models: noise that destroys the model (weight 1.0) is off-scale
        shown = [g["accuracy"] for g in gen] + list(row.eval["original"]["accuracies"])
        low, top = min(shown), max(shown)
        ax.set_ylim(low - max(3.0, 0.5 * (top - low)), top + 1.0)
        ax.set_xlabel("nearest-neighbour IoU with the originals")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{row.label}: not a noisy copy: {summary['not_noisy_copy']} "
                     f"({summary['less_similar_than_noise']})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(inputs.title or f"Fig. 9, {inputs.scale} scale: accuracy vs similarity\n{datasets(inputs)}",
                 fontsize=10)
    fig.tight_layout()
    return fig


@register_table("fig9",
                row_column="label", plot=plot_fig9, claims=(FIG9,),
                description="accuracy vs nearest-neighbour IoU; are generated models noisy copies? (paper Fig. 9)")
def fig9(inputs: TableInputs) -> pd.DataFrame:
    """The claim check per model (the points themselves are the eval JSON's similarity block; see the plot)."""
    rows = []
    for row in inputs.rows:
        sim = _similarity(row)
        nearest = [v for v in sim.get("original_max_iou") or [] if v is not None]
        rows.append({"label": row.label, "scale": inputs.scale,
                     "original_accuracy_mean": row.eval["original"]["mean"],
                     "original_nearest_iou_mean": round(float(np.mean(nearest)), 4) if nearest else None,
                     **claim_check(row),
                     "claim": "generated models are less similar to the originals than noise of equal accuracy",
                     "mini_substitute": _substitute(inputs, row, row.label, "IoU of the mistakes on the test split")})
    return pd.DataFrame(rows)
