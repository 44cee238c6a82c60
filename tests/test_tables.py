"""`python -m rpg table`: hand-made evaluation JSONs -> paper-shaped CSV + PNG."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from rpg.cli.table import main as table_main
from rpg.tables import builders as tables

REPO = Path(__file__).resolve().parents[1]
PAPER_TABLE1 = REPO / "resources" / "paper" / "table1.csv"


def _block(accs: list[float]) -> dict:
    return {"accuracies": accs, "best": max(accs), "mean": round(statistics.fmean(accs), 2), "min": min(accs),
            "median": statistics.median(accs), "std": round(statistics.pstdev(accs), 2), "n": len(accs)}


def _write_eval(path: Path, original: list[float], generated: list[float], params: int = 11_689_512,
                dataset: str = "fashion_mnist", substitute_for: str | None = "ImageNet-1K") -> Path:
    path.write_text(json.dumps({
        "format": "rpg-eval/1", "architecture": {"name": "timm:resnet18", "kwargs": {}}, "params": params,
        "dataset": dataset, "substitute_for": substitute_for, "split": "test",
        "original": _block(original), "generated": _block(generated), "similarity": None,
    }))
    return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_table1_columns_values_and_paper_join(tmp_path):
    a = _write_eval(tmp_path / "resnet18.json", [90.0, 91.0, 92.0], [89.0, 90.5, 91.5, 90.0])
    b = _write_eval(tmp_path / "vit_tiny.json", [80.0, 82.0], [81.0, 79.0], params=5_717_416)
    out = tmp_path / "out" / "table1.csv"
    rc = table_main(["table1", "--metrics", str(a), str(b), "--labels", "ResNet-18", "ViT-Tiny",
                      "--paper", str(PAPER_TABLE1), "--scale", "mini", "--out", str(out)])
    assert rc == 0
    rows = _read_csv(out)
    assert list(rows[0]) == list(tables.TABLE1_COLUMNS)
    # The paper's columns, in the paper's order, lead the table.
    assert list(rows[0])[:10] == ["architecture", "scale", "dataset", "params", "original", "best", "average",
                                  "minimum", "median", "std"]
    r18, vit = rows
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
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob(".*.tmp"))       # atomic writes leave no temp files


def test_table1_unknown_label_leaves_paper_columns_empty_and_plot_path(tmp_path):
    a = _write_eval(tmp_path / "tiny_net.json", [50.0], [40.0, 60.0], params=2_864, dataset="digits",
                    substitute_for=None)
    out, plot = tmp_path / "t.csv", tmp_path / "figs" / "t.png"
    assert table_main(["table1", "--metrics", str(a), "--paper", str(PAPER_TABLE1), "--scale", "smoke",
                        "--out", str(out), "--plot", str(plot)]) == 0
    (row,) = _read_csv(out)
    assert row["architecture"] == "tiny_net"          # default label = file stem
    assert row["dataset"] == "scikit-learn digits"     # no substitute note for a non-substitute dataset
    assert row["params"] == "0.002864"
    assert all(row[f"paper_{c}"] == "" for c in tables.TABLE1_PAPER_COLUMNS)
    assert plot.is_file()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="rpg-zoo/1"), "not an evaluation file"),
    (lambda d: d.pop("generated"), "missing key 'generated'"),
    (lambda d: d["original"].update(n=7), "original.n=7"),
    (lambda d: d["generated"]["accuracies"].append(101.0), "percentages"),
    (lambda d: d["generated"].update(best=float("nan")), "finite number"),
    (lambda d: d.update(params=0), "params must be a positive integer"),
])
def test_bad_eval_json_is_one_error_line(tmp_path, capsys, mutate, message):
    path = _write_eval(tmp_path / "m.json", [90.0, 91.0], [89.0, 90.0])
    d = json.loads(path.read_text())
    mutate(d)
    path.write_text(json.dumps(d))
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
    bad.write_text("architecture,original\nResNet-18,70.0\n")
    out = str(tmp_path / "t.csv")
    assert table_main(["table1", "--metrics", str(a), "--paper", str(bad), "--out", out]) == 2
    assert "missing column(s) params_m" in capsys.readouterr().err


def test_paper_table1_csv_matches_the_paper():
    """resources/paper/table1.csv holds the seven columns of paper Table 1 (typed from the PDF)."""
    rows = tables.read_paper_table(PAPER_TABLE1, tables.TABLE1_PAPER_COLUMNS)
    assert list(rows) == ["ResNet-18", "ResNet-50", "ViT-Tiny", "ViT-Small", "ViT-Base",
                          "ConvNeXt-A", "ConvNeXt-L"]
    assert [rows[a]["params_m"] for a in rows] == ["11.7", "25.6", "5.7", "22.1", "86.6", "3.7", "197.8"]
    assert [rows[a]["original"] for a in rows] == ["70.0", "79.8", "74.9", "81.4", "84.4", "75.2", "85.8"]
    for r in rows.values():   # min <= median <= best and min <= average <= best in every printed row
        lo, med, avg, hi = (float(r[k]) for k in ("minimum", "median", "average", "best"))
        assert lo <= med <= hi and lo <= avg <= hi
