"""The claims report (rpg.tables.claims, `rpg claims`): each claim's rule on fabricated table CSVs, one that meets
it and one that does not (plus the inconclusive cases), and the CLI writing claims.csv/.md."""

from __future__ import annotations

import csv

import pandas as pd
import pytest

from rpg.cli import claims as claims_cli
from rpg.tables.claims import (
    AS_GOOD_WITHIN,
    CLAIM_COLUMNS,
    CLAIMS,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    MATCH_WITHIN,
    evaluate_claims,
)

BY_ID = {c.id: c for c in CLAIMS}


def frame(rows: list[dict]) -> pd.DataFrame:
    """A table as the claims read it: every cell a string, blanks empty."""
    return pd.DataFrame(rows, dtype=object).fillna("").astype(str)


def verdict(claim_id: str, **tables: pd.DataFrame) -> str:
    report = evaluate_claims(tables, (BY_ID[claim_id],))
    return report.iloc[0]["verdict"]


def table1(gap: float, paper_gap: float = -0.1) -> pd.DataFrame:
    return frame([{"architecture": a, "scale": "mini", "original": 80.0, "average": 80.0 + g,
                   "paper_original": 70.0, "paper_average": 70.0 + pg}
                  for a, g, pg in (("A", 0.1, 0.0), ("B", gap, paper_gap))])


def table3(gaps: list[float]) -> pd.DataFrame:
    rows = []
    for rank, gap in zip((4, 16), gaps):
        label = f"DoRA r={rank}"
        rows += [{"label": label, "row": "base model (no adapter)", "mean": 60.0},
                 {"label": label, "row": "original", "mean": 70.0, "paper_boolq": 69.0},
                 {"label": label, "row": "generated average", "mean": 70.0 + gap, "paper_boolq": 69.5}]
    return frame(rows)


def table7(acc_at_few: float) -> pd.DataFrame:
    return frame([{"model": "ViT-Base", "steps": s, "accuracy_mean": a, "time_per_model_s": s / 10}
                  for s, a in ((5, acc_at_few), (60, acc_at_few), (200, 85.0))])


def table13(partial_memory: float) -> pd.DataFrame:
    return frame([{"model": "ResNet-18", "mode": m, "time_per_model_s": t, "peak_memory_mib": mem}
                  for m, t, mem in (("sequential", 10.0, 5.0), ("partially parallel", 1.0, partial_memory),
                                    ("fully parallel", 0.9, 20.0))])


