"""Training on real (tiny) zoos written by `rpg.zoos.collection`: the task-conditioned path end to end
(train -> generate -> evaluate) and the periodic evaluation hook."""

import json
import subprocess
import sys

import pytest
import torch
from test_collect import tiny_cfg
from test_core import FAST, fast_cfg

from rpg import io
from rpg.evaluation import make_eval_fn
from rpg.generator.training import train
from rpg.zoos.collection import collect
from rpg.zoos.recipes import PhaseConfig, SaveConfig, task_bits

TORCH_THREADS = 1


def quiet(*a, **k):
    pass


def rpg_cli(*args):
    return subprocess.run([sys.executable, "-m", "rpg", *args], capture_output=True, text=True)


@pytest.fixture
def task_zoo(tmp_path):
    """Two seen binary tasks, two checkpoints each, written by the real zoo writer."""
    cfg = tiny_cfg(kind="tasks", architecture={"name": "cnn_s", "kwargs": {"in_chans": 1, "num_classes": 2}},
                   num_seen_tasks=2, unseen_tasks=[314], num_checkpoints=2, save=SaveConfig(lr=1e-3, every=1),
                   phases=[PhaseConfig(epochs=1, lr=1e-2)])
    seen, _unseen = collect(cfg, tmp_path / "zoo", device="cpu", progress=False, log=quiet)
    return seen, cfg.seen_tasks()


def test_task_conditioned_train_generate_evaluate(task_zoo, tmp_path):
    seen, task_ids = task_zoo
    sets = {**FAST, "condition.task": "gated", "condition.task_hidden": "16"}
    args = [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]
    run, gen, metrics = tmp_path / "run", tmp_path / "gen", tmp_path / "metrics.json"
    r = rpg_cli("train", "--checkpoints", str(seen), "--out", str(run), "--preset", "tiny", "--device", "cpu",
                "--quiet", *args)
    assert r.returncode == 0, r.stderr
    sd = io.load_state_dict(run / "generator.safetensors")
    assert not [k for k in sd if k.startswith("inputs.") and ("permutation" in k or k == "inputs.bias")]
    bits = task_bits(task_ids[0])
    r = rpg_cli("generate", "--run", str(run), "--out", str(gen), "--num", "2", "--seed", "0",
                "--task", "".join(map(str, bits)), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    man = io.read_json(gen / "manifest.json")
    assert [f["task"] for f in man["files"]] == [bits, bits]          # rpg-generated/1: a list of 0/1 ints
    r = rpg_cli("evaluate", "--zoo", str(seen), "--generated", str(gen), "--out", str(metrics), "--device", "cpu",
                "--no-progress")
    assert r.returncode == 0, r.stderr
    m = json.loads(metrics.read_text())
    mine = m["per_task"]["".join(map(str, bits))]["generated"]        # scored under its own task's labels
    assert mine["n"] == 2 and all(0.0 <= a <= 100.0 for a in mine["accuracies"])


def test_eval_hook_logs_metrics(tmp_path):
    (zoo,) = collect(tiny_cfg(num_checkpoints=3, save=SaveConfig(lr=1e-3, every=1),
                              phases=[PhaseConfig(epochs=1, lr=1e-2)]), tmp_path / "zoo", device="cpu",
                     progress=False, log=quiet)
    cfg = fast_cfg(**{"train.eval_every": "3"})
    calls = []
    real = make_eval_fn(zoo, "cpu")

    def eval_fn(state_dicts):
        calls.append(len(state_dicts))
        return real(state_dicts)
    train(cfg, zoo, tmp_path / "run", eval_fn=eval_fn, quiet=True)
    entries = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    evals = [e for e in entries if "eval" in e]
    assert [e["step"] for e in evals] == [3, 6] and calls == [2, 2]
    for e in evals:
        assert 0.0 <= e["eval"]["acc_min"] <= e["eval"]["acc_mean"] <= e["eval"]["acc_max"] <= 100.0
    assert torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)["step"] == 6
