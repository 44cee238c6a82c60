"""The claims report: which of the paper's claims hold, judged by code from the table CSVs (no number typed here).

Each `Claim` names the table CSVs it reads, states its rule in words, and has a judge: a function of those tables
(read as strings, one DataFrame per name) that returns our number, the paper's number (the same rule applied to the
paper's columns the table carries, `paper_*`), and a verdict:

- `holds`: the rule is met by our numbers;
- `does not hold`: it is not;
- `inconclusive`: the numbers cannot decide it (a table not built, a grid too coarse, a split result).

The tolerances are the module constants below; a claim's rule text quotes them, so the file says what it checked.
`write_claims` writes `claims.csv` (one row per claim) and `claims.md` (the same as a Markdown table, with the rules
and links to the tables).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rpg.errors import RPGInputError
from rpg.io import atomic_path

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE)

MATCH_WITHIN = 1.0        # points: generated average vs original mean (the paper's worst Tab. 1 row is -0.9)
AS_GOOD_WITHIN = 0.5      # points: "as good as" / "suffices" (a setting vs the reference setting)
BEST_WITHIN = 0.5         # points: "the best structure" may trail the most accurate one by this much

CLAIM_COLUMNS = ("id", "claim", "tables", "scale", "substitute", "paper", "ours", "verdict", "rule")


class Missing(Exception):
    """A table (or a row the rule needs) is not there: the claim is inconclusive, saying which."""


@dataclass(frozen=True)
class Finding:
    ours: str
    paper: str
    verdict: str


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    tables: tuple[str, ...]
    rule: str
    judge: Callable[[dict[str, pd.DataFrame]], Finding]


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------

def num(value) -> float | None:
    """A CSV cell as a float; None for blanks, "fail", "OOM" and other text."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _rows(df: pd.DataFrame, **match) -> pd.DataFrame:
    mask = pd.Series(True, index=df.index)
    for col, value in match.items():
        if col not in df.columns:
            raise Missing(f"no column {col!r}")
        mask &= df[col] == value
    return df[mask]


def _one(df: pd.DataFrame, what: str, **match) -> pd.Series:
    rows = _rows(df, **match)
    if rows.empty:
        raise Missing(f"no {what} row")
    return rows.iloc[0]


def _verdict(ok: bool) -> str:
    return HOLDS if ok else FAILS


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


# --------------------------------------------------------------------------------------------------
# Judges (one per claim)
# --------------------------------------------------------------------------------------------------

def _gaps(df: pd.DataFrame, name: str, original: str, generated: str) -> list[tuple[str, float]]:
    out = []
    for _, r in df.iterrows():
        o, g = num(r.get(original)), num(r.get(generated))
        if o is not None and g is not None:
            out.append((r[name], g - o))
    return out


