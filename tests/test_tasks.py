"""The unseen-task study (paper §4) and the permutation-state table (Tab. 15), at smoke scale.

One real task zoo (CNN(s) on the bundled sklearn digits: pretrained once on the 10 classes, then fine-tuned per binary
task, head first, then everything, focal loss) with 4 seen and 2 unseen tasks; both task-conditioned generators
(gated, whole sequence) and the retrieval reference fitted with `rpg train`, sampled with `rpg generate`, scored by
`evaluate_zoo` and written with the real `formats.write_eval`. The builders run on those files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from rpg import formats, io
from rpg.cli import generate as generate_cli
from rpg.cli import train as train_cli
from rpg.errors import RPGInputError
from rpg.evaluation.evaluate import evaluate_zoo
from rpg.methods import ConditionSpec, RunInfo, expand
from rpg.methods.retrieval import hamming, nearest
from rpg.tables import tasks as T
from rpg.tables.builders import TableInputs, build_table, load_inputs
from rpg.tables.registry import TABLES
from rpg.zoos.collection import collect
from rpg.zoos.datasets import DatasetSpec, load_dataset
from rpg.zoos.recipes import (
    NUM_TASKS,
    PAPER_UNSEEN_TASKS,
    PhaseConfig,
    SaveConfig,
    ZooConfig,
    get_zoo,
    task_bits,
    task_id,
)

TORCH_THREADS = 1  # tiny models (conftest.py)
REPO = Path(__file__).resolve().parents[1]
FAST = {"tokenizer.token_size": "64", "recurrent.d_model": "[64, 64]", "recurrent.d_state": "16",
        "recurrent.headdim": "32", "denoiser.channels": "[1, 8, 16, 8, 1]", "diffusion.sampler": "ddim",
        "diffusion.sampling_steps": "5", "train.steps": "4", "train.batch_size": "4", "train.save_every": "4",
        "train.log_every": "2", "train.lr": "1e-3", "diffusion.diffusion_batch": "16", "condition.task_hidden": "32"}
SEEN_PAIR, UNSEEN_FLIP, UNSEEN_OTHER = 744, 279, 314      # 744 = 1011101000 and its flip 0100010111 (paper Tab. 10)
UNSEEN = [UNSEEN_FLIP, UNSEEN_OTHER]


def quiet(*a, **k):
    pass


def train(zoo: Path, run: Path, *extra: str) -> None:
    sets = [x for k, v in FAST.items() for x in ("--set", f"{k}={v}")]
    assert train_cli.main(["--checkpoints", str(zoo), "--out", str(run), "--preset", "tiny", "--device", "cpu",
                           "--threads", "1", "--quiet", *sets, *extra]) == 0


def generate(run: Path, out: Path, tasks: list[int], num: int = 2) -> Path:
    assert generate_cli.main(["--run", str(run), "--out", str(out), "--num", str(num), "--conditions",
                              "tasks:" + ",".join(map(str, tasks)), "--device", "cpu", "--threads", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tasks")
    cfg = ZooConfig(name="test/tasks", kind="tasks", dataset={"name": "digits"},
                    architecture={"name": "cnn_s", "kwargs": {"in_chans": 1, "num_classes": 2}},
                    pretrain=[PhaseConfig(epochs=1, lr=1e-2)],
                    phases=[PhaseConfig(iterations=3, lr=1e-2, trainable="head"), PhaseConfig(iterations=4, lr=1e-3)],
                    save=SaveConfig(lr=1e-3, every=1), num_checkpoints=2, batch_size=64, eval_batch_size=500,
                    loss="focal", num_seen_tasks=4, include_tasks=[SEEN_PAIR], unseen_tasks=UNSEEN)
    zoo = root / "zoo"
    collect(cfg, zoo, device="cpu", progress=False, log=quiet)
    runs = {"gated": root / "gated", "sequence": root / "sequence", "retrieval": root / "retrieval"}
    train(zoo, runs["gated"], "--set", "condition.task=gated")
    train(zoo, runs["sequence"], "--set", "condition.task=sequence")
    assert train_cli.main(["--method", "retrieval", "--checkpoints", str(zoo), "--out", str(runs["retrieval"]),
                           "--threads", "1"]) == 0
    evals = {}
    for name, run in runs.items():
        g = generate(run, root / "gen" / name, UNSEEN)
        evals[name] = root / "metrics" / f"{name}.json"
        formats.write_eval(evals[name], evaluate_zoo(zoo, g, device="cpu", progress=False))
    seen = [SEEN_PAIR] + [t for t in cfg.seen_tasks() if t != SEEN_PAIR][:1]
    g = generate(runs["gated"], root / "gen" / "gated_seen", seen)
    evals["gated_seen"] = root / "metrics" / "gated_seen.json"
    formats.write_eval(evals["gated_seen"], evaluate_zoo(zoo, g, device="cpu", progress=False))
    torch.set_num_threads(n)
    return {"cfg": cfg, "zoo": zoo, "runs": runs, "evals": evals, "root": root}


# ------------------------------------------------------------------------------------------------ encoding
def test_task_id_and_bits_round_trip_and_msb_is_class_zero():
    assert all(task_id(task_bits(n)) == n for n in range(1, NUM_TASKS + 1))
    assert task_bits(2 ** 9) == [1] + [0] * 9          # the MSB makes class 0 positive
    assert task_bits(1) == [0] * 9 + [1]
    # the two condition spellings name the same vector
    info = RunInfo(zoo={}, permutations=[], task_conditioned=True)
    (by_id,) = expand(ConditionSpec.parse(f"tasks:{SEEN_PAIR}"), info, "run")
    (by_bits,) = expand(ConditionSpec.parse("task:" + "".join(map(str, task_bits(SEEN_PAIR)))), info, "run")
    assert by_id.task == by_bits.task == tuple(task_bits(SEEN_PAIR))
    for bad in ("tasks:0", f"tasks:{NUM_TASKS + 1}", "task:0000000000", "task:111"):
        with pytest.raises(RPGInputError):
            ConditionSpec.parse(bad)


# ------------------------------------------------------------------------------------------------ the split
def test_unseen_tasks_never_enter_training(study):
    cfg, zoo = study["cfg"], study["zoo"]
    unseen_bits = {formats.task_string(task_bits(n)) for n in cfg.unseen_tasks}
    # the generator's training data is the top-level manifest: seen tasks only, from seen/
    train_zoo = formats.read_zoo(zoo, trainable=True)
    trained = {formats.task_string(t) for t in train_zoo.tasks}
    assert trained == {formats.task_string(task_bits(n)) for n in cfg.seen_tasks()} and not trained & unseen_bits
    assert all(f.parent.name == "seen" for f in train_zoo.files)
    for run in ("gated", "sequence"):
        tokens = np.load(study["runs"][run] / "tokens.npy", mmap_mode="r")
        assert tokens.shape[0] == len(train_zoo.files)       # one token sequence per SEEN checkpoint
    index = io.read_json(study["runs"]["retrieval"] / "index.json")
    assert not {formats.task_string(t) for t in index["tasks"]} & unseen_bits
    # the unseen originals exist (held out in unseen/) for evaluation
    held = formats.read_zoo(zoo / "unseen")
    assert {r.group for r in held.refs} == unseen_bits
    # include_tasks is always in the drawn subset; the pretrained weights are the zoo's, made once
    assert SEEN_PAIR in cfg.seen_tasks() and (zoo / "pretrain.safetensors").is_file()


def test_mini_and_paper_configs_keep_the_paper_unseen_ids_out_of_training():
    for recipe in ("mini/vit_tiny_tasks", "paper/cifar10_vit_tiny_tasks"):
        cfg = get_zoo(recipe)
        assert sorted(cfg.unseen_tasks) == sorted(PAPER_UNSEEN_TASKS)
        assert not set(cfg.seen_tasks()) & set(cfg.unseen_tasks)
    mini = get_zoo("mini/vit_tiny_tasks")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    rows = {**config["experiments"], **config["variants"]}

    def ids(row):
        spec = rows[row].get("sample", {}).get("conditions") or rows[rows[row]["generator"]]["sample"]["conditions"]
        return ConditionSpec.parse(spec).values

    for row in ("tasks_gated", "tasks_sequence", "tasks_retrieval"):
        assert sorted(ids(row)) == sorted(PAPER_UNSEEN_TASKS)
    for row in ("tasks_gated_seen", "tasks_sequence_seen"):
        assert set(ids(row)) <= set(mini.seen_tasks()) and len(ids(row)) == 20
    # the paper's Tab. 10 / Fig. 6 seen tasks are in the seen subset
    assert {744, 664} <= set(mini.seen_tasks())


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("variant", ["gated", "sequence"])
def test_condition_variant_end_to_end(study, variant):
    run = study["runs"][variant]
    assert io.read_json(run / "config.json")["condition"]["task"] == variant
    ev = formats.read_eval(study["evals"][variant])
    per = ev["per_task"]
    assert set(per) == {formats.task_string(task_bits(n)) for n in UNSEEN}
    for entry in per.values():
        # each unseen task's generated models meet that task's held-out originals
        assert entry["part"] == "unseen"
        assert entry["original"]["n"] == study["cfg"].num_checkpoints and entry["generated"]["n"] == 2
        assert set(entry["generated"]["breakdown"]) == {str(c) for c in range(10)}
    test = load_dataset(DatasetSpec.from_dict(study["cfg"].dataset)).test
    assert ev["label_counts"] == torch.bincount(test.targets, minlength=10).tolist()
    gen = formats.read_generated(ev["generated_dir"])
    by_task = {r.group: io.load_state_dict(r.path) for r in gen.refs}
    a, b = (by_task[formats.task_string(task_bits(n))] for n in UNSEEN)
    # models share their starting noise across conditions: the head differs by the task alone
    assert not torch.equal(a["fc2.weight"], b["fc2.weight"])


def test_label_counts_and_per_class_breakdown_are_consistent(study):
    ev = formats.read_eval(study["evals"]["gated"])
    counts = ev["label_counts"]
    for entry in ev["per_task"].values():
        br = entry["original"]["breakdown"]
        # accuracy = per-class accuracies weighted by the class sizes of the test set
        weighted = sum(br[str(c)] * counts[c] for c in range(10)) / sum(counts)
        assert abs(weighted - entry["original"]["mean"]) < 0.05


# ------------------------------------------------------------------------------------------------ retrieval
def test_hamming_and_nearest():
    assert hamming(task_bits(SEEN_PAIR), task_bits(UNSEEN_FLIP)) == 10
    assert nearest([0, 1, 1], [[1, 1, 1], [0, 0, 0], [0, 1, 0], [0, 0, 1]]) == [0, 2, 3]


def test_retrieval_returns_the_nearest_seen_tasks_originals(study):
    cfg, zoo = study["cfg"], study["zoo"]
    gen = formats.read_generated(study["root"] / "gen" / "retrieval")
    seen = formats.read_zoo(zoo / "seen")
    for n in UNSEEN:
        want = task_bits(n)
        dist = {r.group: hamming(r.task, want) for r in seen.refs}
        best = min(dist.values())
        allowed = [r for r in seen.refs if dist[r.group] == best]
        picked = [r for r in gen.refs if r.task == want]
        assert len(picked) == 2
        for r in picked:
            sd = io.load_state_dict(r.path)
            assert any(all(torch.equal(sd[k], v) for k, v in io.load_state_dict(o.path).items()) for o in allowed)
    # scored on the unseen task, against that task's held-out originals
    ev = formats.read_eval(study["evals"]["retrieval"])
    assert {e["part"] for e in ev["per_task"].values()} == {"unseen"} and ev["generation"]["method"] == "retrieval"
    # a seen task is its own nearest task: its originals come back
    out = generate(study["runs"]["retrieval"], study["root"] / "retr_seen", [SEEN_PAIR], num=cfg.num_checkpoints)
    mine = {p.name for p in (zoo / "seen").glob(f"task{SEEN_PAIR:04d}_*.safetensors")}
    got = [io.load_state_dict(r.path) for r in formats.read_generated(out).refs]
    origs = [io.load_state_dict(zoo / "seen" / f) for f in sorted(mine)]
    assert all(any(torch.equal(g["fc2.weight"], o["fc2.weight"]) for o in origs) for g in got)


# ------------------------------------------------------------------------------------------------ builders
def _inputs(study, builder: str, rows: list[tuple[str, str]], paper: str | None = None):
    """Each row's eval file, and its zoo and generated folders (the ones the rule declares as inputs)."""
    ev = study["evals"]
    return load_inputs(builder, [ev[k] for k, _ in rows], [lab for _, lab in rows],
                       REPO / "resources" / "paper" / paper if paper else None, "smoke",
                       zoos=[study["zoo"]] * len(rows), generated=[study["root"] / "gen" / k for k, _ in rows])


