"""Ablation tables (paper Tab. 4a, 4b, 5, 6; Fig. 4) and the training cost they read.

Every row is an rpg-eval/1 file written with the real writer (`formats.write_eval` over `summarize`) and a run folder
as `rpg train` leaves it: config.json of a real preset + overrides, meta.json with the `training` block of
`training.training_cost`, and a generator.safetensors of a real `RPG` model of that config.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from rpg import formats, io
from rpg.cli.table import main as table_main
from rpg.evaluation.evaluate import summarize
from rpg.generator.config import preset_config
from rpg.generator.model import RPG
from rpg.generator.training import state_bytes, train, training_cost
from rpg.memory import PeakMemory
from rpg.tables import ablations
from rpg.tables import builders as tables

TORCH_THREADS = 1
REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "resources" / "paper"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = {"recurrent.d_model": "[32,32]", "denoiser.channels": "[1,8,1]"}   # quick to build in a test
LAYOUT = (torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]))               # 3 tokens: layer 0 (2), layer 1 (1)


def write_eval(path: Path, generated: list[float], original: list[float] = (80.0, 81.0), classes: int = 10) -> Path:
    formats.write_eval(path, {
        "domain": "classification", "metric": "top-1 accuracy",
        "architecture": {"name": "timm:vit_tiny_patch16_224", "kwargs": {"num_classes": classes}},
        "params": 11_130, "dataset": "fashion_mnist", "substitute_for": "ImageNet-1K", "split": "test",
        "generation": None, "original": summarize(list(original)), "generated": summarize(generated),
        "similarity": None})
    return path


def write_run(folder: Path, overrides: dict[str, str], wall_s: float = 10.0, steps: int = 100,
              peak: int = 50 << 20, num_tokens: int = 3, num_params: int = 600) -> Path:
    """A run folder as training leaves it (config, meta with the training block, the generator)."""
    cfg = preset_config("mini", {**SMALL, **overrides})
    model = RPG(cfg, *LAYOUT, num_permutations=2)
    opt = torch.optim.AdamW(model.parameters())
    memory = {"measure": "peak RSS delta (test)", "baseline_bytes": 0, "peak_bytes": peak, "delta_bytes": peak}
    meta = {"num_tokens": num_tokens, "num_params": num_params,
            "training": training_cost(wall_s, steps, 0, memory, state_bytes(model, opt))}
    io.write_json(folder / "config.json", cfg.to_dict())
    io.write_json(folder / "meta.json", meta)
    io.save_state_dict(folder / "generator.safetensors", model.state_dict())
    return folder


def build(tmp_path: Path, builder: str, rows: list[tuple[str, list[float], dict, dict]], paper: str | None,
          groups: list[str] | None = None):
    """rows: (label, generated accuracies, config overrides, write_run kwargs) -> (DataFrame as read back, inputs)."""
    metrics, runs = [], []
    for i, (_, accs, overrides, kw) in enumerate(rows):
        metrics.append(write_eval(tmp_path / f"m{i}.json", accs))
        runs.append(write_run(tmp_path / f"run{i}", overrides, **kw))
    out = tmp_path / f"{builder}.csv"
    args = [builder, "--metrics", *map(str, metrics), "--labels", *(r[0] for r in rows), "--runs", *map(str, runs),
            "--scale", "smoke", "--out", str(out)] + (["--groups", *groups] if groups else [])
    assert table_main(args + (["--paper", str(PAPER / paper)] if paper else [])) == 0
    assert out.with_suffix(".png").read_bytes()[:8] == PNG_MAGIC
    inputs = tables.load_inputs(builder, metrics, [r[0] for r in rows], None, "smoke", runs=runs, groups=groups)
    return pd.read_csv(out, keep_default_na=False, dtype=str), inputs


def test_table4a_defines_fail_as_a_number(tmp_path):
    chance = 100 / 10
    limit = ablations.FAIL_FACTOR * chance
    df, inputs = build(tmp_path, "table4a", [
        ("with", [79.0, 80.0, 81.0], {}, {}),
        ("without", [10.0, limit - 1, limit + 5], {"recurrent.kind": "none"}, {}),
    ], "table4a.csv")
    # the zoo's own checkpoints lead, as the paper's "original baseline" row
    assert list(df["setting"]) == ["original baseline", "+ recurrent model", "- recurrent model"]
    orig = inputs.rows[0].eval["original"]
    assert float(df.loc[0, "average"]) == orig["mean"] and df.loc[0, "paper_best"] == "75.2"
    assert list(df["recurrent"]) == ["", "mamba", "none"]
    # fail = the generated mean below FAIL_FACTOR x chance; how many models fall below is reported too
    assert float(df.loc[1, "fail_below"]) == limit
    assert list(df["fails"][1:]) == ["False", "True"] and list(df["n_below"][1:]) == ["0", "2"]
    assert df.loc[2, "paper_average"] == "fail" and df.loc[1, "paper_average"] == "75.3"
    assert "Fashion-MNIST (substitute for ImageNet-1K)" in df.loc[1, "substitute"]


def test_chance_from_dataset_when_the_architecture_does_not_say():
    assert ablations.chance_percent({"architecture": {"kwargs": {}}, "dataset": "imagenet"}) == 100 / 1000
    assert ablations.chance_percent({"architecture": None, "dataset": "unknown"}) is None


def test_table4b_reports_the_learnable_embeddings_stored_size(tmp_path):
    df, inputs = build(tmp_path, "table4b", [
        ("learnable", [80.0, 81.0], {"condition.position": "learnable"}, {}),
        ("1d", [79.0, 80.0], {"condition.position": "1d"}, {}),
        ("2d", [79.5, 80.5], {}, {}),
    ], "table4b.csv")
    assert list(df["setting"]) == ["learnable", "encode by index", "encode by layer"]
    assert list(df["paper_best"]) == ["75.5", "75.4", "75.4"]
    # the learnable embedding is stored: one d_model vector per token; the fixed ones are rebuilt on load
    d_model, tokens = inputs.rows[0].run["config"]["recurrent"]["d_model"][0], len(LAYOUT[0])
    assert [int(x) for x in df["pe_params"]] == [tokens * d_model, 0, 0]
    sizes = [int(x) for x in df["generator_params"]]
    assert sizes[0] - sizes[2] == tokens * d_model and sizes[1] == sizes[2]
    assert float(df.loc[0, "generator_mib"]) > float(df.loc[2, "generator_mib"])


def test_fig4_tokens_padding_and_training_time_ratio(tmp_path):
    df, _ = build(tmp_path, "fig4", [
        ("flatten", [78.0], {"tokenizer.strategy": "flatten"}, {"wall_s": 30.0, "num_tokens": 4}),
        ("channel", [77.0], {"tokenizer.strategy": "channel"}, {"wall_s": 60.0, "num_tokens": 9}),
        ("layer", [80.0], {}, {"wall_s": 20.0, "num_tokens": 5}),
    ], "fig4.csv")
    assert list(df["setting"]) == ["direct flatten", "by channel", "ours"]
    assert list(df["position"]) == ["1d", "2d", "2d"]           # flatten pairs with the 1D embedding (auto)
    assert [float(x) for x in df["time_ratio"]] == [1.5, 3.0, 1.0]
    d = preset_config("mini").tokenizer.token_size
    assert float(df.loc[1, "padding_pct"]) == round(100 * (1 - 600 / (9 * d)), 1)
    assert float(df.loc[1, "paper_time_ratio"]) == round(14.2 / 6.2, 2)


def test_table5_compares_cost_to_mamba_at_the_same_width(tmp_path):
    wide = {"recurrent.d_model": "[64,64]"}
    df, inputs = build(tmp_path, "table5", [
        ("LSTM", [80.0], {"recurrent.kind": "lstm"}, {"wall_s": 40.0, "peak": 30 << 20}),
        ("Mamba", [80.5], {}, {"wall_s": 20.0, "peak": 40 << 20}),
        ("LSTM wide", [70.0], {"recurrent.kind": "lstm", **wide}, {"wall_s": 90.0, "peak": 120 << 20}),
        ("Mamba wide", [71.0], wide, {"wall_s": 30.0, "peak": 80 << 20}),
    ], "table5.csv")
    assert list(df["width"]) == ["32", "32", "64", "64"]
    assert [float(x) for x in df["time_ratio"]] == [2.0, 1.0, 3.0, 1.0]
    assert [float(x) for x in df["memory_ratio"]] == [0.75, 1.0, 1.5, 1.0]
    # the exact training state (parameters + gradients + optimizer moments), also as a ratio to Mamba
    state = [float(x) for x in df["state_mib"]]
    assert [float(x) for x in df["state_ratio"]] == [round(state[0] / state[1], 2), 1.0,
                                                     round(state[2] / state[3], 2), 1.0]
    params = [int(x) for x in df["recurrent_params"]]
    assert params[0] == sum(p.numel() for p in torch.nn.LSTM(32, 32, num_layers=2).parameters())
    # the paper's rows join at the first width only; its ratios are to its Mamba row
    assert df.loc[0, "paper_memory_gb"] == "38.1" and df.loc[2, "paper_memory_gb"] == ""
    assert float(df.loc[0, "paper_memory_ratio"]) == round(38.1 / 27.8, 2)
    assert "peak RSS delta" in df.loc[0, "memory_measure"]


def test_table6_one_row_per_model_and_the_smallest_good_token_size(tmp_path):
    rows, groups = [], []
    for model, accs in (("ViT-Tiny", {32: 10.0, 64: 79.5, 128: 80.0}), ("ViT-Base", {32: 10.0, 64: 40.0, 128: 82.0}),
                        ("ViT-Small", {32: 9.0, 64: 12.0, 128: 15.0})):            # every size fails (< 2 x 10%)
        for d, acc in accs.items():
            label = model if d == 64 else f"{model}, d={d}"    # a Table 1 row keeps its plain label
            rows.append((label, [acc], {"tokenizer.token_size": str(d), "recurrent.d_model": f"[{d},{d}]"}, {}))
            groups.append(model)                                   # the model is the row's group, not its label
    paper = tmp_path / "paper6.csv"
    pd.DataFrame({"model": ["ViT-Tiny", "ViT-Base"], "params_m": ["5.7", "86.6"], "1024": ["0.3", "0.1"],
                  "2048": ["70.8", "0.1"], "4096": ["75.2", "84.4"]}).to_csv(paper, index=False)
    df, _ = build(tmp_path, "table6", rows, str(paper), groups)
    assert list(df["model"]) == ["ViT-Tiny", "ViT-Base", "ViT-Small"]
    assert [df.loc[0, c] for c in ("d32", "d64", "d128")] == ["10.0", "79.5", "80.0"]
    # larger model, larger token (within 1 point); a model whose every size fails has none (not its best failure)
    assert list(df["smallest_good_d"]) == ["64", "128", ""]
    assert list(df["fail_below"]) == ["20.0"] * 3                  # 2 x chance (10 classes)
    assert list(df["paper_smallest_good_d"]) == ["4096", "4096", ""]
    factor = ablations.TOKEN_SIZE_FACTOR                                  # ours stand for factor x d
    assert list(df["paper_d_for_smallest_good_d"]) == [str(64 * factor), str(128 * factor), ""]
    assert f"token sizes 32, 64, 128 stand for the paper's {32 * factor}" in df.loc[0, "substitute"]


def test_paper_csvs_have_the_printed_numbers():
    t6 = tables.read_paper_table(PAPER / "table6.csv", "model")
    assert list(t6.loc["ViT-Base"]) == ["86.6", "0.1", "0.1", "0.2", "45.3", "84.4"]
    t5 = tables.read_paper_table(PAPER / "table5.csv", "setting")
    assert list(t5.index) == list(ablations.STRUCTURE.values())[:3]
    for name, keys in (("table4a.csv", [*ablations.RECURRENCE.values(), "original baseline"]),
                       ("table4b.csv", ["learnable", "encode by index", "encode by layer"]),
                       ("fig4.csv", list(ablations.TOKENIZATION.values()))):
        assert set(tables.read_paper_table(PAPER / name, "setting").index) == set(keys)


def test_ablation_builders_need_the_run_folders(tmp_path, capsys):
    m = write_eval(tmp_path / "m.json", [80.0])
    assert table_main(["table5", "--metrics", str(m), "--out", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--runs" in err[0]
    assert table_main(["table5", "--metrics", str(m), "--runs", str(tmp_path / "nope"),
                       "--out", str(tmp_path / "t.csv")]) == 2
    assert table_main(["table5", "--metrics", str(m), "--runs", str(tmp_path), str(tmp_path),
                       "--out", str(tmp_path / "t.csv")]) == 2


# ---- what training records ----------------------------------------------------------------------------------

@pytest.fixture
def tiny_zoo(tmp_path):
    torch.manual_seed(0)
    for i in range(4):
        net = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        io.save_state_dict(tmp_path / "zoo" / f"ckpt_{i}.safetensors", net.state_dict())
    return tmp_path / "zoo"


def test_training_records_time_memory_and_exact_state(tiny_zoo, tmp_path):
    steps = 3
    cfg = preset_config("mini", {**SMALL, "train.steps": str(steps), "train.batch_size": "2",
                                 "train.precision": "fp32"})
    train(cfg, tiny_zoo, tmp_path / "run", quiet=True)
    t = io.read_json(tmp_path / "run" / "meta.json")["training"]
    assert t["steps_timed"] == steps and t["resumed_from"] == 0
    assert t["wall_s"] > 0 and math.isclose(t["s_per_step"], t["wall_s"] / steps, abs_tol=1e-3)  # both rounded
    assert t["memory"]["delta_bytes"] >= 0 and t["memory"]["measure"]
    # fp32 AdamW: a parameter is stored with its gradient and two moments (4 x 4 bytes), plus AdamW's step counter
    # (a scalar tensor per parameter tensor); a parameter no step touched (no gradient) has only itself
    sd = io.load_state_dict(tmp_path / "run" / "generator.safetensors")
    n = sum(v.numel() for v in sd.values())
    assert n * 4 * 3 < t["state_bytes"] <= n * 4 * 4 + 8 * len(sd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS reset is Linux-only")
def test_peak_memory_sees_what_the_body_allocates_and_resets():
    size = 64 << 20
    with PeakMemory("cpu") as mem:
        x = torch.ones(size // 4)          # float32, written: resident
        del x
    assert mem.result()["delta_bytes"] >= size * 0.9 and "VmHWM" in mem.measure
    with PeakMemory("cpu") as again:   # the earlier peak is forgotten
        pass
    assert again.result()["delta_bytes"] < size * 0.5


# ---- Fig. 7: training memory vs token size ------------------------------------------------------------------

def test_memory_point_trains_at_the_token_size_and_reports_what_training_recorded(tiny_zoo, tmp_path):
    from rpg.generator import cost

    small = {"denoiser.channels": "[1,8,1]", "train.batch_size": "2"}
    points = [cost._point(str(tiny_zoo), "mini", small, d, 1, "cpu", 1) for d in (32, 64)]
    assert [p["token_size"] for p in points] == [32, 64] and points[0]["d_model"] == 32
    # the recurrent width follows the token size: Mamba2's parameters grow with it
    assert points[1]["recurrent_params"] > 2 * points[0]["recurrent_params"]
    assert points[1]["state_mib"] > points[0]["state_mib"]
    assert points[0]["num_tokens"] > points[1]["num_tokens"]     # larger tokens, fewer of them
    result = {"device": "cpu", "batch_size": 2, "diffusion_batch": 256, "measure": points[0]["measure"],
              "points": [*points, {"token_size": 128, "d_model": 128, "oom": True}]}
    cost.write_sweep(result, tmp_path / "fig7.json", tmp_path / "fig7.png")
    assert io.read_json(tmp_path / "fig7.json")["points"][2]["oom"] is True
    assert (tmp_path / "fig7.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_memory_cli_measures_each_token_size_in_a_fresh_process(tiny_zoo, tmp_path):
    from rpg.cli.memory import main as memory_main

    out = tmp_path / "fig7.json"
    assert memory_main(["--checkpoints", str(tiny_zoo), "--token-sizes", "64", "32", "--steps", "1",
                        "--set", "train.batch_size=2", "--threads", "1", "--out", str(out)]) == 0
    res = io.read_json(out)
    assert [p["token_size"] for p in res["points"]] == [32, 64] and res["device"] == "cpu"
    assert all(p["peak_delta_bytes"] > 0 for p in res["points"])
    assert out.with_suffix(".png").read_bytes()[:8] == PNG_MAGIC
    assert memory_main(["--checkpoints", str(tiny_zoo), "--token-sizes", "16", "--out", str(out)]) == 2


def test_a_run_trained_before_cost_was_recorded_leaves_its_cost_cells_empty(tmp_path):
    """A Table 1 generator trained by an earlier version has no `training` block: the table still builds."""
    metrics = [write_eval(tmp_path / "m0.json", [80.0]), write_eval(tmp_path / "m1.json", [79.0])]
    runs = [write_run(tmp_path / "run0", {"recurrent.kind": "lstm"}), write_run(tmp_path / "run1", {})]
    meta = io.read_json(runs[1] / "meta.json")
    del meta["training"]
    io.write_json(runs[1] / "meta.json", meta)
    out = tmp_path / "t5.csv"
    assert table_main(["table5", "--metrics", *map(str, metrics), "--runs", *map(str, runs), "--out", str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert df.loc[1, "train_s"] == "" and df.loc[0, "time_ratio"] == "" and df.loc[0, "train_s"] != ""
