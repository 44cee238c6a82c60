"""Evaluation: summaries, IoU similarity, the normalized-space noise baseline, the domain seam, the rpg-eval/1
JSON, the training evaluation hook, bad inputs. Every zoo, generated set and eval file here is written by the
project's own writers (rpg.zoos.collection, formats.write_generated, formats.write_eval)."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from rpg import formats
from rpg.cli.evaluate import main
from rpg.domains import DOMAINS, Domain, Outcome
from rpg.errors import RPGInputError
from rpg.evaluation import make_eval_fn
from rpg.evaluation.classification import ClassificationDomain, Evaluator
from rpg.evaluation.evaluate import evaluate_zoo, summarize
from rpg.evaluation.similarity import add_normalized_noise, iou_matrix, layer_stats
from rpg.io import load_state_dict, save_state_dict
from rpg.zoos import recipes as zoos
from rpg.zoos.architectures import build_model, count_params
from rpg.zoos.collection import ZooManifest, collect
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


def make_generated(zoo, dest, picks=(0, 3), tasks=None, conditions=None, **info):
    """A generated set written by formats.write_generated, holding copies of some originals."""
    z = formats.read_zoo(zoo)
    models = [
        formats.GeneratedModel(
            load_state_dict(z.refs[k].path),
            permutation=z.refs[k].permutation,
            task=None if tasks is None else tasks[i],
            condition=None if conditions is None else conditions[i],
        )
        for i, k in enumerate(picks)
    ]
    provenance = {"method": "rpg", "run": "test", "architecture": z.architecture, "dataset": z.dataset,
                  "substitute_for": z.substitute_for, "domain": z.domain, "sampler": "ddim", "steps": 25,
                  "mode": "sequential", "seed": 0, "precision": "fp32"}
    formats.write_generated(dest, models, {**provenance, **info})
    return dest


def zoo_variant(src, dest, **changes):
    """A copy of zoo `src` whose manifest differs in `changes`, written by the zoo writer (ZooManifest)."""
    data = dict(formats.read_zoo(src).manifest)
    checkpoints = data.pop("checkpoints")
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(formats.MANIFEST))
    manifest = ZooManifest(dest, {**data, **changes})
    for c in checkpoints:
        manifest.add(c, fixed_permutation=True)
    manifest.publish()
    return dest


def _accs(zoo) -> list[float]:
    """Each checkpoint's accuracy (%) as recorded at collection time."""
    return [round(100 * c["accuracy"], 2) for c in formats.read_zoo(zoo).manifest["checkpoints"]]


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
    zoo = formats.read_zoo(digits_zoo)
    assert res["format"] == formats.EVAL_FORMAT and res["dataset"] == "digits" and res["split"] == "test"
    assert res["domain"] == "classification" and res["metric"] == ClassificationDomain.metric_name
    assert res["architecture"] == zoo.architecture and res["substitute_for"] is None
    assert res["params"] == count_params(build_model(zoo.architecture))
    # the generated set's provenance is copied for the sampling tables
    assert res["generation"] == {"method": "rpg", "run": "test", "sampler": "ddim", "steps": 25,
                                 "mode": "sequential", "seed": 0}
    assert "per_condition" not in res            # one condition only
    # the collection-time accuracies (fractions) match the evaluation (percent)
    assert res["original"]["accuracies"] == _accs(digits_zoo)
    assert res["original"]["n"] == 4 and res["generated"]["n"] == 2
    assert res["generated"]["accuracies"] == [
        res["original"]["accuracies"][0],
        res["original"]["accuracies"][3],
    ]
    sim = res["similarity"]
    # copies of originals are their own nearest neighbours, with IoU 1
    assert [g["max_iou"] for g in sim["generated"]] == [1.0, 1.0]
    assert [g["nearest_original"] for g in sim["generated"]] == [zoo.refs[0].path.name, zoo.refs[3].path.name]
    assert 0 < sim["original_original_mean_iou"] <= 1
    levels = sim["noise"]["levels"]
    assert [lv["level"] for lv in levels] == [0.01, 1.0] and all(len(lv["accuracies"]) == 2 for lv in levels)
    # tiny noise keeps the model, huge noise destroys it (paper Tab. 16)
    assert levels[0]["mean_max_iou"] > 0.8 and levels[1]["accuracy_decline"] > 30
    assert levels[1]["mean_max_iou"] < levels[0]["mean_max_iou"]