def test_table9_and_table14(study, tmp_path):
    rows = [("gated", "gated"), ("gated_seen", "gated, seen"), ("sequence", "whole sequence"),
            ("retrieval", "retrieval")]
    t9 = build_table("table9", _inputs(study, "table9", rows, "table9.csv"), tmp_path / "t9.csv")
    by = t9.set_index("label")
    assert list(by["split"]) == ["unseen", "seen", "unseen", "unseen"]
    retr = formats.read_eval(study["evals"]["retrieval"])["per_task"]
    assert by.loc["gated", "retrieval"] == pytest.approx(np.mean([e["generated"]["mean"] for e in retr.values()]),
                                                         abs=0.01)
    counts = formats.read_eval(study["evals"]["gated"])["label_counts"]
    maj = [T.majority(formats.task_string(task_bits(n)), counts) for n in UNSEEN]
    assert by.loc["gated", "majority"] == pytest.approx(np.mean(maj), abs=0.01) and all(m >= 50 for m in maj)
    paper = pd.read_csv(REPO / "resources" / "paper" / "table9.csv")
    assert by.loc["gated", "paper_original"] == pytest.approx(paper["original"].mean(), abs=0.01)
    assert pd.isna(by.loc["gated, seen", "paper_original"])       # the paper prints no seen-task row
    assert (tmp_path / "t9.png").is_file()

    t14 = build_table("table14", _inputs(study, "table14", [("gated", "gated"), ("sequence", "whole sequence"),
                                                            ("retrieval", "retrieval")], "table14.csv"),
                      tmp_path / "t14.csv")
    assert list(t14["task_id"]) == [UNSEEN_FLIP, UNSEEN_OTHER]           # paper CSV order (0100010111 first)
    assert {"gated_best", "whole_sequence_mean", "retrieval_mean"} <= set(t14.columns)
    assert "retrieval_best" not in t14.columns
    first = t14.iloc[0]
    assert first["paper_original"] == 97.3 and first["positive_classes"] == "1; 5; 7; 8; 9"   # digits: no names