CASES = [
    ("tab1", {"table1": table1(-MATCH_WITHIN + 0.1)}, HOLDS),
    ("tab1", {"table1": table1(-MATCH_WITHIN - 0.1)}, FAILS),
    ("tab2", {"table2": frame([{"models": "original", "statistic": "original", "miou": 50.0},
                               {"models": "generated", "statistic": "average", "miou": 49.5}])}, HOLDS),
    ("tab2", {"table2": frame([{"models": "original", "statistic": "original", "miou": 50.0},
                               {"models": "generated", "statistic": "average", "miou": 47.0}])}, FAILS),
    ("tab3", {"table3": table3([0.5, -0.5])}, HOLDS),
    ("tab3", {"table3": table3([0.5, -3.0])}, FAILS),
    ("tab4a", {"table4a": frame([{"setting": "+ recurrent model", "average": 80, "fails": "False"},
                                 {"setting": "- recurrent model", "average": 10, "fails": "True"}])}, HOLDS),
    ("tab4a", {"table4a": frame([{"setting": "+ recurrent model", "average": 80, "fails": "False"},
                                 {"setting": "- recurrent model", "average": 79, "fails": "False"}])}, FAILS),
    ("tab4b", {"table4b": frame([{"position": "2d", "average": 80.0 - AS_GOOD_WITHIN + 0.1},
                                 {"position": "learnable", "average": 80.0}])}, HOLDS),
    ("tab4b", {"table4b": frame([{"position": "2d", "average": 80.0 - AS_GOOD_WITHIN - 0.1},
                                 {"position": "learnable", "average": 80.0}])}, FAILS),
    ("fig4", {"fig4": frame([{"strategy": "layer", "average": 80}, {"strategy": "flatten", "average": 40},
                             {"strategy": "channel", "average": 70}])}, HOLDS),
    ("fig4", {"fig4": frame([{"strategy": "layer", "average": 80}, {"strategy": "flatten", "average": 40},
                             {"strategy": "channel", "average": 81}])}, FAILS),
    ("tab5", {"table5": frame([{"label": "LSTM", "kind": "lstm", "width": 32, "average": 80.2, "time_ratio": 3.0},
                               {"label": "Mamba", "kind": "mamba", "width": 32, "average": 80.0, "time_ratio": 1.0},
                               {"label": "LSTM (wide)", "kind": "lstm", "width": 1024, "average": 9,
                                "time_ratio": 0.5}])}, HOLDS),     # a wider probe is not one of the paper's rows
    ("tab5", {"table5": frame([{"label": "LSTM", "kind": "lstm", "width": 32, "average": 80.2, "time_ratio": 0.9},
                               {"label": "Mamba", "kind": "mamba", "width": 32, "average": 80.0,
                                "time_ratio": 1.0}])}, FAILS),
    ("tab6", {"table6": frame([{"model": "big", "params": 900, "d128": 10, "d256": 80, "smallest_good_d": 256},
                               {"model": "small", "params": 100, "d128": 80, "d256": 80,
                                "smallest_good_d": 128}])}, HOLDS),
    ("tab6", {"table6": frame([{"model": "big", "params": 900, "d128": 80, "d256": 80, "smallest_good_d": 256},
                               {"model": "small", "params": 100, "d128": 10, "d256": 80,
                                "smallest_good_d": 512}])}, FAILS),
    ("tab6", {"table6": frame([{"model": m, "params": p, "d128": 80, "d256": 80, "smallest_good_d": 128}
                               for m, p in (("small", 100), ("big", 900))])}, INCONCLUSIVE),
    ("tab7", {"table7": table7(85.0 - AS_GOOD_WITHIN + 0.1)}, HOLDS),
    ("tab7", {"table7": frame([{"model": "M", "steps": s, "accuracy_mean": a, "time_per_model_s": s / 10}
                               for s, a in ((5, 70.0), (60, 80.0), (200, 85.0))])}, FAILS),
    ("tab13", {"table13": table13(10.0)}, HOLDS),
    ("tab13", {"table13": table13(25.0)}, FAILS),
    ("tab8", {"table8": frame([{"method": m, "architecture": "CNN (s)", "mean": v}
                               for m, v in (("original", 50), ("p-diff", 48), ("RPG", 49))])}, HOLDS),
    ("tab8", {"table8": frame([{"method": m, "architecture": "CNN (s)", "mean": v}
                               for m, v in (("original", 50), ("p-diff", 49.5), ("RPG", 49))])}, FAILS),
    ("fig8", {"fig8": frame([{"method": "rpg", "status": "ok", "params": 2e8},
                             {"method": "pdiff", "status": "ok", "params": 1e6},
                             {"method": "pdiff", "status": "oom", "params": 1e7}])}, HOLDS),
    ("fig8", {"fig8": frame([{"method": "rpg", "status": "ok", "params": 1e6},
                             {"method": "pdiff", "status": "ok", "params": 1e6}])}, FAILS),
    ("tab9", {"table9": frame([{"label": "gated", "split": "unseen", "method": "rpg", "original": 90,
                                "generated_mean": 85, "retrieval": 84, "majority": 60}])}, HOLDS),
    ("tab9", {"table9": frame([{"label": "gated", "split": "unseen", "method": "rpg", "original": 90,
                                "generated_mean": 80, "retrieval": 84, "majority": 60}])}, FAILS),
    ("tab9", {"table9": frame([{"label": "gated", "split": "unseen", "method": "rpg", "original": 90,
                                "generated_mean": 85, "retrieval": "", "majority": 60}])}, INCONCLUSIVE),
    ("tab15", {"table15": frame([{"seeds": s, "permutation_state": st, "verdict": v}
                                 for s, st, v in (("1", "w/", "ok"), ("1", "w/o", "ok"), ("3", "w/", "ok"),
                                                  ("3", "w/o", "fail"))])}, HOLDS),
    ("tab15", {"table15": frame([{"seeds": s, "permutation_state": st, "verdict": v}
                                 for s, st, v in (("3", "w/", "fail"), ("3", "w/o", "fail"))])}, FAILS),
    ("fig9", {"fig9": frame([{"label": m, "less_similar_than_noise": "3/3", "not_noisy_copy": "holds"}
                             for m in ("A", "B")])}, HOLDS),
    ("fig9", {"fig9": frame([{"label": "A", "less_similar_than_noise": "3/3", "not_noisy_copy": "holds"},
                             {"label": "B", "less_similar_than_noise": "0/3",
                              "not_noisy_copy": "does not hold"}])}, INCONCLUSIVE),
    ("fig9", {"fig9": frame([{"label": "A", "less_similar_than_noise": "0/3",
                              "not_noisy_copy": "does not hold"}])}, FAILS),
]