def test_cli_writes_eval_json(digits_zoo, tmp_path, capsys):
    gen = make_generated(digits_zoo, tmp_path / "gen", picks=(1,))
    out = tmp_path / "m.json"
    argv = ["--zoo", str(digits_zoo), "--generated", str(gen), "--out", str(out), "--device", "cpu",
            "--threads", "1", "--no-progress"]
    assert main(argv) == 0
    res = formats.read_eval(out)                   # the one reader accepts what the CLI wrote
    assert res["similarity"] is None and res["generated"]["n"] == 1
    assert res["generated"]["accuracies"] == [_accs(digits_zoo)[1]]
    assert set(res["original"]) == {"accuracies", "best", "mean", "min", "median", "std", "n"}
    assert "original  n=4" in capsys.readouterr().out
    # a folder of bare weight files (no manifest) and a single file are accepted too
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(gen / "generated_000.safetensors", bare / "a.safetensors")
    res = evaluate_zoo(digits_zoo, bare, device="cpu", progress=False)
    assert res["generated"]["n"] == 1 and res["generation"] is None
    assert (
        evaluate_zoo(digits_zoo, bare / "a.safetensors", device="cpu", progress=False)["generated"]["n"] == 1
    )


def test_per_condition_breakdown(digits_zoo, tmp_path):
    """A generated set with one subfolder per condition: a per-condition summary, names with the subfolder."""
    gen = make_generated(digits_zoo, tmp_path / "gen", picks=(0, 1, 3), conditions=["perm0", "perm0", "perm3"])
    res = evaluate_zoo(digits_zoo, gen, with_similarity=True, device="cpu", noise_levels=(), progress=False)
    accs = _accs(digits_zoo)
    assert set(res["per_condition"]) == {"perm0", "perm3"}
    per = {c: v["generated"] for c, v in res["per_condition"].items()}
    assert per["perm0"]["accuracies"] == [accs[0], accs[1]] and per["perm0"]["n"] == 2
    assert per["perm3"]["accuracies"] == [accs[3]] and per["perm3"]["best"] == accs[3]
    assert res["generated"]["accuracies"] == [accs[0], accs[1], accs[3]]
    assert [g["file"] for g in res["similarity"]["generated"]] == [
        "perm0/generated_000.safetensors", "perm0/generated_001.safetensors", "perm3/generated_000.safetensors"]
    # the breakdown survives the eval writer and reader
    formats.write_eval(tmp_path / "m.json", res)
    assert formats.read_eval(tmp_path / "m.json")["per_condition"] == res["per_condition"]


def test_bad_inputs(digits_zoo, tmp_path, capsys):
    gen = make_generated(digits_zoo, tmp_path / "gen", picks=(0,))
    # corrupt checkpoint file
    (gen / "generated_000.safetensors").write_bytes(b"\x00garbage")
    argv = ["--zoo", str(digits_zoo), "--generated", str(gen), "--out", str(tmp_path / "m.json"),
            "--device", "cpu", "--no-progress"]
    assert main(argv) == 2
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
    # a generated set made for another architecture
    other = make_generated(digits_zoo, tmp_path / "other", picks=(0,), architecture={"name": "cnn_m", "kwargs": {}})
    with pytest.raises(RPGInputError, match="differs from the zoo"):
        evaluate_zoo(digits_zoo, other, device="cpu")
    # bad CLI values
    assert main(["--zoo", str(digits_zoo), "--out", str(tmp_path / "x.json"), "--noise-levels", "a,b"]) == 2
    assert main(["--zoo", str(digits_zoo), "--out", str(tmp_path / "x.json"), "--set", "lr=3"]) == 2
    capsys.readouterr()


def test_missing_dataset_path(digits_zoo, tmp_path):
    zoo = zoo_variant(digits_zoo, tmp_path / "zoo", dataset={"name": "fashion_mnist"})
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
    t314, t482 = (formats.task_string(b) for b in bits)
    assert set(res["per_task"]) == {t314, t482}
    assert res["per_task"][t314]["original"]["n"] == 2 and res["per_task"][t314]["generated"]["n"] == 1
    # similarity only among models of the same task
    assert [g["nearest_original"] for g in res["similarity"]["generated"]] == [
        "task0314_ckpt00.safetensors",
        "task0482_ckpt00.safetensors",
    ]
    # a generated model without a task cannot be scored on a task zoo: the error names the manifest entry
    notask = make_generated(unseen, tmp_path / "notask", picks=(0, 2), tasks=[bits[0], None])
    with pytest.raises(RPGInputError, match=r"notask/manifest\.json: files\[1\]\.task: this is a task zoo"):
        evaluate_zoo(unseen, notask, device="cpu")
    # nor can the training hook, which samples without a task
    with pytest.raises(RPGInputError, match="task zoo"):
        make_eval_fn(unseen, "cpu")


