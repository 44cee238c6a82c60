"""Builders of the paper's ablation tables (§3.3, App. B.2): Tab. 4a, 4b, 5, 6 and Fig. 4.

Every row is one trained generator on the ViT analogues' zoos. A row's setting (recurrent model, position
embedding, tokenizer, token size) is read from its run folder's config.json (`rpg table --runs`), never from its
label, so a row reused from Table 1 (the default settings) is recognised by what it is. The paper's numbers are
joined on that setting's name as the paper prints it (resources/paper/<table>.csv, column `setting`, or `model`
for Tab. 6). Training time and memory come from meta.json's `training` block (rpg.generator.training): the
wall time of the training steps and the peak memory delta of the training process (`memory_measure` says which
measure), all from the machine that ran the workflow. Time and memory are compared as ratios to the default row,
which is how the paper's GPU-hours can be set beside CPU seconds.

- `table4a`: with / without the recurrent model. A row FAILS when the mean accuracy of its generated models is
  below FAIL_FACTOR x chance (chance = 100 / number of classes); the paper prints "fail" for the row without.
- `table4b`: position embeddings; also the generator's stored size and the learnable embedding's parameters,
  the paper's argument against the learnable one ("saving too many embeddings is impractical").
- `fig4`: tokenization strategies: accuracy, tokens, padding and training time.
- `table5`: recurrent structures: accuracy, training time, peak memory (ratios to Mamba at the same width).
- `table6`: token size x model size, one row per model (each row's group, `rpg table --groups`, names its model);
  a mini size d stands for the paper's 32 d.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from rpg.errors import RPGInputError
from rpg.tables.common import MIB, dataset_label, datasets, dots, paper_float, ratio, run_config, zoom
from rpg.tables.judging import (
    AS_GOOD_WITHIN,
    BEST_WITHIN,
    INCONCLUSIVE,
    Claim,
    Finding,
    Missing,
    fmt,
    needed,
    num,
    one,
    one_of,
    verdict,
)
from rpg.tables.registry import register_table

FAIL_FACTOR = 2.0        # "fail": generated mean below twice chance accuracy
GOOD_WITHIN = 1.0        # Tab. 6: a token size "works" when its mean is within 1 point of the model's best
PAPER_FAIL_BELOW = FAIL_FACTOR * 100.0 / 1000   # the paper's Tab. 6 is ImageNet-1K: twice chance is 0.2%
TOKEN_SIZE_FACTOR = 32   # Tab. 6: a mini token size d stands for the paper's 32 d (mini default 256 = paper 8192)

# Number of classes where the architecture's kwargs do not say (timm models default to ImageNet's 1000).
DATASET_CLASSES = {"fashion_mnist": 10, "mnist": 10, "digits": 10, "cifar10": 10, "cifar100": 100,
                   "imagenet": 1000, "imagenet1k": 1000}

# Setting names as the paper prints them (the join key of resources/paper/<table>.csv).
RECURRENCE = {False: "- recurrent model", True: "+ recurrent model"}
POSITION = {"learnable": "learnable", "1d": "encode by index", "2d": "encode by layer", "none": "none"}
TOKENIZATION = {"flatten": "direct flatten", "channel": "by channel", "layer": "ours"}
STRUCTURE = {"lstm": "LSTM", "transformer": "Transformer", "mamba": "Mamba", "none": "gated MLP (no recurrence)"}
DEFAULTS = {"position": "2d", "strategy": "layer", "kind": "mamba"}   # the rows ratios are taken against

STATS = ("best", "average", "median", "min", "std", "n")


# --------------------------------------------------------------------------------------------------
# What a row is, read from its run folder
# --------------------------------------------------------------------------------------------------

def _position(cfg: dict[str, Any]) -> str:
    """The position embedding in effect (RPGConfig.position: `auto` is 1d for flatten, else 2d)."""
    from rpg.generator.config import RPGConfig
    return RPGConfig.from_dict(cfg, where="run config.json").position


def _training(row) -> dict[str, Any]:
    meta = (row.run or {}).get("meta") or {}
    return meta.get("training") or {}


def _stats(row) -> dict[str, Any]:
    g = row.eval["generated"]
    return {"best": round(g["best"], 2), "average": round(g["mean"], 2), "median": round(g["median"], 2),
            "min": round(g["min"], 2), "std": round(g["std"], 2), "n": g["n"]}


def chance_percent(ev: dict[str, Any]) -> float | None:
    """Accuracy of guessing, in percent: 100 / classes (architecture kwargs, else the dataset's class count)."""
    arch = ev.get("architecture") or {}
    n = (arch.get("kwargs") or {}).get("num_classes") if isinstance(arch, dict) else None
    n = n or DATASET_CLASSES.get(str(ev.get("dataset", "")).lower())
    return 100.0 / n if n else None


def _fails(row) -> tuple[float | None, bool | None, int | None]:
    """(threshold, does the row fail, how many of its generated models are below the threshold)."""
    chance = chance_percent(row.eval)
    if chance is None:
        return None, None, None
    limit = FAIL_FACTOR * chance
    accs = row.eval["generated"]["accuracies"]
    return round(limit, 2), row.eval["generated"]["mean"] < limit, sum(a < limit for a in accs)


def _cost(row) -> dict[str, Any]:
    """Training wall time (s), s/step, peak memory delta and parameter + gradient + optimizer state (MiB) as
    recorded by training; None where absent (a run trained before training recorded them)."""
    t = _training(row)
    mem = t.get("memory") or {}
    delta, state = mem.get("delta_bytes"), t.get("state_bytes")
    return {"train_s": t.get("wall_s"), "s_per_step": t.get("s_per_step"),
            "peak_mib": None if delta is None else round(delta / MIB, 1),
            "state_mib": None if state is None else round(state / MIB, 2), "memory_measure": mem.get("measure")}


def substitute(row, generator: bool = True) -> str:
    """What the row's scale substitutes: dataset and model size, and (`generator`) the generator's settings."""
    ev = row.eval
    cfg = (row.run or {}).get("config") or {}
    parts = []
    if ev.get("substitute_for"):
        parts.append(f"{dataset_label(ev['dataset'], ev['substitute_for'])}, {ev['params']:,}-parameter model")
    if cfg and not generator:
        parts.append(f"{cfg['train']['steps']:,} steps x batch {cfg['train']['batch_size']}")
    elif cfg:
        tr, rc, tk = cfg["train"], cfg["recurrent"], cfg["tokenizer"]
        parts.append(f"token {tk['token_size']}, {rc['kind']} {'->'.join(map(str, rc['d_model']))}, "
                     f"{tr['steps']:,} steps x batch {tr['batch_size']}, diffusion batch "
                     f"{cfg['diffusion']['diffusion_batch']}")
    return "; ".join(parts)


def _paper(paper: pd.DataFrame | None, key: str, prefix: str = "paper_") -> dict[str, str]:
    if paper is None or key not in paper.index:
        return {f"{prefix}{c}": "" for c in (paper.columns if paper is not None else [])}
    return {f"{prefix}{c}": str(v) for c, v in paper.loc[key].items()}




# --------------------------------------------------------------------------------------------------
# Shared helpers and plots
# --------------------------------------------------------------------------------------------------

INT_COLUMNS = ("n", "n_below", "tokens", "token_size", "width", "generator_params", "pe_params", "recurrent_params")


def _order(df: pd.DataFrame, first: list[str]) -> pd.DataFrame:
    """Our columns first (in the given order), then the paper's, then the substitute note. Counts stay integers
    (empty where a row has none, e.g. the original-checkpoints row of Tab. 4a)."""
    for c in INT_COLUMNS:
        if c in df:
            df[c] = pd.array([None if v is None or pd.isna(v) else int(v) for v in df[c]], dtype="Int64")
    paper = [c for c in df.columns if c.startswith("paper_")]
    rest = [c for c in df.columns if c not in first and c not in paper and c != "substitute"]
    tail = ["substitute"] if "substitute" in df.columns else []
    return df[[c for c in first if c in df.columns] + rest + paper + tail]


def _ratios(df: pd.DataFrame, key: str, default: str, cols: list[tuple[str, str]]) -> None:
    ref = df[df[key] == default]
    for col, out in cols:
        base = ref[col].iloc[0] if len(ref) else None
        df[out] = [ratio(v, base) for v in df[col]]


def _accuracy_panel(ax, inputs, table: pd.DataFrame, names: list[str]) -> None:
    """Best / average / median of each row as grouped bars (paper Fig. 4 style), every model as a dot."""
    import numpy as np

    x = np.arange(len(names))
    accs = [r.eval["generated"]["accuracies"] for r in inputs.rows]
    stats = table.iloc[len(table) - len(inputs.rows):]   # table4a leads with the original checkpoints' row
    for i, (key, colour) in enumerate((("average", "tab:orange"), ("median", "tab:green"), ("best", "tab:red"))):
        ax.bar(x + (i - 1) * 0.22, stats[key].astype(float), width=0.2, color=colour, alpha=0.6, label=key)
    dots(ax, x, accs, "black", "generated models")
    orig = inputs.rows[0].eval["original"]["mean"]
    ax.axhline(orig, color="tab:blue", ls="--", lw=1.2, label="original checkpoints (mean)")
    zoom(ax, [a for a_ in accs for a in a_] + [orig])
    ax.set_xticks(x, names, rotation=15, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def _fig(ncols: int, n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(max(5.5, 1.4 * n + 2) * (1 + 0.6 * (ncols - 1)), 4.6))
    return fig, (axes if ncols > 1 else [axes])


def _title(inputs, what: str) -> str:
    return inputs.title or f"{what}, {inputs.scale} scale\n{datasets(inputs)}"


def plot_table4a(inputs, table: pd.DataFrame):
    fig, (ax,) = _fig(1, len(inputs.rows))
    _accuracy_panel(ax, inputs, table, [f"{r.label}" for r in inputs.rows])
    limits = table["fail_below"].dropna()
    if len(limits):
        ax.axhline(float(limits.iloc[0]), color="tab:red", ls=":", lw=1.2, label=f"fail: < {FAIL_FACTOR:g}x chance")
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, float(limits.iloc[0]) - 2), hi)
        ax.legend(fontsize=7, loc="best")
    ax.set_title(_title(inputs, "Tab. 4a: recurrent model"), fontsize=10)
    fig.tight_layout()
    return fig


