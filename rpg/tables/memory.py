"""Fig. 8 (training memory per method and model size): its CSV is written by `rule fig8` (rpg memory-study),
not by `rpg table`; registered here for the claim judged from it."""

from __future__ import annotations

import pandas as pd

from rpg.tables.judging import Claim, Finding, Missing, num, verdict
from rpg.tables.registry import register_figure


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
                   verdict(all(v > 1 for v in ratios.values())))


FIG8 = Claim("fig8", "Earlier methods run out of memory at sizes RPG handles", ("fig8",),
             "RPG's largest size that fits the memory cap exceeds every baseline's", judge_fig8)

register_figure("fig8", claims=(FIG8,),
                description="training memory per method and model size (paper Fig. 8; rule fig8, "
                            "rpg memory-study)")
