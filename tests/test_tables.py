"""`python -m rpg table`: evaluation files (written by formats.write_eval) -> paper-shaped CSV + PNG."""

from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd
import pytest

from rpg import formats
from rpg.cli.table import main as table_main
from rpg.evaluation.evaluate import summarize
from rpg.tables import builders as tables
from rpg.tables.registry import TABLES, builder_ids

REPO = Path(__file__).resolve().parents[1]
PAPER_TABLE1 = REPO / "resources" / "paper" / "table1.csv"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_eval(path: Path, original: list[float], generated: list[float], params: int = 11_689_512,
                dataset: str = "fashion_mnist", substitute_for: str | None = "ImageNet-1K",
                generation: dict | None = None) -> Path:
    """An rpg-eval/1 file as `rpg evaluate` writes it: the real summaries through the real writer."""
    formats.write_eval(path, {
        "domain": "classification", "metric": "top-1 accuracy",
        "architecture": {"name": "timm:resnet18", "kwargs": {}}, "params": params,
        "dataset": dataset, "substitute_for": substitute_for, "split": "test", "generation": generation,
        "original": summarize(original), "generated": summarize(generated), "similarity": None,
    })
    return path


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_table1_columns_values_and_paper_join(tmp_path):
    a = _write_eval(tmp_path / "resnet18.json", [90.0, 91.0, 92.0], [89.0, 90.5, 91.5, 90.0])
    b = _write_eval(tmp_path / "vit_tiny.json", [80.0, 82.0], [81.0, 79.0], params=5_717_416)
    out = tmp_path / "out" / "table1.csv"
    rc = table_main(["table1", "--metrics", str(a), str(b), "--labels", "ResNet-18", "ViT-Tiny",
                      "--paper", str(PAPER_TABLE1), "--scale", "mini", "--out", str(out)])
    assert rc == 0
    df = _read_csv(out)
    assert list(df.columns) == list(tables.TABLE1_COLUMNS)
    # The paper's columns, in the paper's order, lead the table.
    assert list(df.columns)[:10] == ["architecture", "scale", "dataset", "params", "original", "best", "average",
                                     "minimum", "median", "std"]
    r18, vit = (row for _, row in df.iterrows())
    assert r18["architecture"] == "ResNet-18" and r18["scale"] == "mini"
    assert r18["dataset"] == "Fashion-MNIST (substitute for ImageNet-1K)"
    assert r18["params"] == "11.69"
    assert r18["original"] == "91.00"                 # mean of the original checkpoints
    assert (r18["best"], r18["minimum"]) == ("91.50", "89.00")
    assert r18["average"] == "90.25" and r18["median"] == "90.25"
    assert r18["std"] == f"{statistics.pstdev([89.0, 90.5, 91.5, 90.0]):.2f}"
    assert (r18["n_original"], r18["n_generated"]) == ("3", "4")
    # The paper's own numbers sit beside ours, as printed.
    assert (r18["paper_params_m"], r18["paper_original"], r18["paper_best"]) == ("11.7", "70.0", "69.9")
    assert vit["paper_best"] == "75.4" and vit["paper_std"] == "0.1"
    assert vit["params"] == "5.717"
    # csv-module line ends, as Table 1 has always been written (byte-identical to before pandas)
    assert out.read_bytes().count(b"\r\n") == 3
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert not list(out.parent.glob(".*.tmp"))       # atomic writes leave no temp files