def plot_table4b(inputs, table: pd.DataFrame):
    fig, (ax, bx) = _fig(2, len(inputs.rows))
    _accuracy_panel(ax, inputs, table, list(table["setting"]))
    ax.set_title(_title(inputs, "Tab. 4b: position embedding"), fontsize=10)
    bx.bar(table["setting"], table["generator_mib"].astype(float), color="tab:purple", alpha=0.7)
    bx.set_ylabel("stored generator (MiB)")
    bx.set_title("generator size (a learnable embedding is stored)", fontsize=10)
    bx.tick_params(axis="x", rotation=15)
    fig.tight_layout()
    return fig


def plot_fig4(inputs, table: pd.DataFrame):
    fig, (ax, bx) = _fig(2, len(inputs.rows))
    _accuracy_panel(ax, inputs, table, list(table["setting"]))
    ax.set_title(_title(inputs, "Fig. 4: tokenization"), fontsize=10)
    _cost_bars(bx, table, "time_ratio", "paper_time_ratio", "training time / ours")
    fig.tight_layout()
    return fig


def _cost_bars(ax, table: pd.DataFrame, ours: str, paper: str, ylabel: str) -> None:
    import numpy as np

    x = np.arange(len(table))
    ax.bar(x - 0.2, pd.to_numeric(table[ours], errors="coerce"), width=0.4, color="tab:orange", label="ours")
    if paper in table:
        ax.bar(x + 0.2, pd.to_numeric(table[paper], errors="coerce"), width=0.4, color="grey", label="paper")
    ax.axhline(1.0, color="black", lw=0.8)
    names = [f"{s}\n(w {w})" if "width" in table else s
             for s, w in zip(table["setting"], table.get("width", table["setting"]))]
    ax.set_xticks(x, names, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)