def test_table10_fig6_fig10(study, tmp_path):
    rows = [("gated_seen", "gated, seen"), ("gated", "gated")]
    t10 = build_table("table10", _inputs(study, "table10", rows, "table10.csv"), tmp_path / "t10.csv")
    # the paper's pair (seen 744, unseen flip 279) first, then the other unseen task; original and generated each
    assert list(dict.fromkeys(t10["task_id"])) == [SEEN_PAIR, UNSEEN_FLIP, UNSEEN_OTHER]
    gen744 = t10[(t10["task_id"] == SEEN_PAIR) & (t10["kind"] == "generated")].iloc[0]
    assert gen744["part"] == "seen" and gen744["paper_class_0"] == 98.0
    f6 = build_table("fig6", _inputs(study, "fig6", rows), tmp_path / "f6.csv")
    params = [c for c in f6.columns if c.startswith("p") and c[1:].isdigit()]
    arch = formats.read_zoo(study["zoo"]).architecture
    head = sum(io.load_state_dict(formats.read_zoo(study["zoo"]).files[0])[k].numel() for k in T.head_keys(arch))
    assert len(params) == min(T.FIG6_PARAMS, head)
    assert set(f6["label"]) == {"gated, seen", "gated"} and set(f6["kind"]) == {"original", "generated"}
    f10 = build_table("fig10", _inputs(study, "fig10", rows), tmp_path / "f10.csv")
    gen = f10[f10["kind"] == "generated"]
    assert len(gen) == 2 * 2 + 2 * 2 and gen["same_task"].isin([True, False]).all()
    assert (f10[f10["kind"] == "original"]["nearest_original_task"] == "").all()
    assert (tmp_path / "f10.png").is_file() and (tmp_path / "f6.png").is_file()
    # the folders come from the table's inputs, never from paths recorded in the eval file
    moved = {}
    for key, _ in rows:
        ev = io.read_json(study["evals"][key])
        moved[key] = tmp_path / f"{key}.json"
        io.write_json(moved[key], {**ev, "zoo": "/nonexistent/zoo", "generated_dir": "/nonexistent/generated"})
    inputs = load_inputs("fig6", [moved[k] for k, _ in rows], [lab for _, lab in rows], None, "smoke",
                         zoos=[study["zoo"]] * 2, generated=[study["root"] / "gen" / k for k, _ in rows])
    pd.testing.assert_frame_equal(build_table("fig6", inputs, tmp_path / "f6b.csv"), f6)
    with pytest.raises(RPGInputError, match="fig6: needs --zoos"):
        load_inputs("fig6", [moved[k] for k, _ in rows], [lab for _, lab in rows], None, "smoke")


