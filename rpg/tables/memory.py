"""Fig. 8 (training memory per method and model size): its CSV is written by `rule fig8` (rpg memory-study),
not by `rpg table`; registered here for the claim judged from it."""

from __future__ import annotations

import pandas as pd

from rpg.tables.judging import Claim, Finding, Missing, needed, num, verdict
from rpg.tables.registry import register_figure


def judge_fig8(t: dict[str, pd.DataFrame]) -> Finding:
    df = t["fig8"]
    if "size" in df.columns:
        # every method is recorded at every size of the study (a skip after an OOM is a record): a size missing
        # from one method would hide where it ran out of memory
        studied = df[~df["method"].astype(str).str.startswith("rpg-")]
        sizes = set(studied["size"])
        for method, group in studied.groupby([c for c in ("method", "preset") if c in df.columns]):
            lacking = sorted(sizes - set(group["size"]))
            if lacking:
                raise Missing(f"no record of {' / '.join(str(m) for m in method if m)} at size(s) {', '.join(lacking)}")
    largest: dict[str, float] = {}
    for _, r in df.iterrows():
        # a size that fit is needed: an ok row without a number would silently shrink a method's largest size
        p = needed(r, "params", f"{r.get('method')} ({r.get('status')})") if r.get("status") == "ok" else None
        if p is not None and not str(r.get("method", "")).startswith("rpg-"):
            largest[r["method"]] = max(largest.get(r["method"], 0.0), p)
    if "rpg" not in largest or len(largest) < 2:
        raise Missing("no RPG and baseline sizes that fit")
    ratios = {m: largest["rpg"] / v for m, v in largest.items() if m != "rpg"}
    ours = ", ".join(f"{m} x{v:.3g}" for m, v in ratios.items())
    caps = {c for c in map(num, df["cap_bytes"]) if c} if "cap_bytes" in df.columns else set()
    cap = f" (cap {max(caps) / 2**30:.0f} GiB)" if caps else ""
    return Finding(f"RPG's largest fitting size / the baseline's{cap}: {ours}", "34-960x (Fig. 8)",
                   verdict(all(v > 1 for v in ratios.values())))


FIG8 = Claim("fig8", "Earlier methods run out of memory at sizes RPG handles", ("fig8",),
             "RPG's largest size that fits the memory cap exceeds every baseline's", judge_fig8)

register_figure("fig8", claims=(FIG8,), row_column="method",
                row_identity=("method", "preset", "size"),
                description="training memory per method and model size (paper Fig. 8; rule fig8, "
                            "rpg memory-study)")
