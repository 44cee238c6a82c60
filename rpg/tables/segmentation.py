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
from rpg.tables.builders import TableInputs, _datasets, _fmt, _paper_row, _params_m, dataset_label

PAPER_COLUMNS = ("ade20k_params_m", "ade20k_miou", "ade20k_macc", "coco_params_m", "coco_map_bbox", "coco_map_seg")
STATS = (("original", "mean", "original"), ("generated", "best", "best"), ("generated", "mean", "average"),
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


def table2(inputs: TableInputs) -> pd.DataFrame:
    row = _one_row(inputs)
    ev = row.eval
    extra = (ev.get("extra_metrics") or {}).get("mAcc") or {}
    paper = {"original": _paper_row(inputs.paper, "original"), "average": _paper_row(inputs.paper, "ours")}
    out = []
    for models, stat, name in STATS:
        summary = ev[models]
        macc = extra.get(models) or {}
        theirs = paper.get(name, {})
        out.append({
            "models": models, "statistic": name, "scale": inputs.scale,
            "dataset": dataset_label(ev["dataset"], ev.get("substitute_for")),
            "model": row.label, "params": _params_m(ev["params"]), "n": str(summary["n"]),
            "miou": _fmt(summary[stat]), "macc": _fmt(macc[stat]) if macc.get(stat) is not None else "",
            "coco_map_bbox": "", "coco_map_seg": "", "coco_status": COCO_STATUS,
            **{f"paper_{c}": theirs.get(c, "") for c in PAPER_COLUMNS},
        })
    return pd.DataFrame(out, columns=list(COLUMNS), dtype=str)


def plot_table2(inputs: TableInputs, table: pd.DataFrame):
    """mIoU and mAcc of every original and generated model (dots) with their means (lines); COCO: a note."""
    import numpy as np

    from rpg.tables.builders import _figure, _paper_drawable, _zoom

    ev = _one_row(inputs).eval
    metrics = [("mIoU", ev)]
    if (ev.get("extra_metrics") or {}).get("mAcc"):
        metrics.append(("mAcc", ev["extra_metrics"]["mAcc"]))
    fig, ax = _figure(len(metrics) + 1)
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
    if _paper_drawable(inputs):
        for i, col in enumerate(("ade20k_miou", "ade20k_macc")[: len(metrics)]):
            for offset, method in ((-width / 2, "original"), (width / 2, "ours")):
                v = _paper_row(inputs.paper, method).get(col)
                if v:
                    ax.plot([i + offset - width / 2, i + offset + width / 2], [float(v)] * 2, color="black", ls="--",
                            label="paper" if i == 0 and method == "original" else None)
                    values.append(float(v))
    _zoom(ax, values)
    ax.text(len(metrics), float(np.mean(ax.get_ylim())), "COCO mAP\nbbox / seg:\nnot run\n(needs mmdetection\n+ COCO)",
            ha="center", va="center", fontsize=8, color="dimgray")
    ax.set_xlim(-0.6, len(metrics) + 0.6)
    ax.set_xticks(range(len(metrics) + 1), [m for m, _ in metrics] + ["COCO"])
    ax.set_ylabel("%")
    ax.set_title(inputs.title or f"Table 2, {inputs.scale} scale: {_one_row(inputs).label}\n{_datasets(inputs)}",
                 fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
