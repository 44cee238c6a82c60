"""Sampling tables (rpg.tables.sampling: Tab. 7, Tab. 13, Tab. 16, Fig. 9) from rpg-eval/1 files written by the
real writer (formats.write_eval with evaluate.summarize), and the paper CSVs they join."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rpg import formats, memory
from rpg.cli.table import main as table_main
from rpg.evaluation.evaluate import summarize
from rpg.tables import sampling
from rpg.tables.registry import TABLES

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "resources" / "paper"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIB = 2 ** 20


def write_eval(path: Path, generated: list[float], original: list[float] | None = None, *,
               generation: dict | None = None, similarity: dict | None = None, params: int = 86_000) -> Path:
    formats.write_eval(path, {
        "domain": "classification", "metric": "top-1 accuracy", "architecture": {"name": "vit_base", "kwargs": {}},
        "params": params, "dataset": "fashion_mnist", "substitute_for": "ImageNet-1K", "split": "test",
        "generation": generation, "original": summarize(original or [86.0, 86.0]),
        "generated": summarize(generated), "similarity": similarity,
    })
    return path


def cost(per_model_s: float, peak_mib: float, models: int = 10) -> dict:
    return {"sample_s": per_model_s * models, "per_model_s": per_model_s, "models": models,
            "peak_memory_bytes": int(peak_mib * MIB), "memory": memory.RSS_DELTA, "device": "cpu",
            "machine": "Test CPU, 2 cores"}


def build(tmp_path: Path, builder: str, files: list[Path], labels: list[str], paper: str | None = None,
          groups: list[str] | None = None) -> pd.DataFrame:
    out = tmp_path / f"{builder}.csv"
    argv = [builder, "--metrics", *map(str, files), "--labels", *labels, "--out", str(out)]
    if groups:
        argv += ["--groups", *groups]
    if paper:
        argv += ["--paper", str(PAPER / paper)]
    assert table_main(argv) == 0
    assert out.with_suffix(".png").read_bytes()[:8] == PNG_MAGIC
    return pd.read_csv(out, keep_default_na=False)


def test_table7_time_ratios_to_ddim60_accuracy_and_paper(tmp_path):
    steps = {5: (0.1, 10.0, 84.0), 60: (0.4, 10.0, 86.0), 200: (1.2, 12.0, 86.2)}
    files, labels = [], []
    for n, (t, mem, acc) in steps.items():
        files.append(write_eval(tmp_path / f"vb{n}.json", [acc - 0.1, acc + 0.1],
                                generation={"sampler": "ddim", "steps": n, "mode": "partial", "cost": cost(t, mem)}))
        labels.append(f"ViT-Base, DDIM-{n}")
    df = build(tmp_path, "table7", files, labels, "table7.csv", ["ViT-Base"] * len(files)).set_index("label")
    assert list(df["steps"]) == [5, 60, 200] and set(df["model"]) == {"ViT-Base"}
    # ratios to the same generator's DDIM-60 row, ours and the paper's (0.5 / 0.8 min, 1.8 / 0.8 min)
    assert df.loc["ViT-Base, DDIM-5", "time_ratio"] == pytest.approx(0.1 / 0.4, abs=1e-3)
    assert df.loc["ViT-Base, DDIM-200", "time_ratio"] == pytest.approx(3.0, abs=1e-3)
    assert df.loc["ViT-Base, DDIM-200", "memory_ratio"] == pytest.approx(1.2, abs=1e-3)
    assert df.loc["ViT-Base, DDIM-5", "paper_time_ratio"] == pytest.approx(0.5 / 0.8, abs=1e-3)
    assert df.loc["ViT-Base, DDIM-200", "paper_time_ratio"] == pytest.approx(1.8 / 0.8, abs=1e-3)
    assert df.loc["ViT-Base, DDIM-5", "paper_accuracy"] == pytest.approx(81.1)
    assert df.loc["ViT-Base, DDIM-5", "accuracy_mean"] == pytest.approx(84.0)
    assert df.loc["ViT-Base, DDIM-5", "gap"] == pytest.approx(-2.0)
    assert df.loc["ViT-Base, DDIM-60", "peak_memory_mib"] == pytest.approx(10.0)
    assert "Fashion-MNIST (substitute for ImageNet-1K)" in df.loc["ViT-Base, DDIM-5", "mini_substitute"]
    assert set(df["machine"]) == {"Test CPU, 2 cores"}


def test_cost_missing_is_one_error_line_naming_the_row(tmp_path, capsys):
    old = write_eval(tmp_path / "old.json", [86.0], generation={"sampler": "ddim", "steps": 60})
    out = tmp_path / "t.csv"
    assert table_main(["table7", "--metrics", str(old), "--labels", "ViT-Base, DDIM-60", "--groups", "ViT-Base",
                       "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'ViT-Base, DDIM-60'" in err[0] and "generation.cost" in err[0]
    assert not out.exists()


def test_table13_modes_as_ratios_to_fully_parallel(tmp_path):
    modes = {"sequential": (9.0, 0.5, None), "partial": (1.2, 2.0, 32), "full": (1.0, 8.0, None)}
    files, labels = [], []
    for mode, (t, mem, chunk) in modes.items():
        files.append(write_eval(tmp_path / f"{mode}.json", [86.0], generation={
            "sampler": "ddim", "steps": 100, "mode": mode, "chunk_size": chunk or 256, "cost": cost(t, mem, 1)}))
        labels.append(f"ResNet-18, {sampling.MODE_NAMES[mode]}")
    df = build(tmp_path, "table13", files, labels, "table13.csv", ["ResNet-18"] * len(files)).set_index("label")
    seq, part = df.loc["ResNet-18, sequential"], df.loc["ResNet-18, partially parallel"]
    assert seq["time_vs_full"] == pytest.approx(9.0) and seq["memory_vs_full"] == pytest.approx(0.5 / 8, abs=1e-3)
    assert part["memory_vs_full"] == pytest.approx(0.25) and str(part["chunk_size"]) == "32"
    assert seq["chunk_size"] == ""                      # a chunk only means something in partial mode
    # the paper's ratios from its H100 minutes and GB: 18.6 / 1.7 min, 6.3 / 30.8 GB
    assert seq["paper_time_vs_full"] == pytest.approx(18.6 / 1.7, abs=1e-3)
    assert seq["paper_memory_vs_full"] == pytest.approx(6.3 / 30.8, abs=1e-3)
    assert part["paper_time_min"] == pytest.approx(1.8)
    assert "chunk 32 tokens instead of 256" in part["mini_substitute"]


def similarity_block(gen: list[tuple[float, float]], levels: dict[float, tuple[float, float]]) -> dict:
    """The `similarity` block `rpg evaluate --similarity` writes: generated (accuracy, max IoU) and, per noise
    level, (mean accuracy, mean max IoU) of 2 noised copies; decline against an original mean of 86.0."""
    return {
        "original_max_iou": [0.8, 0.8],
        "generated": [{"file": f"generated_{i:03d}.safetensors", "accuracy": a, "max_iou": iou,
                       "nearest_original": "ckpt_000.safetensors"} for i, (a, iou) in enumerate(gen)],
        "generated_max_iou_mean": sum(iou for _, iou in gen) / len(gen),
        "noise": {"space": "normalized", "repeats": 2, "levels": [
            {"level": lv, "sources": ["a", "b"], "accuracies": [acc, acc], "max_iou": [iou, iou],
             "mean_accuracy": acc, "accuracy_decline": round(86.0 - acc, 2), "mean_max_iou": iou}
            for lv, (acc, iou) in levels.items()]},
    }


# noise of weight 0.01 keeps accuracy and similarity, 0.1 costs a point, 1.0 destroys the model
NOISE = {0.01: (86.0, 0.95), 0.05: (85.5, 0.85), 0.10: (85.0, 0.75), 1.00: (10.0, 0.05)}


def test_table16_and_fig9_claim_holds_for_dissimilar_generated_models(tmp_path):
    # generated at 85.5 % with IoU 0.6 / 0.7: noise of equal accuracy has IoU 0.85 -> not noisy copies
    novel = write_eval(tmp_path / "novel.json", [85.5, 85.5], similarity=similarity_block(
        [(85.5, 0.6), (85.5, 0.7)], NOISE), params=3_700_000)
    # exact copies of originals (IoU 1) at the originals' accuracy: more similar than any noise
    copies = write_eval(tmp_path / "copies.json", [86.0, 86.0], similarity=similarity_block(
        [(86.0, 1.0), (86.0, 1.0)], {**NOISE, 1.00: (40.0, 0.05)}), params=11_700_000)
    labels = ["ConvNeXt-A", "ResNet-18"]
    t16 = build(tmp_path, "table16", [novel, copies], labels, "table16.csv").set_index("label")
    a, r = t16.loc["ConvNeXt-A"], t16.loc["ResNet-18"]
    assert (a["ours"], a["noise_0.01"], a["noise_0.10"], a["noise_1.00"]) == pytest.approx((0.5, 0.0, 1.0, 76.0))
    assert r["noise_1.00"] == pytest.approx(46.0)
    # the row that loses more under noise is the more sensitive one (more plus signs)
    assert (a["sensitivity"], r["sensitivity"]) == ("++", "+")
    assert (a["not_noisy_copy"], r["not_noisy_copy"]) == ("holds", "does not hold")
    assert a["noise_iou_at_equal_accuracy"] == pytest.approx(0.85)
    assert (a["paper_ours"], a["paper_noise_1.00"], a["paper_sensitivity"]) == (pytest.approx(0.85),
                                                                                pytest.approx(62.83), "+++")
    f9 = build(tmp_path, "fig9", [novel, copies], labels).set_index("label")
    assert list(f9["less_similar_than_noise"]) == ["2/2", "0/2"]
    assert list(f9["not_noisy_copy"]) == ["holds", "does not hold"]
    assert f9.loc["ConvNeXt-A", "generated_max_iou_mean"] == pytest.approx(0.65)
    assert f9.loc["ConvNeXt-A", "original_nearest_iou_mean"] == pytest.approx(0.8)


def test_claim_check_interpolates_noise_between_levels(tmp_path):
    # at 85.25 % the noise curve is half-way between 0.05 (IoU 0.85) and 0.10 (IoU 0.75): 0.80
    row = sampling.Row("X", formats.read_eval(write_eval(tmp_path / "x.json", [85.25, 85.25], similarity=(
        similarity_block([(85.25, 0.79), (85.25, 0.81)], NOISE)))))
    check = sampling.claim_check(row)
    assert check["noise_iou_at_equal_accuracy"] == pytest.approx(0.80)
    assert (check["less_similar_than_noise"], check["not_noisy_copy"]) == ("1/2", "does not hold")


def test_table16_needs_the_paper_noise_levels(tmp_path, capsys):
    sim = similarity_block([(85.5, 0.6)], {0.01: (86.0, 0.95), 0.05: (85.5, 0.85)})
    path = write_eval(tmp_path / "x.json", [85.5], similarity=sim)
    assert table_main(["table16", "--metrics", str(path), "--labels", "ViT-Base", "--out",
                       str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no level 0.1" in err[0] and "'ViT-Base'" in err[0]
    no_sim = write_eval(tmp_path / "y.json", [85.5])
    assert table_main(["fig9", "--metrics", str(no_sim), "--out", str(tmp_path / "f.csv")]) == 2
    assert "--similarity" in capsys.readouterr().err


def test_paper_csvs_join_every_configured_row():
    """Every row label of the configured tables has the paper's numbers (the CSVs are keyed by label)."""
    import yaml
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    rows = {**cfg["experiments"], **cfg["variants"]}
    for table, builder in (("table7", TABLES["table7"]), ("table13", TABLES["table13"]),
                           ("table16", TABLES["table16"])):
        spec = cfg["tables"][table]
        assert spec["builder"] == table and spec["paper"] == f"resources/paper/{table}.csv"
        paper = pd.read_csv(REPO / spec["paper"], dtype=str, keep_default_na=False).set_index("label")
        labels = [rows[r]["label"] for r in spec["rows"]]
        assert sorted(labels) == sorted(paper.index)
        assert all(paper.loc[lab, c] != "" for lab in labels for c in builder.paper_columns)