def test_table15_defines_fail_numerically(tmp_path):
    torch.set_num_threads(1)
    seeds = ZooConfig(name="test/seeds", kind="seeds", num_seeds=2, num_checkpoints=2, dataset={"name": "digits"},
                      architecture={"name": "cnn_s", "kwargs": {"in_chans": 1, "num_classes": 10}},
                      phases=[PhaseConfig(iterations=2, lr=1e-2)], save=SaveConfig(lr=1e-3, every=1), batch_size=64,
                      eval_checkpoints=False)
    (zoo,) = collect(seeds, tmp_path / "zoo", device="cpu", progress=False, log=quiet)
    from rpg.generator.config import preset_config

    paths, labels = [], []
    for state, accs in (("learned", [88.0, 87.0]), ("none", [10.0, 14.9])):
        run = tmp_path / f"run_{state}"
        io.write_json(run / "config.json", preset_config("mini", {"condition.permutation": state}).to_dict())
        summary = lambda a: {"accuracies": a, "best": max(a), "mean": float(np.mean(a)), "min": min(a),  # noqa: E731
                             "median": float(np.median(a)), "std": float(np.std(a)), "n": len(a)}
        label = f"{'w/' if state == 'learned' else 'w/o'} permutation state, 3 seeds"
        paths.append(tmp_path / f"{state}.json")
        labels.append(label)
        formats.write_eval(paths[-1], {"params": 100, "dataset": "digits", "zoo": str(zoo),
                                       "generation": {"method": "rpg", "run": str(run)},
                                       "original": summary([88.0, 88.5]), "generated": summary(accs)})
    # the seeds come from the row's zoo and the permutation state from its run config (--zoos, --runs)
    inputs = load_inputs("table15", paths, labels, REPO / "resources" / "paper" / "table15.csv", "smoke",
                         runs=[tmp_path / "run_learned", tmp_path / "run_none"], zoos=[zoo, zoo])
    t = build_table("table15", inputs, tmp_path / "t15.csv").set_index("label")
    assert list(t["permutation_state"]) == ["w/", "w/o"] and list(t["seeds"]) == [2, 2]
    # chance = 10%: best 14.9 is within FAIL_MARGIN (5) of it -> fail; 88 is not
    assert list(t["verdict"]) == ["ok", "fail"] and T.fail_verdict(15.0, 10.0) == "ok"
    assert list(t["paper_accuracy"]) == ["88.1", "fail"]
    assert isinstance(inputs, TableInputs) and "table15" in TABLES


