"""Inputs that used to give a wrong result with exit 0: a stale or forged originals cache, claims judged on a
broken table, a table built from another domain's or an inconsistent evaluation, outputs half written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from rpg import formats
from rpg.cli.claims import main as claims_main
from rpg.cli.table import main as table_main
from rpg.domains import Outcome
from rpg.errors import RPGInputError
from rpg.evaluation import cache
from rpg.evaluation.evaluate import summarize
from rpg.tables.claims import FAILS, HOLDS, INCONCLUSIVE

LABELS = ["ResNet-18", "ResNet-50", "ViT-Tiny"]


# ------------------------------------------------------------------------------------------ originals cache
class _Domain:
    """What the cache asks of a domain: a fingerprint of its data and settings."""

    def fingerprint(self):
        return {"data": "fixed"}


def _zoo(tmp_path: Path) -> list[formats.ModelRef]:
    paths = []
    for i, fill in enumerate((b"a", b"b")):
        p = tmp_path / "zoo" / f"ckpt_{i:04d}.safetensors"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(fill * 64)
        paths.append(p)
    return [formats.ModelRef(p) for p in paths]


def _scorer(log: list):
    def score_all(refs):
        log.append(len(refs))
        return [Outcome(metric=float(r.path.read_bytes()[0])) for r in refs]   # a score that follows the bytes
    return score_all


def test_cache_misses_a_checkpoint_overwritten_with_the_same_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("RPG_CACHE_DIR", str(tmp_path / "cache"))
    refs, log = _zoo(tmp_path), []
    first = cache.cached_scores(_Domain(), refs, _scorer(log))
    st = refs[0].path.stat()
    shutil.copyfile(refs[1].path, refs[0].path)                      # ckpt_0000 <- ckpt_0001: same size
    os.utime(refs[0].path, ns=(st.st_atime_ns, st.st_mtime_ns))       # and the old mtime
    second = cache.cached_scores(_Domain(), refs, _scorer(log))
    assert log == [2, 2]
    assert second[0].metric == second[1].metric != first[0].metric


def test_cache_file_under_another_key_is_a_miss(tmp_path, monkeypatch):
    monkeypatch.setenv("RPG_CACHE_DIR", str(tmp_path / "cache"))
    refs, log = _zoo(tmp_path), []
    key = cache.cache_key(_Domain(), refs)
    # a well-formed file with made-up scores, placed under this key's name but recording another key
    cache.write_outcomes(tmp_path / "cache" / f"{key}.safetensors", [Outcome(metric=99.99)] * 2, "0" * len(key))
    outcomes = cache.cached_scores(_Domain(), refs, _scorer(log))
    assert log == [2] and all(o.metric != 99.99 for o in outcomes)
    again = cache.cached_scores(_Domain(), refs, _scorer(log))        # recomputed and rewritten: now a hit
    assert log == [2] and [o.metric for o in again] == [o.metric for o in outcomes]


# ------------------------------------------------------------------------------------------ eval files, Table 1
def _eval(path: Path, original, generated, domain="classification", metric="top-1 accuracy") -> Path:
    formats.write_eval(path, {
        "domain": domain, "metric": metric, "architecture": {"name": "timm:resnet18", "kwargs": {}},
        "params": 1000, "dataset": "fashion_mnist", "substitute_for": None, "split": "test", "generation": None,
        "original": summarize(original), "generated": summarize(generated), "similarity": None,
    })
    return path


def test_read_eval_rejects_a_summary_that_disagrees_with_its_accuracies(tmp_path):
    path = _eval(tmp_path / "e.json", [90.0, 91.0], [89.0, 90.0, 91.0])
    assert formats.read_eval(path)["generated"]["mean"] == summarize([89.0, 90.0, 91.0])["mean"]
    d = json.loads(path.read_text())
    d["generated"]["mean"] = d["generated"]["mean"] + 5
    path.write_text(json.dumps(d))
    with pytest.raises(RPGInputError, match=r"e\.json: generated\.mean"):
        formats.read_eval(path)


def test_table1_rejects_a_segmentation_evaluation(tmp_path):
    seg = _eval(tmp_path / "seg.json", [40.0, 41.0], [39.0, 40.0], domain="segmentation", metric="mIoU")
    out = tmp_path / "table1.csv"
    assert table_main(["table1", "--metrics", str(seg), "--out", str(out)]) != 0
    assert not out.exists()


@pytest.mark.parametrize("bad", ["out_is_folder", "plot_under_a_file"])
def test_table_writes_both_outputs_or_neither(tmp_path, bad):
    ev = _eval(tmp_path / "r.json", [90.0, 91.0], [89.0, 90.0])
    (tmp_path / "a_file").write_text("")
    (tmp_path / "folder").mkdir()
    out, plot = tmp_path / "t.csv", tmp_path / "t.png"
    if bad == "out_is_folder":
        out = tmp_path / "folder"
    else:
        plot = tmp_path / "a_file" / "t.png"
    assert table_main(["table1", "--metrics", str(ev), "--out", str(out), "--plot", str(plot)]) == 2
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "t.png").exists()
    assert list((tmp_path / "folder").iterdir()) == []


# ------------------------------------------------------------------------------------------ claims on broken tables
@pytest.fixture
def table1_csv(tmp_path) -> pd.DataFrame:
    evals = [_eval(tmp_path / f"{i}.json", [90.0, 91.0], [90.0, 90.5]) for i in range(len(LABELS))]
    out = tmp_path / "built" / "table1.csv"
    assert table_main(["table1", "--metrics", *map(str, evals), "--labels", *LABELS, "--out", str(out)]) == 0
    return pd.read_csv(out, dtype=str, keep_default_na=False)


def _claim(tmp_path: Path, df: pd.DataFrame, expect: list[str] | None) -> pd.Series:
    path = tmp_path / "t" / "table1.csv"
    path.parent.mkdir(exist_ok=True)
    df.to_csv(path, index=False)
    out = tmp_path / "claims.csv"
    argv = ["--tables", str(path), "--out", str(out)] + (["--expect", "table1", *expect] if expect else [])
    assert claims_main(argv) == 0
    report = pd.read_csv(out, dtype=str, keep_default_na=False)
    return report[report["id"] == "tab1"].iloc[0]


def test_claim_holds_on_the_complete_table(tmp_path, table1_csv):
    assert _claim(tmp_path, table1_csv, LABELS)["verdict"] == HOLDS


@pytest.mark.parametrize("cell", ["nan", "", "inf", "n/a"])
def test_claim_does_not_hold_on_a_non_numeric_average(tmp_path, table1_csv, cell):
    df = table1_csv.copy()
    df.loc[1, "average"] = cell
    row = _claim(tmp_path, df, None)
    assert row["verdict"] == FAILS and LABELS[1] in row["ours"]


def test_claim_is_inconclusive_on_missing_duplicate_or_unexpected_rows(tmp_path, table1_csv):
    missing = _claim(tmp_path, table1_csv.drop(index=[0, 2]), LABELS)
    assert missing["verdict"] == INCONCLUSIVE and f"rows missing: {LABELS[0]}, {LABELS[2]}" in missing["ours"]
    twice = _claim(tmp_path, pd.concat([table1_csv, table1_csv.iloc[[1]]]), None)   # even without expectations
    assert twice["verdict"] == INCONCLUSIVE and f"duplicate rows: {LABELS[1]}" in twice["ours"]
    misspelt = table1_csv.copy()
    misspelt.loc[2, "architecture"] = "ViT-Tiyn"
    row = _claim(tmp_path, misspelt, LABELS)
    assert row["verdict"] == INCONCLUSIVE and LABELS[2] in row["ours"]


# ------------------------------------------------------------------------------------ every claim on broken tables
def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, dtype=object).fillna("").astype(str)


def _fig8() -> pd.DataFrame:
    return _frame([{"method": m, "preset": "", "size": s, "status": st, "params": p}
                   for m, s, st, p in (("rpg", "s", "ok", 1e6), ("rpg", "m", "ok", 2e8), ("pdiff", "s", "ok", 1e6),
                                       ("pdiff", "m", "oom", 2e8))])


# table id -> (claim id, a table on which the claim holds, the expected row labels, a row to drop/duplicate,
# the (row, column) of a cell the rule needs)
BROKEN = {
    "table4a": ("tab4a", _frame([
        {"setting": "original baseline", "label": "original checkpoints", "average": 90, "fails": ""},
        {"setting": "+ recurrent model", "label": "with", "average": 80, "fails": "False"},
        {"setting": "- recurrent model", "label": "without", "average": 10, "fails": "True"}]),
        ["with", "without"], 2, (2, "fails")),
    "table4b": ("tab4b", _frame([{"label": "2d", "position": "2d", "average": 80.0},
                                 {"label": "learnable", "position": "learnable", "average": 80.0}]),
                ["2d", "learnable"], 1, (0, "average")),
    "fig4": ("fig4", _frame([{"label": s, "strategy": s, "average": a}
                             for s, a in (("layer", 80), ("flatten", 40), ("channel", 70))]),
             ["layer", "flatten", "channel"], 2, (0, "average")),
    "table5": ("tab5", _frame([{"label": k, "kind": k, "width": 32, "average": a, "time_ratio": r}
                               for k, a, r in (("lstm", 80.2, 3.0), ("mamba", 80.0, 1.0))]),
               ["lstm", "mamba"], 0, (0, "time_ratio")),
    "table6": ("tab6", _frame([{"model": "big", "params": 900, "smallest_good_d": 256},
                               {"model": "small", "params": 100, "smallest_good_d": 128}]),
               ["small", "big"], 0, (0, "params")),
    "table8": ("tab8", _frame([{"method": m, "architecture": "CNN (s)", "mean": v}
                               for m, v in (("original", 50), ("p-diff", 48), ("SANE", 47), ("RPG", 49))]),
               ["CNN (s)"] * 3, 2, (2, "mean")),
    "fig8": ("fig8", _fig8(), None, 3, (1, "params")),
    "table7": ("tab7", _frame([{"label": f"s{s}", "model": "M", "steps": s, "accuracy_mean": a,
                                "time_per_model_s": s / 10} for s, a in ((5, 85.0), (60, 85.0), (200, 85.0))]),
               ["s5", "s60", "s200"], 0, (0, "accuracy_mean")),
    "table15": ("tab15", _frame([{"label": f"{s}{st}", "seeds": s, "permutation_state": st, "verdict": v}
                                 for s, st, v in (("1", "w/", "ok"), ("1", "w/o", "ok"), ("3", "w/", "ok"),
                                                  ("3", "w/o", "fail"))]),
                ["1w/", "1w/o", "3w/", "3w/o"], 3, (3, "verdict")),
    "fig9": ("fig9", _frame([{"label": m, "less_similar_than_noise": "5/5", "not_noisy_copy": "holds"}
                             for m in ("A", "B")]), ["A", "B"], 1, (1, "not_noisy_copy")),
}


def _verdict(table: str, df: pd.DataFrame, expect: list[str] | None) -> pd.Series:
    from rpg.tables.claims import CLAIMS, evaluate_claims
    claim = next(c for c in CLAIMS if c.id == BROKEN[table][0])
    return evaluate_claims({table: df}, (claim,), expect={table: expect} if expect else None).iloc[0]


@pytest.mark.parametrize("table", BROKEN)
def test_each_claim_holds_on_its_complete_table(table):
    _, df, expect, _, _ = BROKEN[table]
    assert _verdict(table, df, expect)["verdict"] == HOLDS


@pytest.mark.parametrize("table", BROKEN)
def test_each_claim_does_not_hold_on_a_removed_or_duplicated_row(table):
    _, df, expect, row, _ = BROKEN[table]
    removed = _verdict(table, df.drop(index=row), expect)
    twice = _verdict(table, pd.concat([df, df.iloc[[row]]]), expect)
    assert removed["verdict"] == INCONCLUSIVE, removed["ours"]
    assert twice["verdict"] == INCONCLUSIVE and "duplicate" in twice["ours"], twice["ours"]


@pytest.mark.parametrize("table", BROKEN)
@pytest.mark.parametrize("cell", ["nan", "", "inf", "n/a"])
def test_each_claim_does_not_hold_on_a_non_numeric_needed_cell(table, cell):
    _, df, expect, _, (row, column) = BROKEN[table]
    df = df.copy()
    df.loc[row, column] = cell
    found = _verdict(table, df, expect)
    assert found["verdict"] != HOLDS and column in found["ours"], found["ours"]