# ---- the domain seam --------------------------------------------------------------------------------


class SignDomain(Domain):
    """A toy domain that needs no data: a model's mistakes are the negative entries of its first tensor."""

    metric_name = "non-negative weights"

    def __init__(self, zoo, data_cfg, device, batch_size):
        self.params = count_params(load_state_dict(zoo.refs[0].path))
        self.dataset = "weights"
        self.split = "first tensor"

    def score(self, state_dict, source, ref):
        wrong = next(iter(state_dict.values())).flatten() < 0
        return Outcome(metric=100.0 * (1.0 - float(wrong.float().mean())), mistakes=wrong)


class NoMistakesDomain(SignDomain):
    def score(self, state_dict, source, ref):
        return Outcome(metric=super().score(state_dict, source, ref).metric, mistakes=None)


def test_domain_registry_picks_by_manifest_key(digits_zoo, tmp_path, monkeypatch):
    """evaluate_zoo, the summaries and the similarity see only the Outcomes of the manifest's domain."""
    monkeypatch.setitem(DOMAINS, "sign", f"{__name__}:SignDomain")
    zoo = zoo_variant(digits_zoo, tmp_path / "zoo", domain="sign")
    gen = make_generated(zoo, tmp_path / "gen", picks=(2, 1))
    res = evaluate_zoo(zoo, gen, with_similarity=True, device="cpu", noise_levels=(0.0,), noise_repeats=1,
                       progress=False)
    z = formats.read_zoo(zoo)
    refs, sign = z.refs, SignDomain(z, None, "cpu", None)
    expected = [sign.score(load_state_dict(r.path), "", r).metric for r in refs]
    assert res["domain"] == "sign" and res["metric"] == SignDomain.metric_name and res["dataset"] == "weights"
    assert res["original"] == summarize(expected)
    assert res["generated"]["accuracies"] == [round(expected[2], 2), round(expected[1], 2)]
    assert [g["max_iou"] for g in res["similarity"]["generated"]] == [1.0, 1.0]   # copies of originals
    assert res["similarity"]["noise"]["levels"][0]["mean_max_iou"] == 1.0   # zero noise: the same model
    # the training hook scores with the same domain
    hook = make_eval_fn(zoo, "cpu")([load_state_dict(refs[0].path)])
    assert hook == {k: round(expected[0], 2) for k in ("acc_mean", "acc_min", "acc_max")}
    # a domain without per-sample mistakes has no similarity analysis, and says so
    monkeypatch.setitem(DOMAINS, "sign", NoMistakesDomain)
    assert evaluate_zoo(zoo, gen, device="cpu", progress=False)["original"] == summarize(expected)
    with pytest.raises(RPGInputError, match="'sign' domain scores no per-sample mistakes"):
        evaluate_zoo(zoo, gen, with_similarity=True, device="cpu", progress=False)