def plot_table5(inputs, table: pd.DataFrame):
    fig, (ax, bx, cx) = _fig(3, len(inputs.rows))
    _accuracy_panel(ax, inputs, table, [f"{s} (w {w})" for s, w in zip(table["setting"], table["width"])])
    ax.set_title(_title(inputs, "Tab. 5: recurrent structure"), fontsize=10)
    _cost_bars(bx, table, "time_ratio", "paper_time_ratio", "training time / Mamba (same width)")
    _cost_bars(cx, table, "memory_ratio", "paper_memory_ratio", "peak memory / Mamba (same width)")
    fig.tight_layout()
    return fig


def plot_table6(inputs, table: pd.DataFrame):
    fig, (ax, bx) = _fig(2, 3)
    ours = [c for c in table.columns if c.startswith("d") and c[1:].isdigit()]
    theirs = [c for c in table.columns if c.startswith("paper_") and c[6:].isdigit()]
    for _, r in table.iterrows():
        ax.plot([int(c[1:]) for c in ours], pd.to_numeric(r[ours], errors="coerce"), marker="o", label=r["model"])
        if theirs:
            bx.plot([int(c[6:]) for c in theirs], pd.to_numeric(r[theirs], errors="coerce"), marker="s", ls="--",
                    label=r["model"])
    for axis, name in ((ax, _title(inputs, "Tab. 6: token size")), (bx, "paper (ImageNet-1K)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("token size")
        axis.set_ylabel("generated mean accuracy (%)")
        axis.set_title(name, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Claims judged from these tables (rpg.tables.claims reports them)
# --------------------------------------------------------------------------------------------------

def _name(row: pd.Series) -> str:
    """A row as a finding names it: its label, else its setting."""
    return row.get("label") or row.get("setting") or "?"


def judge_table4a(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table4a"]
    with_rec = one(df, "with recurrence", setting=RECURRENCE[True])
    without = one(df, "without recurrence", setting=RECURRENCE[False])
    # both rows need their average and a fail flag: a blank flag is no evidence that a row works (or fails)
    averages = [needed(r, "average", _name(r)) for r in (with_rec, without)]
    fails = [one_of(r, "fails", _name(r), ("True", "False")) == "True" for r in (with_rec, without)]
    ours = f"with {fmt(averages[0])}, without {fmt(averages[1])} (fails: {without['fails']})"
    paper = f"with {with_rec.get('paper_average', 'n/a')}, without {without.get('paper_average', 'n/a')}"
    return Finding(ours, paper, verdict(fails[1] and not fails[0]))


def judge_table4b(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table4b"]
    fixed = one(df, "2D (encode by layer)", position="2d")
    learn = one(df, "learnable", position="learnable")

    def side(prefix: str) -> tuple[str, bool | None]:
        f, lv = num(fixed.get(f"{prefix}average")), num(learn.get(f"{prefix}average"))
        if f is None or lv is None:
            return "n/a", None
        return f"2D {f:.2f} vs learnable {lv:.2f} ({f - lv:+.2f})", f >= lv - AS_GOOD_WITHIN

    for r in (fixed, learn):
        needed(r, "average", _name(r))     # ours are needed (the paper's may be absent)
    ours, ok = side("")
    return Finding(ours, side("paper_")[0], verdict(ok))


def judge_fig4(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["fig4"]
    avg = {}
    for strategy in ("layer", "flatten", "channel"):
        row = one(df, strategy, strategy=strategy)
        avg[strategy] = needed(row, "average", _name(row))
    ours = ", ".join(f"{k} {v:.2f}" for k, v in avg.items())
    ok = avg["layer"] > avg["flatten"] and avg["layer"] > avg["channel"]
    # the paper's Fig. 4 prints accuracies as bars only; its CSV carries training times
    return Finding(ours, "per-layer best (Fig. 4 bars; no printed numbers)", verdict(ok))


def judge_table5(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table5"]
    # the paper's rows are at the first row's width (table5 joins the paper's numbers there); wider probes are not
    df = df[df["width"] == df["width"].iloc[0]] if len(df) else df

    if len(set(df["kind"])) < len(df):
        raise Missing("two rows of one recurrent structure at the compared width")
    for _, r in df.iterrows():       # ours are needed (the paper's may be absent)
        needed(r, "average", _name(r))
        needed(r, "time_ratio", _name(r))

    def side(prefix: str) -> tuple[str, bool | None]:
        recs = {r["kind"]: (num(r.get(f"{prefix}average")), num(r.get(f"{prefix}time_ratio")))
                for _, r in df.iterrows()}
        if DEFAULTS["kind"] not in recs or any(None in v for v in recs.values()) or len(recs) < 2:
            return "n/a", None
        acc_m, time_m = recs[DEFAULTS["kind"]]
        best = max(a for a, _ in recs.values())
        fastest = all(time_m <= tr for _, tr in recs.values())
        text = ", ".join(f"{k} {a:.2f} / time x{tr:.2f}" for k, (a, tr) in recs.items())
        return text, fastest and acc_m >= best - BEST_WITHIN

    ours, ok = side("")
    if ok is None:
        raise Missing("no Mamba, LSTM and Transformer rows with average and time")
    return Finding(ours, side("paper_")[0], verdict(ok))


def judge_table6(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table6"].copy()
    df["_params"] = [needed(r, "params", r["model"]) for _, r in df.iterrows()]
    if "smallest_good_d" in df.columns:
        for _, r in df.iterrows():
            if r["smallest_good_d"] == "":
                raise Missing(f"model {r['model']!r}: no token size works (no smallest good size)")
            needed(r, "smallest_good_d", r["model"])
    df = df.sort_values("_params")
    sizes = sorted(int(c[1:]) for c in df.columns if c.startswith("d") and c[1:].isdigit())

    def side(col: str, grid: list[int]) -> tuple[str, str | None]:
        if col not in df.columns:
            return "n/a", None
        good = [num(v) for v in df[col]]
        if len(good) < 2 or None in good:
            return "n/a", None
        text = ", ".join(f"{m} d={int(g)}" for m, g in zip(df["model"], good))
        if grid and all(g == grid[0] for g in good):
            return text, INCONCLUSIVE          # every model already good at the smallest size tried
        grows = all(b >= a for a, b in zip(good, good[1:])) and good[-1] > good[0]
        return text, verdict(grows)

    ours, result = side("smallest_good_d", sizes)
    if result is None:
        raise Missing("no smallest good token size")
    paper, _ = side("paper_smallest_good_d", [])
    return Finding(f"smallest good token size: {ours}", f"smallest good token size: {paper}", result)


TAB4A = Claim("tab4a", "The recurrent model is needed", ("table4a",),
              "the generator without recurrence fails (mean below its fail line) and the one with it does not",
              judge_table4a)
TAB4B = Claim("tab4b", "A fixed 2D position embedding is as good as a learnable one", ("table4b",),
              f"2D average at least the learnable average minus {AS_GOOD_WITHIN} point", judge_table4b)
FIG4 = Claim("fig4", "Per-layer tokens beat flattened and by-channel tokens", ("fig4",),
             "per-layer average above both others' averages", judge_fig4)
TAB5 = Claim("tab5", "Mamba is the best recurrent structure for its cost", ("table5",),
             f"Mamba's training time is the lowest and its average within {BEST_WITHIN} point of the best",
             judge_table5)
TAB6 = Claim("tab6", "Larger models need larger tokens", ("table6",),
             "the smallest good token size grows with the model's parameter count (inconclusive when every model is "
             "good at the smallest size tried)", judge_table6)


# --------------------------------------------------------------------------------------------------
# Tab. 4a: the recurrent model
# --------------------------------------------------------------------------------------------------

@register_table("table4a", plot=plot_table4a, paper_key="setting", needs=("runs",), claims=(TAB4A,),
                row_column="label", extra_rows=(("label", "original checkpoints"),),
                description="with / without the recurrent model, and which rows fail (paper Tab. 4a; needs --runs)")
def table4a(inputs) -> pd.DataFrame:
    rows = []
    first = inputs.rows[0].eval["original"]
    rows.append({"setting": "original baseline", "label": "original checkpoints", "recurrent": "",
                 "best": round(first["best"], 2), "average": round(first["mean"], 2),
                 "median": round(first["median"], 2), "min": round(first["min"], 2), "std": round(first["std"], 2),
                 "n": first["n"], **_paper(inputs.paper, "original baseline")})
    for row in inputs.rows:
        kind = run_config(row, "table4a")["recurrent"]["kind"]
        limit, fails, below = _fails(row)
        rows.append({"setting": RECURRENCE[kind != "none"], "label": row.label, "recurrent": kind,
                     **_stats(row), "fail_below": limit, "fails": fails, "n_below": below,
                     **_paper(inputs.paper, RECURRENCE[kind != "none"]), "substitute": substitute(row)})
    df = pd.DataFrame(rows)
    df["scale"] = inputs.scale
    return _order(df, ["setting", "label", "scale", "recurrent", *STATS, "fail_below", "fails", "n_below"])


# --------------------------------------------------------------------------------------------------
# Tab. 4b: position embeddings
# --------------------------------------------------------------------------------------------------

@register_table("table4b", plot=plot_table4b, paper_key="setting", needs=("runs",), claims=(TAB4B,),
                row_column="label",
                description="position embeddings, with the generator's stored size (paper Tab. 4b; needs --runs)")
def table4b(inputs) -> pd.DataFrame:
    rows = []
    for row in inputs.rows:
        position = _position(run_config(row, "table4b"))
        gen = (row.run or {}).get("generator") or {}
        tensors = gen.get("tensors") or {}
        # a learnable embedding is a stored parameter (inputs.pe); a fixed one is rebuilt from the layout on load
        pe = sum(n for k, n in tensors.items() if k.endswith("inputs.pe"))
        total = gen.get("params")
        rows.append({"setting": POSITION[position], "label": row.label, "position": position, **_stats(row),
                     "generator_params": total, "generator_mib": round(gen["bytes"] / MIB, 3) if gen else None,
                     "pe_params": pe if gen else None,
                     "pe_share_pct": round(100.0 * pe / total, 2) if total else None,
                     **_paper(inputs.paper, POSITION[position]), "substitute": substitute(row)})
    df = pd.DataFrame(rows)
    df["scale"] = inputs.scale
    return _order(df, ["setting", "label", "scale", "position", *STATS, "generator_params", "generator_mib",
                       "pe_params", "pe_share_pct"])


# --------------------------------------------------------------------------------------------------
# Fig. 4: tokenization
# --------------------------------------------------------------------------------------------------

@register_table("fig4", plot=plot_fig4, paper_key="setting", needs=("runs",), claims=(FIG4,), row_column="label",
                description="tokenization strategies: accuracy, tokens, padding, training time (paper Fig. 4; needs "
                            "--runs)")
def fig4(inputs) -> pd.DataFrame:
    rows = []
    for row in inputs.rows:
        cfg = run_config(row, "fig4")
        meta = (row.run or {}).get("meta") or {}
        d, L = cfg["tokenizer"]["token_size"], meta.get("num_tokens")
        pad = round(100.0 * (1 - meta["num_params"] / (L * d)), 1) if L and meta.get("num_params") else None
        strategy = cfg["tokenizer"]["strategy"]
        rows.append({"setting": TOKENIZATION[strategy], "label": row.label, "strategy": strategy,
                     "token_size": d, "position": _position(cfg), "tokens": L, "padding_pct": pad,
                     **_stats(row), **_cost(row), **_paper(inputs.paper, TOKENIZATION[strategy]),
                     "substitute": substitute(row)})
    df = pd.DataFrame(rows)
    df["scale"] = inputs.scale
    _ratios(df, "strategy", DEFAULTS["strategy"], [("train_s", "time_ratio")])
    if "paper_training_time_h" in df:
        ref = df.loc[df["strategy"] == DEFAULTS["strategy"], "paper_training_time_h"]
        ref = paper_float(ref.iloc[0]) if len(ref) else None
        df["paper_time_ratio"] = [ratio(paper_float(v), ref) for v in df["paper_training_time_h"]]
    return _order(df, ["setting", "label", "scale", "strategy", "token_size", "position", "tokens", "padding_pct",
                       *STATS, "train_s", "s_per_step", "time_ratio", "peak_mib", "state_mib", "memory_measure"])


# --------------------------------------------------------------------------------------------------
# Tab. 5: recurrent structures
# --------------------------------------------------------------------------------------------------

@register_table("table5", plot=plot_table5, paper_key="setting", needs=("runs",), claims=(TAB5,),
                row_column="label",
                description="recurrent structures: accuracy, training time and peak memory (paper Tab. 5; needs "
                            "--runs)")
def table5(inputs) -> pd.DataFrame:
    rows, widths = [], []
    for row in inputs.rows:
        cfg = run_config(row, "table5")
        kind, width = cfg["recurrent"]["kind"], cfg["recurrent"]["d_model"][-1]
        widths.append(width)
        tensors = ((row.run or {}).get("generator") or {}).get("tensors") or {}
        recurrent = sum(n for k, n in tensors.items() if k.startswith("recurrent.")) if tensors else None
        # the paper's rows are at its default width: join them to ours at the first row's width only
        paper = _paper(inputs.paper, STRUCTURE[kind]) if width == widths[0] else _paper(inputs.paper, "")
        rows.append({"setting": STRUCTURE[kind], "label": row.label, "kind": kind, "width": width,
                     "recurrent_params": recurrent, **_stats(row), **_cost(row), **paper,
                     "substitute": substitute(row)})
    df = pd.DataFrame(rows)
    df["scale"] = inputs.scale
    # ratios to Mamba at the same width: the paper's point is the ordering, and widths change it
    ratios = (("train_s", "time_ratio"), ("peak_mib", "memory_ratio"), ("state_mib", "state_ratio"))
    for _, out in ratios:
        df[out] = None
    for _width, group in df.groupby("width"):
        ref = group[group["kind"] == DEFAULTS["kind"]]
        if len(ref):
            for col, out in ratios:
                df.loc[group.index, out] = [ratio(v, ref[col].iloc[0]) for v in group[col]]
    if "paper_memory_gb" in df:
        ref = df[df["setting"] == STRUCTURE[DEFAULTS["kind"]]]
        for col, out in (("paper_training_time_h", "paper_time_ratio"), ("paper_memory_gb", "paper_memory_ratio")):
            base = paper_float(ref[col].iloc[0]) if len(ref) else None
            df[out] = [ratio(paper_float(v), base) for v in df[col]]
    return _order(df, ["setting", "label", "scale", "kind", "width", "recurrent_params", *STATS, "train_s",
                       "s_per_step", "time_ratio", "peak_mib", "memory_ratio", "state_mib", "state_ratio",
                       "memory_measure"])


# --------------------------------------------------------------------------------------------------
# Tab. 6: token size x model size
# --------------------------------------------------------------------------------------------------

def smallest_good(averages: dict[int, float], floor: float | None = None) -> int | None:
    """The smallest token size whose mean accuracy is within GOOD_WITHIN points of the model's best mean and
    not a failure (>= `floor`, FAIL_FACTOR x chance). None when every size fails: the best of failures is
    not a size that works."""
    works = {d: a for d, a in averages.items() if floor is None or a >= floor}
    if not works:
        return None
    best = max(works.values())
    return min(d for d, a in works.items() if a >= best - GOOD_WITHIN)


@register_table("table6", plot=plot_table6, paper_key="model", needs=("runs", "groups"), claims=(TAB6,),
                row_column="model", expect_from="group",
                description="token size x model size, one row per model (paper Tab. 6; needs --runs, and --groups: "
                            "each row's model)")
def table6(inputs) -> pd.DataFrame:
    models: dict[str, dict[str, Any]] = {}
    sizes: set[int] = set()
    for row in inputs.rows:
        d = run_config(row, "table6")["tokenizer"]["token_size"]
        m = models.setdefault(row.group, {"params": row.eval["params"], "avg": {}, "tokens": {},
                                                       "rows": [], "floor": _fails(row)[0]})
        if d in m["avg"]:
            raise RPGInputError(f"table table6: two rows of {row.group} have token size {d}")
        m["avg"][d] = round(row.eval["generated"]["mean"], 2)
        m["tokens"][d] = ((row.run or {}).get("meta") or {}).get("num_tokens")
        m["rows"].append(row)
        sizes.add(d)
    ours = sorted(sizes)
    theirs = sorted(int(c) for c in inputs.paper.columns if c.isdigit()) if inputs.paper is not None else []
    # our sizes are the paper's own (paper scale), or stand for TOKEN_SIZE_FACTOR times theirs (mini)
    factor = 1 if set(ours) <= set(theirs) else TOKEN_SIZE_FACTOR
    pairs = {d: d * factor for d in ours if d * factor in theirs}
    out = []
    for name, m in models.items():
        paper = _paper(inputs.paper, name)
        paper_avg = {t: paper_float(paper.get(f"paper_{t}")) for t in theirs}
        rec = {"model": name, "scale": inputs.scale, "params": m["params"]}
        for d in ours:
            rec[f"d{d}"] = m["avg"].get(d)
            rec[f"tokens_d{d}"] = m["tokens"].get(d)
        rec["fail_below"] = m["floor"]
        rec["smallest_good_d"] = smallest_good(m["avg"], m["floor"])
        rec.update({f"paper_{t}": paper.get(f"paper_{t}", "") for t in theirs})
        rec["paper_params_m"] = paper.get("paper_params_m", "")
        good = smallest_good({t: a for t, a in paper_avg.items() if a is not None}, PAPER_FAIL_BELOW)
        rec["paper_smallest_good_d"] = good
        rec["paper_d_for_smallest_good_d"] = pairs.get(rec["smallest_good_d"])
        sizes_note = (f"token sizes {', '.join(map(str, pairs))} stand for the paper's "
                      f"{', '.join(map(str, pairs.values()))} (x{factor})") if pairs and factor != 1 else ""
        rec["substitute"] = "; ".join(p for p in (substitute(m["rows"][0], generator=False), sizes_note) if p)
        out.append(rec)
    df = pd.DataFrame(out)
    for c in df.columns:    # counts and sizes stay integers where a model has none (e.g. every size fails)
        if c.startswith("tokens_d") or c.endswith("_good_d") or c == "params":
            df[c] = pd.array([None if v is None or pd.isna(v) else int(v) for v in df[c]], dtype="Int64")
    return df