@pytest.mark.parametrize("claim_id, tables, expected", CASES, ids=[f"{c}-{e}" for c, _, e in CASES])
def test_each_rule_on_fabricated_tables(claim_id, tables, expected):
    assert verdict(claim_id, **tables) == expected


def test_every_claim_has_a_holding_and_a_failing_case():
    for c in CLAIMS:
        seen = {e for cid, _, e in CASES if cid == c.id}
        assert {HOLDS, FAILS} <= seen, c.id


def test_the_paper_side_uses_the_same_rule_on_the_paper_columns():
    report = evaluate_claims({"table1": table1(-0.2, paper_gap=-0.9)}, (BY_ID["tab1"],))
    assert "-0.90 (B)" in report.iloc[0]["paper"] and "-0.20 (B)" in report.iloc[0]["ours"]


def test_missing_table_or_row_is_inconclusive_and_says_why():
    report = evaluate_claims({}, (BY_ID["tab7"],))
    assert report.iloc[0]["verdict"] == INCONCLUSIVE and "results/table7.csv" in report.iloc[0]["ours"]
    report = evaluate_claims({"table4a": frame([{"setting": "+ recurrent model", "average": 80}])},
                             (BY_ID["tab4a"],))
    assert report.iloc[0]["verdict"] == INCONCLUSIVE and "without recurrence" in report.iloc[0]["ours"]


def test_cli_writes_csv_and_markdown(tmp_path, capsys):
    path = tmp_path / "table1.csv"
    table1(-0.2).to_csv(path, index=False)
    out = tmp_path / "claims.csv"
    assert claims_cli.main(["--tables", str(path), "--out", str(out)]) == 0
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(CLAIM_COLUMNS) and len(rows) == len(CLAIMS)
    by_id = {r["id"]: r for r in rows}
    assert by_id["tab1"]["verdict"] == HOLDS and by_id["tab1"]["scale"] == "mini"
    assert all(r["verdict"] == INCONCLUSIVE for i, r in by_id.items() if i != "tab1")
    md = (tmp_path / "claims.md").read_text()
    assert "[table1](table1.csv)" in md and md.count("\n| ") == len(CLAIMS) + 1   # header + one line per claim
    for c in CLAIMS:
        assert c.rule in md


def test_cli_scale_stands_in_only_for_a_table_without_a_scale_column(tmp_path):
    """Fig. 8's CSV records machine measurements and names no scale: the workflow's --scale labels its row, while a
    table that names its own scale keeps it."""
    t1, f8 = tmp_path / "table1.csv", tmp_path / "fig8.csv"
    table1(-0.2).to_csv(t1, index=False)
    frame([{"method": "rpg", "status": "ok", "params": 2e8},
           {"method": "pdiff", "status": "ok", "params": 1e6}]).to_csv(f8, index=False)
    out = tmp_path / "claims.csv"
    assert claims_cli.main(["--tables", str(t1), str(f8), "--scale", "laptop", "--out", str(out)]) == 0
    with out.open(newline="") as f:
        by_id = {r["id"]: r for r in csv.DictReader(f)}
    assert by_id["fig8"]["scale"] == "laptop" and by_id["fig8"]["verdict"] == HOLDS
    assert by_id["tab1"]["scale"] == "mini"