def test_table1_unknown_label_leaves_paper_columns_empty_and_plot_path(tmp_path):
    a = _write_eval(tmp_path / "tiny_net.json", [50.0], [40.0, 60.0], params=2_864, dataset="digits",
                    substitute_for=None)
    out, plot = tmp_path / "t.csv", tmp_path / "figs" / "t.png"
    assert table_main(["table1", "--metrics", str(a), "--paper", str(PAPER_TABLE1), "--scale", "smoke",
                        "--out", str(out), "--plot", str(plot)]) == 0
    (row,) = (r for _, r in _read_csv(out).iterrows())
    assert row["architecture"] == "tiny_net"          # default label = file stem
    assert row["dataset"] == "scikit-learn digits"     # no substitute note for a non-substitute dataset
    assert row["params"] == "0.002864"
    assert all(row[f"paper_{c}"] == "" for c in tables.TABLE1_PAPER_COLUMNS)
    assert plot.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="rpg-zoo/1"), "not an evaluation file"),
    (lambda d: d.pop("generated"), "missing key 'generated'"),
    (lambda d: d.update(generated=None), ": generated: expected an object"),
    (lambda d: d["original"].update(n=7), "original.n=7"),
    (lambda d: d["generated"]["accuracies"].append(101.0), "generated.accuracies[2]=101.0"),
    (lambda d: d["generated"].update(best=float("nan")), "generated.best: expected a finite number"),
    (lambda d: d.update(params=0), "params must be a positive integer"),
])
def test_bad_eval_json_is_one_error_line_naming_file_and_key(tmp_path, capsys, mutate, message):
    path = _write_eval(tmp_path / "m.json", [90.0, 91.0], [89.0, 90.0])
    d = formats.read_eval(path)
    mutate(d)
    if d.get("format") == formats.EVAL_FORMAT:
        formats.write_eval(path, d)
    else:                                            # write_eval always stamps its own format
        from rpg.io import write_json
        write_json(path, d)
    out = tmp_path / "t.csv"
    assert table_main(["table1", "--metrics", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0] and str(path) in err[0]
    assert not out.exists()


def test_label_count_and_duplicates_are_errors(tmp_path, capsys):
    a = _write_eval(tmp_path / "a.json", [90.0], [90.0])
    out = str(tmp_path / "t.csv")
    assert table_main(["table1", "--metrics", str(a), "--labels", "X", "Y", "--out", out]) == 2
    assert "2 labels for 1 --metrics" in capsys.readouterr().err
    assert table_main(["table1", "--metrics", str(a), str(a), "--labels", "X", "X", "--out", out]) == 2
    assert "duplicate" in capsys.readouterr().err


def test_paper_csv_must_have_the_columns(tmp_path, capsys):
    a = _write_eval(tmp_path / "a.json", [90.0], [90.0])
    bad = tmp_path / "paper.csv"
    pd.DataFrame({"architecture": ["ResNet-18"], "original": ["70.0"]}).to_csv(bad, index=False)
    out = str(tmp_path / "t.csv")
    assert table_main(["table1", "--metrics", str(a), "--paper", str(bad), "--out", out]) == 2
    assert f"{bad}: missing column(s) params_m" in capsys.readouterr().err
    # the generic builders join by a `label` column
    assert table_main(["ablation", "--metrics", str(a), "--paper", str(bad), "--out", out]) == 2
    assert f"{bad}: missing column(s) label" in capsys.readouterr().err
    twice = tmp_path / "twice.csv"
    pd.DataFrame({"label": ["A", "A"], "mean": ["1", "2"]}).to_csv(twice, index=False)
    assert table_main(["ablation", "--metrics", str(a), "--paper", str(twice), "--out", out]) == 2
    assert f"{twice}:3: label 'A' listed twice" in capsys.readouterr().err


def test_paper_table1_csv_matches_the_paper():
    """resources/paper/table1.csv holds the seven columns of paper Table 1 (typed from the PDF)."""
    df = tables.read_paper_table(PAPER_TABLE1, "architecture", tables.TABLE1_PAPER_COLUMNS)
    assert list(df.index) == ["ResNet-18", "ResNet-50", "ViT-Tiny", "ViT-Small", "ViT-Base",
                              "ConvNeXt-A", "ConvNeXt-L"]
    assert list(df["params_m"]) == ["11.7", "25.6", "5.7", "22.1", "86.6", "3.7", "197.8"]
    assert list(df["original"]) == ["70.0", "79.8", "74.9", "81.4", "84.4", "75.2", "85.8"]
    for _, r in df.iterrows():   # min <= median <= best and min <= average <= best in every printed row
        lo, med, avg, hi = (float(r[k]) for k in ("minimum", "median", "average", "best"))
        assert lo <= med <= hi and lo <= avg <= hi


# ---- generic builders -------------------------------------------------------------------------------


def test_ablation_builder_columns_values_and_paper_join(tmp_path):
    a = _write_eval(tmp_path / "pos_2d.json", [90.0, 91.0], [89.0, 90.5, 91.5], substitute_for=None)
    b = _write_eval(tmp_path / "pos_none.json", [90.0, 91.0], [70.25, 80.0], substitute_for=None)
    paper = tmp_path / "paper.csv"
    pd.DataFrame({"label": ["2D (ours)", "not in ours"], "mean": ["70.0", "1.0"], "note": ["", "x"]}).to_csv(
        paper, index=False)
    inputs = tables.load_inputs("ablation", [a, b], ["2D (ours)", "none"], paper, "smoke")
    out = tmp_path / "t" / "ablation.csv"
    table = tables.build_table("ablation", inputs, out, tmp_path / "t" / "ablation.png")
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns) == [*tables.ABLATION_COLUMNS, "paper_mean", "paper_note"]
    assert list(df["label"]) == ["2D (ours)", "none"] and set(df["scale"]) == {"smoke"}
    for i, path in enumerate((a, b)):
        ev = formats.read_eval(path)
        assert df.loc[i, "original_mean"] == ev["original"]["mean"]
        for k in ("best", "mean", "min", "median", "std", "n"):
            assert df.loc[i, k] == ev["generated"][k]
    # the paper's numbers join by label; a row the paper does not have gets empty cells
    assert (str(df.loc[0, "paper_mean"]), df.loc[1, "paper_mean"]) == ("70.0", "")
    assert len(table) == 2 and (tmp_path / "t" / "ablation.png").read_bytes()[:8] == PNG_MAGIC
    assert not list(out.parent.glob(".*.tmp"))
    # without --paper there are no paper columns
    plain = tables.build_table("ablation", tables.load_inputs("ablation", [a]), tmp_path / "p.csv")
    assert list(plain.columns) == list(tables.ABLATION_COLUMNS)
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC


