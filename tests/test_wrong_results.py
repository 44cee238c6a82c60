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
