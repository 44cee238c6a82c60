"""Evaluation: summaries, IoU similarity, the normalized-space noise baseline, the rpg-eval/1 JSON,
bad inputs."""

from __future__ import annotations

import math
import shutil
import time

import pytest
import torch

from rpg import formats
from rpg.cli.evaluate import main
from rpg.errors import RPGInputError
from rpg.evaluation.evaluate import (
    Evaluator,
    add_normalized_noise,
    evaluate_zoo,
    iou_matrix,
    layer_stats,
    summarize,
)
from rpg.io import load_state_dict, read_json, save_state_dict, write_json
from rpg.zoos import recipes as zoos
from rpg.zoos.architectures import build_model
from rpg.zoos.collection import collect
from rpg.zoos.recipes import PhaseConfig, SaveConfig, ZooConfig

TORCH_THREADS = 1  # small models: one thread avoids OpenMP oversubscription (see conftest.py)


def quiet(*a, **k):
    pass


@pytest.fixture(scope="module")
def digits_zoo(tmp_path_factory):
    """A 4-checkpoint CNN(s) zoo on sklearn digits (about a second to collect)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = ZooConfig(
        name="test/eval",
        architecture={"name": "cnn_s", "kwargs": {"in_chans": 1, "num_classes": 10}},
        dataset={"name": "digits"},
        num_checkpoints=4,
        batch_size=64,
        phases=[PhaseConfig(epochs=2, lr=1e-2, lr_end=1e-3)],
        save=SaveConfig(lr=1e-3, every=2),
    )
    (folder,) = collect(cfg, tmp_path_factory.mktemp("zoo") / "z", device="cpu", progress=False, log=quiet)
    torch.set_num_threads(n)
    return folder


def make_generated(zoo, dest, picks=(0, 3), tasks=None):
    """A generated set written by the real writer (rpg-generated/1), holding copies of some originals."""
    m = read_json(zoo / "manifest.json")
    models = [
        formats.GeneratedModel(
            load_state_dict(zoo / m["checkpoints"][k]["file"]), k, None if tasks is None else tasks[i]
        )
        for i, k in enumerate(picks)
    ]
    info = {k: m.get(k) for k in ("architecture", "dataset", "substitute_for")}
    formats.write_generated(dest, models, {"method": "test", "run": "test", "seed": 0, **info})
    return dest


# ---- pure functions ---------------------------------------------------------------------------------


def test_summarize():
    s = summarize([90.0, 91.0, 92.0, 93.0])
    assert s == {
        "accuracies": [90.0, 91.0, 92.0, 93.0],
        "best": 93.0,
        "mean": 91.5,
        "min": 90.0,
        "median": 91.5,
        "std": round(math.sqrt(1.25), 2),
        "n": 4,
    }  # population std
    assert summarize([88.123456])["accuracies"] == [88.12]
    assert summarize([])["n"] == 0


def test_iou_matrix():
    a = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    b = torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    iou = iou_matrix(a, b)
    torch.testing.assert_close(iou, torch.tensor([[1 / 3, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64))


def test_noise_in_normalized_space():
    g = torch.Generator().manual_seed(0)
    sds = [
        {
            "w": torch.randn(4000, generator=g) * 3 + 1,
            "bn.running_var": torch.rand(64, generator=g) + 0.5,
            "bn.num_batches_tracked": torch.tensor(7),
            "scalar": torch.tensor([2.0]),
        }
        for _ in range(3)
    ]
    st = layer_stats(sds)
    assert set(st) == {"w", "bn.running_var"}  # only what RPG generates
    assert st["w"]["std"] == pytest.approx(3.0, rel=0.05)
    assert "pre_mean" in st["bn.running_var"]
    same = add_normalized_noise(sds[0], st, 0.0, torch.Generator().manual_seed(1))
    for k in sds[0]:
        torch.testing.assert_close(same[k], sds[0][k], atol=1e-5, rtol=1e-5)
    noised = add_normalized_noise(sds[0], st, 0.1, torch.Generator().manual_seed(1))
    # noise of std level * layer std in weight space
    assert float((noised["w"] - sds[0]["w"]).std()) == pytest.approx(0.1 * st["w"]["std"], rel=0.1)
    assert bool((noised["bn.running_var"] > 0).all())
    assert torch.equal(noised["bn.num_batches_tracked"], sds[0]["bn.num_batches_tracked"])
    assert torch.equal(noised["scalar"], sds[0]["scalar"])


# ---- evaluating a zoo -------------------------------------------------------------------------------


def test_evaluate_zoo_and_generated(digits_zoo, tmp_path):
    gen = make_generated(digits_zoo, tmp_path / "gen", picks=(0, 3))
    res = evaluate_zoo(
        digits_zoo,
        gen,
        with_similarity=True,
        device="cpu",
        noise_levels=(0.01, 1.0),
        noise_repeats=2,
        progress=False,
    )
    m = read_json(digits_zoo / "manifest.json")
    assert res["format"] == "rpg-eval/1" and res["dataset"] == "digits" and res["split"] == "test"
    assert (
        res["architecture"] == m["architecture"] and res["params"] == 2464 and res["substitute_for"] is None
    )
    # the collection-time accuracies (fractions) match the evaluation (percent)
    assert res["original"]["accuracies"] == [round(100 * c["accuracy"], 2) for c in m["checkpoints"]]
    assert res["original"]["n"] == 4 and res["generated"]["n"] == 2
    assert res["generated"]["accuracies"] == [
        res["original"]["accuracies"][0],
        res["original"]["accuracies"][3],
    ]
    sim = res["similarity"]
    # copies of originals are their own nearest neighbours, with IoU 1
    assert [g["max_iou"] for g in sim["generated"]] == [1.0, 1.0]
    assert [g["nearest_original"] for g in sim["generated"]] == [
        "ckpt_0000.safetensors",
        "ckpt_0003.safetensors",
    ]
    assert 0 < sim["original_original_mean_iou"] <= 1
    levels = sim["noise"]["levels"]
    assert [lv["level"] for lv in levels] == [0.01, 1.0] and all(len(lv["accuracies"]) == 2 for lv in levels)
    # tiny noise keeps the model, huge noise destroys it (paper Tab. 16)
    assert levels[0]["mean_max_iou"] > 0.8 and levels[1]["accuracy_decline"] > 30
    assert levels[1]["mean_max_iou"] < levels[0]["mean_max_iou"]


def test_cli_writes_eval_json(digits_zoo, tmp_path, capsys):
    gen = make_generated(digits_zoo, tmp_path / "gen", picks=(1,))
    out = tmp_path / "m.json"
    assert (
        main(
            [
                "--zoo",
                str(digits_zoo),
                "--generated",
                str(gen),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--threads",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    res = read_json(out)
    assert res["similarity"] is None and res["generated"]["n"] == 1
    assert set(res["original"]) == {"accuracies", "best", "mean", "min", "median", "std", "n"}
    assert "original  n=4" in capsys.readouterr().out
    # a folder of bare weight files (no manifest) and a single file are accepted too
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(gen / "generated_000.safetensors", bare / "a.safetensors")
    assert evaluate_zoo(digits_zoo, bare, device="cpu", progress=False)["generated"]["n"] == 1
    assert (
        evaluate_zoo(digits_zoo, bare / "a.safetensors", device="cpu", progress=False)["generated"]["n"] == 1
    )


def test_bad_inputs(digits_zoo, tmp_path, capsys):
    gen = make_generated(digits_zoo, tmp_path / "gen", picks=(0,))
    # corrupt checkpoint file
    (gen / "generated_000.safetensors").write_bytes(b"\x00garbage")
    assert (
        main(
            [
                "--zoo",
                str(digits_zoo),
                "--generated",
                str(gen),
                "--out",
                str(tmp_path / "m.json"),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "generated_000.safetensors" in err and err.count("\n") == 1
    assert not (tmp_path / "m.json").exists()
    # weights of another architecture
    save_state_dict(
        gen / "generated_000.safetensors", build_model({"name": "cnn_m", "kwargs": {}}).state_dict()
    )
    with pytest.raises(RPGInputError, match=r"generated_000\.safetensors: weights do not fit.*conv1\.weight"):
        evaluate_zoo(digits_zoo, gen, device="cpu", progress=False)
    # missing zoo / manifest
    with pytest.raises(RPGInputError, match="zoo folder not found"):
        evaluate_zoo(tmp_path / "nope", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RPGInputError, match="manifest.json: file not found"):
        evaluate_zoo(tmp_path / "empty", device="cpu")
    # a generated manifest for another architecture
    m = read_json(gen / "manifest.json")
    m["architecture"] = {"name": "cnn_m", "kwargs": {}}
    write_json(gen / "manifest.json", m)
    with pytest.raises(RPGInputError, match="differs from the zoo"):
        evaluate_zoo(digits_zoo, gen, device="cpu")
    # bad CLI values
    assert main(["--zoo", str(digits_zoo), "--out", str(tmp_path / "x.json"), "--noise-levels", "a,b"]) == 2
    assert main(["--zoo", str(digits_zoo), "--out", str(tmp_path / "x.json"), "--set", "lr=3"]) == 2
    capsys.readouterr()


def test_missing_dataset_path(digits_zoo, tmp_path):
    zoo = tmp_path / "zoo"
    shutil.copytree(digits_zoo, zoo)
    m = read_json(zoo / "manifest.json")
    m["dataset"] = {"name": "fashion_mnist"}
    write_json(zoo / "manifest.json", m)
    from rpg.zoos.datasets import DataConfig

    with pytest.raises(RPGInputError, match="^fashion_mnist_root: .*dataset-fashion-mnist"):
        evaluate_zoo(zoo, data_cfg=DataConfig(fashion_mnist_root=str(tmp_path / "no_fm")), device="cpu")


def test_task_zoo_evaluation(tmp_path):
    cfg = ZooConfig(
        name="test/tasks",
        architecture={"name": "cnn_s", "kwargs": {"in_chans": 1, "num_classes": 2}},
        dataset={"name": "digits"},
        kind="tasks",
        num_seen_tasks=1,
        unseen_tasks=[314, 482],
        num_checkpoints=2,
        batch_size=64,
        phases=[PhaseConfig(epochs=1, lr=1e-2)],
        save=SaveConfig(lr=1e-3, every=1),
        collect_unseen=True,
    )
    _, unseen = collect(cfg, tmp_path / "z", device="cpu", progress=False, log=quiet)
    bits = [zoos.task_bits(314), zoos.task_bits(482)]
    gen = make_generated(unseen, tmp_path / "gen", picks=(0, 2), tasks=bits)
    res = evaluate_zoo(unseen, gen, with_similarity=True, device="cpu", noise_levels=(), progress=False)
    assert set(res["per_task"]) == {"0100111010", "0111100010"}
    assert (
        res["per_task"]["0100111010"]["original"]["n"] == 2
        and res["per_task"]["0100111010"]["generated"]["n"] == 1
    )
    # similarity only among models of the same task
    assert [g["nearest_original"] for g in res["similarity"]["generated"]] == [
        "task0314_ckpt00.safetensors",
        "task0482_ckpt00.safetensors",
    ]
    # a generated file without a task vector cannot be evaluated on a task zoo
    m = read_json(gen / "manifest.json")
    m["files"][0]["task"] = None
    write_json(gen / "manifest.json", m)
    with pytest.raises(RPGInputError, match="needs a 'task'"):
        evaluate_zoo(unseen, gen, device="cpu")
    m["files"][0]["task"] = [1] * 10
    write_json(gen / "manifest.json", m)
    with pytest.raises(RPGInputError, match="task id 1023"):
        evaluate_zoo(unseen, gen, device="cpu")


# ---- Fashion-MNIST (fails instead of skipping on CI when the data is missing) -----------------------


def test_fashion_mnist_mini_evaluation_speed():
    from test_datasets import require_fashion_mnist

    require_fashion_mnist()
    cfg = zoos.get_zoo("mini/resnet18")
    manifest = {"architecture": cfg.architecture, "dataset": cfg.dataset, "config": cfg.to_dict()}
    ev = Evaluator(manifest, device="cpu")
    assert len(ev.data.test) == 10000
    sd = build_model(cfg.architecture).state_dict()
    t = time.time()
    wrong = ev.wrong(sd, "random init")
    elapsed = time.time() - t
    assert wrong.shape == (10000,)
    assert 50 < 100 * float(wrong.float().mean())  # an untrained model is mostly wrong
    assert elapsed < 20  # generous: 10 such models must take < 20 s unloaded