def test_unknown_domain_is_one_error_line(digits_zoo, tmp_path, capsys):
    zoo = zoo_variant(digits_zoo, tmp_path / "zoo", domain="no-such-domain")
    out = tmp_path / "m.json"
    assert main(["--zoo", str(zoo), "--out", str(out), "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert str(zoo / formats.MANIFEST) in err and "domain" in err and "'no-such-domain'" in err
    assert not out.exists()
    with pytest.raises(RPGInputError, match="no-such-domain"):
        make_eval_fn(zoo, "cpu")


# ---- the training evaluation hook --------------------------------------------------------------------


def test_eval_hook_scores_generated_state_dicts(digits_zoo):
    refs = formats.read_zoo(digits_zoo).refs
    accs = _accs(digits_zoo)
    hook = make_eval_fn(digits_zoo, "cpu")
    metrics = hook([load_state_dict(refs[k].path) for k in (0, 2, 3)])
    picked = [accs[0], accs[2], accs[3]]
    assert metrics["acc_min"] == min(picked) and metrics["acc_max"] == max(picked)
    assert metrics["acc_mean"] == pytest.approx(sum(picked) / 3, abs=0.011)
    # weights of another network are an error naming the hook's model, not a silent score
    with pytest.raises(RPGInputError, match="generated model 0"):
        hook([build_model({"name": "cnn_m", "kwargs": {}}).state_dict()])


# ---- Fashion-MNIST (fails instead of skipping on CI when the data is missing) -----------------------


def test_fashion_mnist_mini_evaluation():
    from test_datasets import require_fashion_mnist

    require_fashion_mnist()
    cfg = zoos.get_zoo("mini/resnet18")
    manifest = {"architecture": cfg.architecture, "dataset": cfg.dataset, "config": cfg.to_dict()}
    ev = Evaluator(manifest, device="cpu")
    assert len(ev.data.test) == 10000
    wrong = ev.wrong(build_model(cfg.architecture).state_dict(), "random init")
    assert wrong.shape == (10000,)
    assert 50 < 100 * float(wrong.float().mean())  # an untrained model is mostly wrong


def test_originals_cache_hits_only_for_the_same_checkpoints_and_code(digits_zoo, tmp_path, monkeypatch):
    """The second evaluation of a zoo reads its originals' scores from the cache (no model is scored), with
    the same result, mistakes included; a changed checkpoint is a miss; RPG_CACHE_DIR= turns it off."""
    from rpg.evaluation import cache
    zoo = tmp_path / "zoo"
    shutil.copytree(digits_zoo, zoo)
    monkeypatch.setenv("RPG_CACHE_DIR", str(tmp_path / "cache"))
    scored = []
    real = ClassificationDomain.score
    monkeypatch.setattr(ClassificationDomain, "score", lambda self, sd, src, ref: scored.append(src) or
                        real(self, sd, src, ref))
    gen = make_generated(zoo, tmp_path / "gen", picks=(2,))
    kw = dict(with_similarity=True, device="cpu", noise_levels=(), progress=False)
    first = evaluate_zoo(zoo, gen, **kw)
    n = first["original"]["n"]
    assert len(scored) == n + 1 and len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    scored.clear()
    second = evaluate_zoo(zoo, gen, **kw)
    assert len(scored) == 1                                   # the generated model only
    assert second["original"] == first["original"] and second["similarity"] == first["similarity"]
    # a checkpoint with other weights is a miss: every original is scored again, under a new key
    refs = formats.read_zoo(zoo).refs
    save_state_dict(refs[0].path, load_state_dict(refs[1].path))
    scored.clear()
    changed = evaluate_zoo(zoo, gen, **kw)
    assert len(scored) == n + 1 and len(list((tmp_path / "cache").glob("*.safetensors"))) == 2
    # a truncated cache file is a miss, not an error
    for f in (tmp_path / "cache").glob("*.safetensors"):
        f.write_bytes(f.read_bytes()[:40])
    scored.clear()
    assert evaluate_zoo(zoo, gen, **kw)["original"] == changed["original"] and len(scored) == n + 1
    monkeypatch.setenv("RPG_CACHE_DIR", "")
    assert cache.cache_dir() is None
    scored.clear()
    evaluate_zoo(zoo, gen, **kw)
    assert len(scored) == n + 1


def test_originals_cache_round_trip(tmp_path):
    from rpg.evaluation.cache import read_outcomes, write_outcomes
    outs = [Outcome(metric=91.5, mistakes=torch.tensor([True, False, True]), breakdown={"0": 50.0}),
            Outcome(metric=12.25, mistakes=torch.tensor([False, False, True]), extra={"mAcc": 3.0})]
    write_outcomes(tmp_path / "c.safetensors", outs, "k")
    back = read_outcomes(tmp_path / "c.safetensors", 2, "k")
    assert [o.metric for o in back] == [91.5, 12.25]
    assert all(torch.equal(a.mistakes, b.mistakes) for a, b in zip(back, outs))
    assert [o.breakdown for o in back] == [{"0": 50.0}, None] and [o.extra for o in back] == [None, {"mAcc": 3.0}]
    assert read_outcomes(tmp_path / "c.safetensors", 3, "k") is None          # another set of originals
    assert read_outcomes(tmp_path / "c.safetensors", 2, "other") is None      # recorded under another key
    assert read_outcomes(tmp_path / "absent.safetensors", 2, "k") is None