def test_phase_iterations_and_pretrain_step_counts(tmp_path, monkeypatch):
    """`phases.N.iterations` runs exactly that many optimizer steps (across an epoch boundary too); `pretrain`
    runs once per zoo, whatever the number of units, and a rerun reuses its weights."""
    from rpg.zoos import collection as collect_mod

    steps = {"ce": 0, "task": 0}
    orig = collect_mod.Collector._step

    def counting(self, *a, ce=False, **k):
        steps["ce" if ce else "task"] += 1
        return orig(self, *a, ce=ce, **k)

    monkeypatch.setattr(collect_mod.Collector, "_step", counting)
    cfg = ZooConfig(name="test/iters", kind="tasks", dataset={"name": "digits"},
                    architecture={"name": "cnn_s", "kwargs": {"in_chans": 1, "num_classes": 2}},
                    pretrain=[PhaseConfig(epochs=1, lr=1e-2)],
                    phases=[PhaseConfig(iterations=5, lr=1e-2, trainable="head"), PhaseConfig(iterations=30, lr=1e-3)],
                    save=SaveConfig(lr=1e-3, every=1), num_checkpoints=2, batch_size=64, eval_checkpoints=False,
                    num_seen_tasks=2, unseen_tasks=[UNSEEN_OTHER])
    n_batches = len(load_dataset(DatasetSpec.from_dict(cfg.dataset)).train) // cfg.batch_size
    assert 5 < n_batches < 30                              # the second phase crosses an epoch boundary
    collect(cfg, tmp_path / "z", device="cpu", progress=False, log=quiet)
    units = 2 + 1                                          # 2 seen tasks + 1 unseen
    assert steps == {"ce": n_batches, "task": units * (5 + 30 + cfg.num_checkpoints)}
    first = io.load_state_dict(tmp_path / "z" / "pretrain.safetensors")
    steps.update(ce=0, task=0)
    collect(cfg, tmp_path / "z", device="cpu", progress=False, log=quiet)    # complete: nothing to train again
    assert steps == {"ce": 0, "task": 0}
    again = io.load_state_dict(tmp_path / "z" / "pretrain.safetensors")
    assert all(torch.equal(first[k], again[k]) for k in first)