def test_sampling_builder_reads_the_generation_provenance(tmp_path, capsys):
    runs = [({"method": "rpg", "sampler": "ddim", "steps": 10, "mode": "sequential"}, [80.0, 84.0]),
            ({"method": "rpg", "sampler": "ddim", "steps": 100, "mode": "sequential"}, [85.0, 86.5, 86.0]),
            (None, [86.0])]    # a folder of bare weight files has no provenance
    paths = [_write_eval(tmp_path / f"v{i}.json", [86.0, 87.0], gen, generation=g)
             for i, (g, gen) in enumerate(runs)]
    out = tmp_path / "sampling.csv"
    assert table_main(["sampling", "--metrics", *map(str, paths), "--labels", "10 steps", "100 steps", "bare",
                       "--out", str(out), "--title", "DDIM steps"]) == 0
    assert "3 rows" in capsys.readouterr().out
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns) == list(tables.SAMPLING_COLUMNS)
    assert list(df["steps"]) == ["10", "100", ""] and list(df["sampler"]) == ["ddim", "ddim", ""]
    assert list(df["mode"]) == ["sequential", "sequential", ""]
    for i, path in enumerate(paths):
        gen = formats.read_eval(path)["generated"]
        assert [df.loc[i, k] for k in ("mean", "best", "min", "std", "n")] == [
            gen[k] for k in ("mean", "best", "min", "std", "n")]
    assert out.with_suffix(".png").read_bytes()[:8] == PNG_MAGIC