def test_cli_rejects_an_unknown_table_name(tmp_path, capsys):
    path = tmp_path / "table99.csv"
    table1(0.0).to_csv(path, index=False)
    assert claims_cli.main(["--tables", str(path), "--out", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err
    assert "table99" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.csv").exists()


def test_cli_rewrites_the_readme_claims_block_only(tmp_path):
    """`--readme` replaces what stands between the markers (twice gives the same file) and nothing else."""
    from rpg.tables.claims import README_BEGIN, README_END
    path = tmp_path / "table1.csv"
    table1(-0.2).to_csv(path, index=False)
    readme = tmp_path / "README.md"
    readme.write_text(f"# top\n\n{README_BEGIN}\nstale text\n{README_END}\n\n## after\n")
    args = ["--tables", str(path), "--out", str(tmp_path / "results" / "claims.csv"), "--readme", str(readme)]
    assert claims_cli.main(args) == 0
    first = readme.read_text()
    assert "stale text" not in first and first.startswith("# top\n") and first.endswith(f"{README_END}\n\n## after\n")
    block = first[first.index(README_BEGIN):first.index(README_END)]
    assert "(results/claims.md)" in block and block.count("\n- **") == len(CLAIMS)
    assert f"- **{HOLDS}**: " in block                                   # Table 1's claim, judged from the CSV
    assert claims_cli.main(args) == 0 and readme.read_text() == first


def test_readme_without_markers_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "table1.csv"
    table1(0.0).to_csv(path, index=False)
    readme = tmp_path / "README.md"
    readme.write_text("# no block here\n")
    assert claims_cli.main(["--tables", str(path), "--out", str(tmp_path / "c.csv"), "--readme", str(readme)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(readme) in err and len(err.splitlines()) == 1
    assert readme.read_text() == "# no block here\n"


def test_readme_from_an_existing_claims_csv(tmp_path):
    """Without --tables the CLI quotes the claims CSV the rule wrote, the same summary as judging afresh."""
    from rpg.tables.claims import README_BEGIN, README_END
    path = tmp_path / "table1.csv"
    table1(-0.2).to_csv(path, index=False)
    out = tmp_path / "claims.csv"
    judged, quoted = tmp_path / "judged.md", tmp_path / "quoted.md"
    for readme in (judged, quoted):
        readme.write_text(f"{README_BEGIN}\n{README_END}\n")
    assert claims_cli.main(["--tables", str(path), "--out", str(out), "--readme", str(judged)]) == 0
    assert claims_cli.main(["--out", str(out), "--readme", str(quoted)]) == 0
    assert quoted.read_text() == judged.read_text() != f"{README_BEGIN}\n{README_END}\n"


def test_verdicts_do_not_change_when_row_labels_are_renamed(tmp_path):
    """Labels are display only: builders take the generator / architecture from the rows' groups and the method
    from the evaluation's provenance, so renaming every label changes no claim's verdict or numbers."""
    from rpg import formats
    from rpg.evaluation.evaluate import summarize
    from rpg.tables.builders import build_table, load_inputs
    from rpg.tables.claims import read_table

    def evals(name: str, specs: list[tuple[dict, list[float]]]) -> list:
        paths = []
        for i, (generation, accs) in enumerate(specs):
            paths.append(tmp_path / f"{name}{i}.json")
            formats.write_eval(paths[-1], {"params": 1000, "dataset": "fashion_mnist", "substitute_for": None,
                                           "generation": generation, "original": summarize([85.0, 86.0]),
                                           "generated": summarize(accs)})
        return paths

    cost = {"per_model_s": 1.0, "peak_memory_bytes": 2 ** 20}
    t7 = evals("t7", [({"sampler": "ddim", "steps": s, "cost": {**cost, "per_model_s": s / 10}}, [a, a])
                      for s, a in ((5, 80.0), (20, 85.4), (60, 85.5))])
    t8 = evals("t8", [({"method": m}, accs) for m, accs in (("pdiff", [80.0, 82.0]), ("rpg", [85.0, 86.0]),
                                                             ("sane", [70.0, 71.0]), ("rpg", [84.0, 84.0]))])
    builds = {
        "table7": (t7, ["ViT-B"] * 3, (["ViT-Base, DDIM-5", "ViT-Base, DDIM-20", "ViT-Base, DDIM-60"],
                                       ["first", "second", "third"])),
        "table8": (t8, ["CNN (s)", "CNN (s)", "ResNet-18", "ResNet-18"],
                   (["p-diff / CNN (s)", "RPG / CNN (s)", "SANE / ResNet-18", "ResNet-18"],
                    ["w", "x", "SANE / CNN (s)", "RPG / anything"])),
    }
    reports = []
    for k, _ in enumerate(("paper's labels", "renamed")):
        tables_ = {}
        for name, (files, groups, label_sets) in builds.items():
            out = tmp_path / f"{name}_{k}.csv"
            build_table(name, load_inputs(name, files, label_sets[k], groups=groups), out)
            tables_[name] = read_table(out)
        reports.append(evaluate_claims(tables_, (BY_ID["tab7"], BY_ID["tab8"])))
    assert list(reports[0]["verdict"]) == [HOLDS, HOLDS]
    pd.testing.assert_frame_equal(reports[0], reports[1])