def judge_table1(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table1"]
    ours = _gaps(df, "architecture", "original", "average")
    if not ours:
        raise Missing("no row with an original and a generated average")
    paper = _gaps(df, "architecture", "paper_original", "paper_average")

    def summary(gaps: list[tuple[str, float]]) -> str:
        name, worst = max(gaps, key=lambda p: abs(p[1]))
        within = sum(abs(g) <= MATCH_WITHIN for _, g in gaps)
        return f"largest gap {worst:+.2f} ({name}); {within}/{len(gaps)} rows within"

    text, ptext = summary(ours), summary(paper) if paper else "n/a"
    return Finding(text, ptext, _verdict(all(abs(g) <= MATCH_WITHIN for _, g in ours)))


def judge_table2(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table2"]
    orig = _one(df, "original", models="original")
    gen = _one(df, "generated average", models="generated", statistic="average")
    o, g = num(orig["miou"]), num(gen["miou"])
    if o is None or g is None:
        raise Missing("no mIoU")
    po, pg = num(orig.get("paper_ade20k_miou")), num(gen.get("paper_ade20k_miou"))
    paper = f"mIoU {pg:.1f} vs {po:.1f} ({pg - po:+.1f})" if po is not None and pg is not None else "n/a"
    return Finding(f"mIoU {g:.2f} vs {o:.2f} ({g - o:+.2f})", paper, _verdict(abs(g - o) <= MATCH_WITHIN))


def judge_table3(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table3"]
    ours, paper, ok = [], [], []
    for label in dict.fromkeys(df["label"]):
        rows = _rows(df, label=label)
        orig = _one(rows, f"{label} original", row="original")
        gen = _one(rows, f"{label} generated average", row="generated average")
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
    return Finding("; ".join(ours), "; ".join(paper) or "n/a", _verdict(all(ok)))


def judge_table4a(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table4a"]
    with_rec = _one(df, "with recurrence", setting="+ recurrent model")
    without = _one(df, "without recurrence", setting="- recurrent model")
    ours = (f"with {_fmt(num(with_rec['average']))}, without {_fmt(num(without['average']))} "
            f"(fails: {without['fails']})")
    paper = f"with {with_rec.get('paper_average', 'n/a')}, without {without.get('paper_average', 'n/a')}"
    return Finding(ours, paper, _verdict(without["fails"] == "True" and with_rec["fails"] != "True"))


def judge_table4b(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table4b"]
    fixed = _one(df, "2D (encode by layer)", position="2d")
    learn = _one(df, "learnable", position="learnable")

    def side(prefix: str) -> tuple[str, bool | None]:
        f, lv = num(fixed.get(f"{prefix}average")), num(learn.get(f"{prefix}average"))
        if f is None or lv is None:
            return "n/a", None
        return f"2D {f:.2f} vs learnable {lv:.2f} ({f - lv:+.2f})", f >= lv - AS_GOOD_WITHIN

    ours, ok = side("")
    if ok is None:
        raise Missing("no averages")
    return Finding(ours, side("paper_")[0], _verdict(ok))


def judge_fig4(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["fig4"]
    avg = {}
    for strategy in ("layer", "flatten", "channel"):
        avg[strategy] = num(_one(df, strategy, strategy=strategy)["average"])
    if None in avg.values():
        raise Missing("no averages")
    ours = ", ".join(f"{k} {v:.2f}" for k, v in avg.items())
    ok = avg["layer"] > avg["flatten"] and avg["layer"] > avg["channel"]
    # the paper's Fig. 4 prints accuracies as bars only; its CSV carries training times
    return Finding(ours, "per-layer best (Fig. 4 bars; no printed numbers)", _verdict(ok))


def judge_table5(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table5"]
    df = df[~df["label"].str.contains("probe")]          # the width-1024 probes are not the paper's rows

    def side(prefix: str) -> tuple[str, bool | None]:
        recs = {r["kind"]: (num(r.get(f"{prefix}average")), num(r.get(f"{prefix}time_ratio")))
                for _, r in df.iterrows()}
        if "mamba" not in recs or any(None in v for v in recs.values()) or len(recs) < 2:
            return "n/a", None
        acc_m, time_m = recs["mamba"]
        best = max(a for a, _ in recs.values())
        fastest = all(time_m <= tr for _, tr in recs.values())
        text = ", ".join(f"{k} {a:.2f} / time x{tr:.2f}" for k, (a, tr) in recs.items())
        return text, fastest and acc_m >= best - BEST_WITHIN

    ours, ok = side("")
    if ok is None:
        raise Missing("no Mamba, LSTM and Transformer rows with average and time")
    return Finding(ours, side("paper_")[0], _verdict(ok))


def judge_table6(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table6"].copy()
    df["_params"] = [num(p) for p in df["params"]]
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
        return text, _verdict(grows)

    ours, verdict = side("smallest_good_d", sizes)
    if verdict is None:
        raise Missing("no smallest good token size")
    paper, _ = side("paper_smallest_good_d", [])
    return Finding(f"smallest good token size: {ours}", f"smallest good token size: {paper}", verdict)


def judge_table7(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table7"]

    def side(acc_col: str, time_col: str) -> tuple[str, bool | None]:
        parts, oks = [], []
        for model in dict.fromkeys(df["model"]):
            rows = [(int(num(r["steps"])), num(r[acc_col]), num(r[time_col]))
                    for _, r in _rows(df, model=model).iterrows() if num(r["steps"]) is not None]
            rows = sorted(r for r in rows if r[1] is not None and r[2] is not None)
            if len(rows) < 2:
                return "n/a", None
            most = rows[-1]
            enough = next(r for r in rows if r[1] >= most[1] - AS_GOOD_WITHIN)
            oks.append(enough[0] < most[0] and enough[2] < most[2])
            parts.append(f"{model}: {enough[0]} steps {enough[1]:.2f} vs {most[0]} steps {most[1]:.2f}, "
                         f"time x{enough[2] / most[2]:.2f}")
        return "; ".join(parts), all(oks) if oks else None

    ours, ok = side("accuracy_mean", "time_per_model_s")
    if ok is None:
        raise Missing("fewer than two step counts with accuracy and time")
    paper, _ = side("paper_accuracy", "paper_time_min") if "paper_accuracy" in df.columns else ("n/a", None)
    return Finding(ours, paper, _verdict(ok))


def judge_table13(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table13"]

    def side(time_col: str, mem_col: str) -> tuple[str, bool | None]:
        parts, oks = [], []
        for model in dict.fromkeys(df["model"]):
            rows = _rows(df, model=model)
            by_mode = {r["mode"]: (num(r[time_col]), num(r[mem_col])) for _, r in rows.iterrows()}
            need = ("sequential", "partially parallel", "fully parallel")
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
    return Finding(ours, paper, _verdict(ok))


def judge_table8(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table8"]

    def side(col: str) -> tuple[str, bool | None]:
        parts, oks = [], []
        for arch in dict.fromkeys(df["architecture"]):
            rows = _rows(df, architecture=arch)
            vals = {r["method"]: num(r.get(col)) for _, r in rows.iterrows()}
            rpg = vals.get("RPG")
            others = {m: v for m, v in vals.items() if m not in ("RPG", "original") and v is not None}
            if rpg is None or not others:
                continue
            oks.append(all(rpg >= v for v in others.values()))
            best_other = max(others, key=others.get)
            parts.append(f"{arch}: RPG {rpg:.2f} vs best baseline {best_other} {others[best_other]:.2f}")
        return "; ".join(parts) or "n/a", (all(oks) if oks else None)

    ours, ok = side("mean")
    if ok is None:
        raise Missing("no column with RPG and a baseline")
    paper, _ = side("paper_accuracy")
    return Finding(ours, paper, _verdict(ok))


def judge_fig8(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["fig8"]
    largest: dict[str, float] = {}
    for _, r in df.iterrows():
        p = num(r.get("params"))
        if r.get("status") == "ok" and p is not None and not str(r.get("method", "")).startswith("rpg-"):
            largest[r["method"]] = max(largest.get(r["method"], 0.0), p)
    if "rpg" not in largest or len(largest) < 2:
        raise Missing("no RPG and baseline sizes that fit")
    ratios = {m: largest["rpg"] / v for m, v in largest.items() if m != "rpg"}
    ours = ", ".join(f"{m} x{v:.3g}" for m, v in ratios.items())
    caps = {c for c in map(num, df["cap_bytes"]) if c} if "cap_bytes" in df.columns else set()
    cap = f" (cap {max(caps) / 2**30:.0f} GiB)" if caps else ""
    return Finding(f"RPG's largest fitting size / the baseline's{cap}: {ours}", "34-960x (Fig. 8)",
                   _verdict(all(v > 1 for v in ratios.values())))


def judge_table9(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table9"]
    rpg = _one(df, "RPG on unseen tasks", split="unseen", method="rpg")
    g, maj, ret = num(rpg["generated_mean"]), num(rpg["majority"]), num(rpg["retrieval"])
    if g is None or maj is None:
        raise Missing("no generated mean or majority baseline")
    ours = (f"{rpg['label']}: {g:.2f} (original {rpg['original']}, retrieval {rpg['retrieval'] or 'n/a'}, "
            f"majority {maj:.1f})")
    paper = (f"{rpg['paper_generated']} (original {rpg['paper_original']}; no retrieval baseline)"
             if rpg.get("paper_generated") else "n/a")
    if ret is None:
        return Finding(ours, paper, INCONCLUSIVE)
    return Finding(ours, paper, _verdict(g > maj and g >= ret))


def judge_table15(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["table15"]

    def side(col: str, ok_value: Callable[[str], bool]) -> tuple[str, bool | None]:
        counts = sorted({int(s) for s in df["seeds"] if s.isdigit() and int(s) > 1})
        decisive = []
        for s in counts:
            w = _rows(df, seeds=str(s), permutation_state="w/")
            wo = _rows(df, seeds=str(s), permutation_state="w/o")
            if w.empty or wo.empty:
                continue
            if ok_value(w.iloc[0].get(col)) and not ok_value(wo.iloc[0].get(col)):
                decisive.append(s)
        text = f"with the state, generation works where without it fails at {decisive} seeds" if decisive else \
            "no seed count separates w/ and w/o"
        return text, bool(decisive) if counts else None

    ours, ok = side("verdict", lambda v: v == "ok")
    if ok is None:
        raise Missing("no multi-seed rows")
    paper, _ = side("paper_accuracy", lambda v: num(v) is not None and num(v) > 50)
    return Finding(ours, paper, _verdict(ok))


def judge_fig9(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["fig9"]
    if df.empty:
        raise Missing("no rows")
    parts = [f"{r['label']}: {r['less_similar_than_noise']} less similar than noise of equal accuracy"
             for _, r in df.iterrows()]
    verdicts = set(df["not_noisy_copy"])
    verdict = HOLDS if verdicts == {"holds"} else FAILS if verdicts == {"does not hold"} else INCONCLUSIVE
    return Finding("; ".join(parts), "generated models lie upper left of the noised ones (Fig. 9)", verdict)


CLAIMS: tuple[Claim, ...] = (
    Claim("tab1", "Generated models match the originals (ImageNet classifiers)", ("table1",),
          f"every architecture's generated average within {MATCH_WITHIN} point of the original mean", judge_table1),
    Claim("tab2", "Generated segmentation models match the originals", ("table2",),
          f"generated average mIoU within {MATCH_WITHIN} point of the originals'", judge_table2),
    Claim("tab3", "Generated DoRA adapters match the originals", ("table3",),
          f"every rank's generated average within {MATCH_WITHIN} point of the originals' mean", judge_table3),
    Claim("tab4a", "The recurrent model is needed", ("table4a",),
          "the generator without recurrence fails (mean below its fail line) and the one with it does not",
          judge_table4a),
    Claim("tab4b", "A fixed 2D position embedding is as good as a learnable one", ("table4b",),
          f"2D average at least the learnable average minus {AS_GOOD_WITHIN} point", judge_table4b),
    Claim("fig4", "Per-layer tokens beat flattened and by-channel tokens", ("fig4",),
          "per-layer average above both others' averages", judge_fig4),
    Claim("tab5", "Mamba is the best recurrent structure for its cost", ("table5",),
          f"Mamba's training time is the lowest and its average within {BEST_WITHIN} point of the best",
          judge_table5),
    Claim("tab6", "Larger models need larger tokens", ("table6",),
          "the smallest good token size grows with the model's parameter count (inconclusive when every model is "
          "good at the smallest size tried)", judge_table6),
    Claim("tab7", "Few DDIM steps suffice", ("table7",),
          f"for every model, fewer steps than the most tried reach its accuracy minus {AS_GOOD_WITHIN} point, in "
          "less time", judge_table7),
    Claim("tab8", "RPG beats the earlier methods", ("table8",),
          "RPG's mean at least every baseline's mean on every column where both ran", judge_table8),
    Claim("fig8", "Earlier methods run out of memory at sizes RPG handles", ("fig8",),
          "RPG's largest size that fits the memory cap exceeds every baseline's", judge_fig8),
    Claim("tab9", "RPG generates models for unseen tasks, beating retrieval", ("table9",),
          "on unseen tasks the generated mean is above the majority-label baseline and at least the retrieval "
          "baseline (inconclusive without retrieval)", judge_table9),
    Claim("tab15", "The permutation state is needed", ("table15",),
          "at some seed count above 1, generation works with the state and fails without it", judge_table15),
    Claim("tab13", "Partial parallel mode trades memory for time", ("table13",),
          "for every model, partial mode is faster than sequential and uses less memory than fully parallel",
          judge_table13),
    Claim("fig9", "Generated models are not noisy copies", ("fig9",),
          "every model's generated checkpoints are less similar to the originals than noise of equal accuracy "
          "(a split result is inconclusive)", judge_fig9),
)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------

def _provenance(tables: dict[str, pd.DataFrame], scale: str | None = None) -> tuple[str, str]:
    """(scales, substitutes) named by the tables; `scale` stands in for a table without a scale column (a benchmark
    such as Fig. 8 records machine measurements, not a scale)."""
    scales, subs = [], []
    for df in tables.values():
        if "scale" in df.columns:
            scales += [s for s in df["scale"] if s]
        elif scale:
            scales.append(scale)
        for col in ("substitute", "mini_substitute", "dataset", "substitute_for"):
            if col in df.columns:
                subs += [s for s in df[col] if s]
                break
    return ", ".join(dict.fromkeys(scales)), "; ".join(dict.fromkeys(subs))


def evaluate_claims(tables: dict[str, pd.DataFrame], claims: tuple[Claim, ...] = CLAIMS,
                    scale: str | None = None) -> pd.DataFrame:
    """One row per claim (CLAIM_COLUMNS). `tables`: table name -> CSV as strings; absent names are not built.
    `scale`: the configured scale, for tables whose CSV names none."""
    rows = []
    for c in claims:
        have = {name: tables[name] for name in c.tables if name in tables}
        scale_used, sub = _provenance(have, scale)
        missing = [n for n in c.tables if n not in tables]
        if missing:
            f = Finding("not built: " + ", ".join(f"results/{n}.csv" for n in missing), "", INCONCLUSIVE)
        else:
            try:
                f = c.judge(have)
            except (Missing, KeyError) as e:
                f = Finding(f"cannot judge: {e}", "", INCONCLUSIVE)
        if f.verdict not in VERDICTS:
            raise AssertionError(f"claim {c.id}: verdict {f.verdict!r}")
        rows.append({"id": c.id, "claim": c.claim, "tables": " ".join(c.tables), "scale": scale_used,
                     "substitute": sub, "paper": f.paper, "ours": f.ours, "verdict": f.verdict, "rule": c.rule})
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


def read_tables(folder: str | os.PathLike, claims: tuple[Claim, ...] = CLAIMS) -> dict[str, pd.DataFrame]:
    """Every table CSV the claims read that exists in `folder`."""
    folder = Path(folder)
    names = dict.fromkeys(n for c in claims for n in c.tables)
    return {n: read_table(folder / f"{n}.csv") for n in names if (folder / f"{n}.csv").is_file()}


def markdown(report: pd.DataFrame, link_prefix: str = "") -> str:
    counts = report["verdict"].value_counts()
    lines = ["# Which of the paper's claims hold", "",
             f"Generated by `rpg claims` from the table CSVs; {len(report)} claims: "
             + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS) + ".", "",
             "| claim | paper | ours | verdict | scale | tables |", "|---|---|---|---|---|---|"]
    for _, r in report.iterrows():
        links = ", ".join(f"[{n}]({link_prefix}{n}.csv)" for n in r["tables"].split())
        cells = [r["claim"], r["paper"] or "n/a", r["ours"], f"**{r['verdict']}**", r["scale"] or "n/a", links]
        lines.append("| " + " | ".join(str(x).replace("|", "/") for x in cells) + " |")
    lines += ["", "## Rules", ""]
    lines += [f"- **{r['claim']}**: {r['rule']}." for _, r in report.iterrows()]
    subs = [(r["claim"], r["substitute"]) for _, r in report.iterrows() if r["substitute"]]
    if subs:
        lines += ["", "## What each scale substitutes", ""]
        lines += [f"- {claim}: {sub}" for claim, sub in subs]
    return "\n".join(lines) + "\n"


README_BEGIN, README_END = "<!-- claims:begin (rpg claims --readme) -->", "<!-- claims:end -->"


def readme_summary(report: pd.DataFrame, link: str = "results/claims.md") -> str:
    """The claims as a short list for the README's table index: verdict, claim, ours vs the paper."""
    counts = report["verdict"].value_counts()
    scales = sorted({s for s in report["scale"] if s})
    lines = [f"Claims summary, generated by `rpg claims --readme` from the table CSVs ([{link}]({link}); scale "
             f"{', '.join(scales) or 'n/a'}): " + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS) + ".", ""]
    for _, r in report.iterrows():
        paper = f"; paper: {r['paper']}" if r["paper"] else ""
        lines.append(f"- **{r['verdict']}**: {r['claim']} (ours: {r['ours']}{paper})")
    return "\n".join(lines)


def update_readme(path: str | os.PathLike, summary: str) -> None:
    """Replace what stands between the README's claims markers with `summary` (atomic rewrite)."""
    path = Path(path)
    text = path.read_text()
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise RPGInputError(f"{path}: no claims block (a line {README_BEGIN!r}, later a line {README_END!r})")
    new = text[:begin + len(README_BEGIN)] + "\n" + summary.rstrip("\n") + "\n" + text[end:]
    with atomic_path(path) as tmp:
        tmp.write_text(new)


def read_claims(path: str | os.PathLike) -> pd.DataFrame:
    """A claims CSV as `write_claims` wrote it."""
    if not Path(path).is_file():
        raise RPGInputError(f"{path}: no such claims CSV (build it: snakemake results/claims.csv)")
    report = read_table(path)
    if list(report.columns) != list(CLAIM_COLUMNS):
        raise RPGInputError(f"{path}: not a claims CSV (columns {', '.join(CLAIM_COLUMNS)})")
    return report


def write_claims(report: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike) -> None:
    if list(report.columns) != list(CLAIM_COLUMNS):
        raise RPGInputError(f"{csv_path}: a claims report needs the columns {', '.join(CLAIM_COLUMNS)}")
    with atomic_path(csv_path) as tmp:
        report.to_csv(tmp, index=False)
    with atomic_path(md_path) as tmp:
        tmp.write_text(markdown(report))