def test_help_lists_every_builder(capsys):
    assert table_main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in builder_ids():
        assert name in text and TABLES[name].description in " ".join(text.split())
    # argparse's error: one line, status 2
    assert table_main(["no-such-table", "--metrics", "x.json", "--out", "t.csv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-table" in err[0]


# ------------------------------------------------------------------------------------------------ registry
def _configured_tables() -> dict[str, dict]:
    """Every configured table entry: config.yaml, config.yaml + paper.yaml (as Snakemake merges them), smoke."""
    import copy

    import yaml
    from snakemake.utils import update_config

    repo = Path(__file__).resolve().parents[1]
    mini = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    paper = copy.deepcopy(mini)
    update_config(paper, yaml.safe_load((repo / "config" / "paper.yaml").read_text()))
    smoke = yaml.safe_load((repo / "tests" / "smoke" / "config" / "config.yaml").read_text())
    return {f"{name}:{t}": spec for name, cfg in (("mini", mini), ("paper", paper), ("smoke", smoke))
            for t, spec in cfg["tables"].items()}


def test_every_configured_builder_is_registered_once_and_every_claim_reads_a_registered_table():
    from rpg.tables.claims import CLAIMS, REPORT_ORDER
    from rpg.tables.config import config_problems

    tables_ = _configured_tables()
    for key, spec in tables_.items():
        assert spec["builder"] in builder_ids(), key
        assert config_problems(key.split(":")[1], spec) == [], key
    # one registry entry per builder id (the mapping cannot hold two); each configured builder has one
    assert {s["builder"] for s in tables_.values()} <= set(builder_ids())
    assert all(TABLES[b].id == b for b in builder_ids())
    for claim in CLAIMS:
        assert all(t in TABLES for t in claim.tables), claim.id
        assert any(claim in TABLES[t].claims for t in claim.tables), claim.id
    assert [c.id for c in CLAIMS] == list(REPORT_ORDER)


def test_config_problems_name_the_key():
    from rpg.tables.config import config_problems, row_groups

    spec = {"builder": "table7", "rows": ["a", "b", "c"]}
    assert config_problems("t", spec) == [("tables.t.groups", "builder table7 needs each row's group ({group: "
                                                               "[row ids]})")]
    spec["groups"] = {"X": ["a", "b"], "Y": ["b", "z"]}
    found = dict(config_problems("t", spec))
    assert "z is not one of" in found["tables.t.groups.Y"] and "row(s) c in no group" in found["tables.t.groups"]
    assert config_problems("t", {"builder": "nope", "rows": ["a"]})[0][0] == "tables.t.builder"
    assert row_groups({"rows": ["b", "a"], "groups": {"X": ["a"], "Y": ["b"]}}) == ["Y", "X"]


def test_expected_rows_follow_what_each_table_prints_in_its_row_column():
    """`rpg claims --expect`: Table 1 prints each row's label, Table 6 each model (group) once, Table 8 each row's
    architecture column (group); a table without a row column expects nothing."""
    from rpg.tables.config import expected_rows
    from rpg.tables.registry import TABLES

    labels = {"a": "A", "b": "B", "c": "C"}
    spec = {"rows": ["a", "b", "c"], "groups": {"X": ["a", "c"], "Y": ["b"]}}
    assert expected_rows("table1", spec, labels) == ["A", "B", "C"]
    assert expected_rows("table6", spec, labels) == ["X", "Y"]
    assert expected_rows("table8", spec, labels) == ["X", "Y", "X"]
    no_row_column = next(t for t, s in TABLES.items() if not s.row_column)
    assert expected_rows(no_row_column, spec, labels) == []


def test_no_import_cycle_among_the_table_modules():
    """Every `import` statement of rpg/tables (module level and inside functions) forms no cycle."""
    import ast

    root = Path(__file__).resolve().parents[1]
    files = {f"rpg.tables.{p.stem}" if p.stem != "__init__" else "rpg.tables": p
             for p in (root / "rpg" / "tables").glob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:   # `from pkg import mod` imports pkg.mod
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                         for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            deps |= {n for n in names if n in files and n != mod}
        graph[mod] = deps
    # the package __init__ imports the builder modules; a submodule importing `rpg.tables.x` does not import
    # the package back (Python has initialised it first), so only explicit edges count
    done: set[str] = set()

    def visit(mod: str, path: list[str]) -> None:
        assert mod not in path, f"import cycle: {' -> '.join(path + [mod])}"
        if mod in done:
            return
        for dep in graph[mod]:
            visit(dep, path + [mod])
        done.add(mod)

    for mod in graph:
        visit(mod, [])
    assert "rpg.tables.registry" in graph and not graph["rpg.tables.registry"]   # the registry imports no builder


# ------------------------------------------------------------------------------------------------ readers
def test_run_readers_fail_in_one_line_naming_the_file(tmp_path):
    from rpg.errors import RPGInputError

    with pytest.raises(RPGInputError, match=r"config\.json: file not found") as e:
        formats.read_run_config(tmp_path)
    assert "\n" not in str(e.value)
    assert formats.read_run_meta(tmp_path, required=False) is None
    (tmp_path / "meta.json").write_text("[1, 2]")
    with pytest.raises(RPGInputError, match=r"meta\.json: expected a JSON object, got list") as e:
        formats.read_run_meta(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RPGInputError, match=r"config\.json: not valid JSON"):
        formats.read_run_config(tmp_path)
    (tmp_path / "generator.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(RPGInputError, match=r"generator\.safetensors: not a readable safetensors file") as e:
        formats.read_generator_sizes(tmp_path / "generator.safetensors")
    assert "\n" not in str(e.value)
    with pytest.raises(RPGInputError, match="nope: run folder not found"):
        tables.read_run_summary(tmp_path / "nope")
