"""Table 2 (downstream tasks): original vs generated segmentation models, and the COCO detection column.

The paper (Tab. 2) prints, for ViT-B models, ADE20K UperNet mIoU / mAcc and COCO ViTDet mAP bbox / mAP seg of the
original checkpoints and of RPG's generated models. Our table has one row per statistic (original mean; generated
best / average / minimum / median / std, as in Tab. 1) and one column per metric, with the paper's numbers beside
them (`paper_*`, on the rows they correspond to: the paper's original on `original`, its "ours" on `average`).

- The segmentation columns come from the one configured segmentation experiment (`rpg evaluate` of its zoo and
  generated set: mIoU is the eval JSON's metric, mAcc one of its `extra_metrics`). At mini scale the dataset is a
  substitute (named in `dataset`, with `substitute_for`).
- COCO detection needs mmdetection and the COCO dataset; neither is run here. The columns are present, hold no
  value of ours, and `coco_status` says so on every row.
"""

from __future__ import annotations

import pandas as pd

from rpg.errors import RPGInputError
from rpg.tables.common import (
    TableInputs,
    dataset_label,
    datasets,
    figure,
    fmt,
    paper_drawable,
    paper_row,
    params_m,
    zoom,
)
from rpg.tables.judging import MATCH_WITHIN, Claim, Finding, Missing, num, one, verdict
from rpg.tables.registry import register_table

PAPER_COLUMNS = ("ade20k_params_m", "ade20k_miou", "ade20k_macc", "coco_params_m", "coco_map_bbox", "coco_map_seg")
AVERAGE = "average"    # the `statistic` of the generated mean (the paper's "ours" sits beside it)
STATS = (("original", "mean", "original"), ("generated", "best", "best"), ("generated", "mean", AVERAGE),
         ("generated", "min", "minimum"), ("generated", "median", "median"), ("generated", "std", "std"))
# mmdet 3.3.0 installs from PyPI, but its Mask R-CNN heads call compiled mmcv ops (RPN: batched_nms; RoI
# extractor: RoIAlign), which mmcv-lite lacks and our stand-in must not provide (docs/segmentation.md)
COCO_STATUS = ("not run: COCO detection/instance segmentation (ViTDet ViT-B) needs the compiled mmcv ops that "
               "mmdetection's RPN and RoI heads call (batched_nms, RoIAlign) and the COCO dataset, which is not "
               "available offline; only the paper's numbers are shown")
COLUMNS = ("models", "statistic", "scale", "dataset", "model", "params", "n",
           "miou", "macc", "coco_map_bbox", "coco_map_seg", "coco_status",
           *(f"paper_{c}" for c in PAPER_COLUMNS))


def _one_row(inputs: TableInputs):
    if len(inputs.rows) != 1:
        raise RPGInputError(f"table2: expected exactly one segmentation experiment row, got {len(inputs.rows)} "
                            f"({', '.join(r.label for r in inputs.rows)})")
    row = inputs.rows[0]
    if row.eval.get("metric") != "mIoU" or row.eval.get("generated") is None:
        raise RPGInputError(f"table2: row {row.label}: needs the evaluation of a segmentation zoo and its generated "
                            f"set (metric mIoU), got metric {row.eval.get('metric')!r}")
    return row


def plot_table2(inputs: TableInputs, table: pd.DataFrame):
    """mIoU and mAcc of every original and generated model (dots) with their means (lines); COCO: a note."""
    import numpy as np

    ev = _one_row(inputs).eval
    metrics = [("mIoU", ev)]
    if (ev.get("extra_metrics") or {}).get("mAcc"):
        metrics.append(("mAcc", ev["extra_metrics"]["mAcc"]))
    fig, ax = figure(len(metrics) + 1)
    rng = np.random.default_rng(0)   # jitter only; fixed so the PNG is reproducible
    width, values = 0.36, []
    for i, (_, src) in enumerate(metrics):
        for offset, key, colour, label in ((-width / 2, "original", "tab:blue", "original checkpoints"),
                                           (width / 2, "generated", "tab:orange", "generated (RPG)")):
            vals = np.asarray(src[key]["accuracies"], dtype=float)
            values.extend(vals)
            ax.hlines(vals.mean(), i + offset - width / 2, i + offset + width / 2, color=colour, lw=3,
                      label=f"{label} (mean: line)" if i == 0 else None)
            ax.scatter(i + offset + rng.uniform(-width / 4, width / 4, vals.size), vals, s=10, color=colour, zorder=3)
    if paper_drawable(inputs):
        for i, col in enumerate(("ade20k_miou", "ade20k_macc")[: len(metrics)]):
            for offset, method in ((-width / 2, "original"), (width / 2, "ours")):
                v = paper_row(inputs.paper, method).get(col)
                if v:
                    ax.plot([i + offset - width / 2, i + offset + width / 2], [float(v)] * 2, color="black", ls="--",
                            label="paper" if i == 0 and method == "original" else None)
                    values.append(float(v))
    zoom(ax, values)
    ax.text(len(metrics), float(np.mean(ax.get_ylim())), "COCO mAP\nbbox / seg:\nnot run\n(needs mmdetection\n+ COCO)",
            ha="center", va="center", fontsize=8, color="dimgray")
    ax.set_xlim(-0.6, len(metrics) + 0.6)
    ax.set_xticks(range(len(metrics) + 1), [m for m, _ in metrics] + ["COCO"])
    ax.set_ylabel("%")
    ax.set_title(inputs.title or f"Table 2, {inputs.scale} scale: {_one_row(inputs).label}\n{datasets(inputs)}",
                 fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def judge_table2(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table2"]
    orig = one(df, "original", models="original")
    gen = one(df, "generated average", models="generated", statistic=AVERAGE)
    o, g = num(orig["miou"]), num(gen["miou"])
    if o is None or g is None:
        raise Missing("no mIoU")
    po, pg = num(orig.get("paper_ade20k_miou")), num(gen.get("paper_ade20k_miou"))
    paper = f"mIoU {pg:.1f} vs {po:.1f} ({pg - po:+.1f})" if po is not None and pg is not None else "n/a"
    return Finding(f"mIoU {g:.2f} vs {o:.2f} ({g - o:+.2f})", paper, verdict(abs(g - o) <= MATCH_WITHIN))


TAB2 = Claim("tab2", "Generated segmentation models match the originals", ("table2",),
             f"generated average mIoU within {MATCH_WITHIN} point of the originals'", judge_table2)


@register_table("table2", plot=plot_table2, paper_key="method", paper_columns=PAPER_COLUMNS, claims=(TAB2,),
                domain=("segmentation", "mIoU"), row_column="model", unique_rows=False,
                description="original vs generated segmentation mIoU/mAcc, COCO column (paper Table 2)")
def table2(inputs: TableInputs) -> pd.DataFrame:
    row = _one_row(inputs)
    ev = row.eval
    extra = (ev.get("extra_metrics") or {}).get("mAcc") or {}
    paper = {"original": paper_row(inputs.paper, "original"), AVERAGE: paper_row(inputs.paper, "ours")}
    out = []
    for models, stat, name in STATS:
        summary = ev[models]
        macc = extra.get(models) or {}
        theirs = paper.get(name, {})
        out.append({
            "models": models, "statistic": name, "scale": inputs.scale,
            "dataset": dataset_label(ev["dataset"], ev.get("substitute_for")),
            "model": row.label, "params": params_m(ev["params"]), "n": str(summary["n"]),
            "miou": fmt(summary[stat]), "macc": fmt(macc[stat]) if macc.get(stat) is not None else "",
            "coco_map_bbox": "", "coco_map_seg": "", "coco_status": COCO_STATUS,
            **{f"paper_{c}": theirs.get(c, "") for c in PAPER_COLUMNS},
        })
    return pd.DataFrame(out, columns=list(COLUMNS), dtype=str)
