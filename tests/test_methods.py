"""The generation-method seam (rpg.methods): registry dispatch from run.json, conditions and their subfolders,
sampling equal to the pre-seam code path, and the generated set's folder rules (no stale files, no overwritten zoo).

Fixtures are real: zoos from `rpg.zoos.collection.collect` (CNN(s) on the bundled sklearn digits), runs from
`rpg train`, generated sets from `rpg generate`."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from rpg import formats, io
from rpg.cli import generate as generate_cli
from rpg.cli import train as train_cli
from rpg.errors import RPGInputError
from rpg.generator.sampling import load_run, sample_tokens
from rpg.methods import METHODS, ConditionSpec, RunInfo, SampleOptions, generate, get_method
from rpg.methods.rpg import zoo_fingerprint
from rpg.zoos.collection import collect
from rpg.zoos.recipes import PhaseConfig, SaveConfig, ZooConfig, task_bits

TORCH_THREADS = 1  # tiny models: one thread avoids OpenMP oversubscription (see conftest.py)

FAST = {"tokenizer.token_size": "64", "recurrent.d_model": "[64, 64]", "recurrent.d_state": "16",
        "recurrent.headdim": "32", "denoiser.channels": "[1, 8, 16, 8, 1]", "diffusion.sampler": "ddim",
        "diffusion.sampling_steps": "5", "train.steps": "4", "train.batch_size": "4", "train.save_every": "4",
        "train.log_every": "2", "train.lr": "1e-3", "diffusion.diffusion_batch": "16"}


def quiet(*a, **k):
    pass


def tiny_zoo(out: Path, **kw) -> Path:
    """A ~1 s zoo: CNN(s) on sklearn digits, 4 checkpoints (tasks: 2 per task)."""
    base = dict(name="test/tiny", architecture={"name": "cnn_s", "kwargs": {"in_chans": 1, "num_classes": 10}},
                dataset={"name": "digits"}, num_checkpoints=4, batch_size=64, eval_batch_size=500,
                phases=[PhaseConfig(epochs=1, lr=1e-2)], save=SaveConfig(lr=1e-3, every=2))
    (folder,) = collect(ZooConfig(**{**base, **kw}), out, device="cpu", progress=False, log=quiet)
    return folder


def train(zoo: Path, run: Path, *extra: str) -> None:
    sets = [x for k, v in FAST.items() for x in ("--set", f"{k}={v}")]
    rc = train_cli.main(["--checkpoints", str(zoo), "--out", str(run), "--preset", "tiny", "--device", "cpu",
                         "--threads", "1", "--quiet", *sets, *extra])
    assert rc == 0


def gen(*args: str) -> int:
    return generate_cli.main([*args, "--device", "cpu", "--threads", "1"])


def files_on_disk(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*.safetensors")}


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("methods")
    zoo = tiny_zoo(root / "zoo")
    run = root / "run"
    train(zoo, run)
    torch.set_num_threads(n)
    return zoo, run


@pytest.fixture(scope="module")
def task_run(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tasks")
    zoo = tiny_zoo(root / "zoo", kind="tasks", architecture={"name": "cnn_s", "kwargs": {"in_chans": 1,
                   "num_classes": 2}}, num_seen_tasks=2, num_checkpoints=2, save=SaveConfig(lr=1e-3, every=1),
                   unseen_tasks=[314], collect_unseen=False, loss="focal")
    run = root / "run"
    train(zoo, run, "--set", "condition.task=gated", "--set", "condition.task_hidden=32")
    torch.set_num_threads(n)
    return zoo, run


# ---------------------------------------------------------------------------------------------- run.json, registry
def test_fit_writes_run_json_and_generate_dispatches_on_it(zoo_run, tmp_path, capsys):
    zoo, run = zoo_run
    rec = formats.read_run(run)
    assert rec["method"] == "rpg" and Path(rec["zoo"]) == zoo and rec["zoo_fingerprint"] == zoo_fingerprint(zoo)

    # a second method registered beside RPG: generate picks it from run.json, not from a flag
    @dataclass
    class Resample:
        """Returns the zoo's own checkpoints (the "original" row as a method)."""
        name: str = "resample"

        def fit(self, zoo_dir, run_dir, settings):
            formats.write_run(run_dir, self.name, zoo_dir, zoo_fingerprint(zoo_dir))
            return Path(run_dir) / "run.json"

        def info(self, run_dir):
            z = formats.read_zoo(formats.read_run(run_dir)["zoo"])
            return RunInfo(zoo={k: v for k, v in z.manifest.items() if k != "checkpoints"},
                           permutations=[r.permutation for r in z.refs], num_permutations=len(z.refs))

        def resolve(self, run_dir, options, device):
            return options

        def sample(self, run_dir, num, condition, options, seed, device):
            z = formats.read_zoo(formats.read_run(run_dir)["zoo"])
            refs = [r for r in z.refs if condition.permutation in (None, r.permutation)]
            g = torch.Generator().manual_seed(seed)
            picks = torch.randint(0, len(refs), (num,), generator=g).tolist()
            return [formats.GeneratedModel(io.load_state_dict(refs[i].path), refs[i].permutation) for i in picks]

    mp = pytest.MonkeyPatch()
    mp.setitem(METHODS, "resample", Resample)
    try:
        other = tmp_path / "other_run"
        assert train_cli.main(["--method", "resample", "--checkpoints", str(zoo), "--out", str(other),
                               "--threads", "1"]) == 0
        assert gen("--run", str(other), "--out", str(tmp_path / "g"), "--num", "2", "--conditions",
                   "permutation:3") == 0
    finally:
        mp.undo()
    m = formats.read_generated(tmp_path / "g", formats.read_zoo(zoo))
    assert m.manifest["method"] == "resample" and [r.permutation for r in m.refs] == [3, 3]
    sd, want = io.load_state_dict(m.refs[0].path), io.load_state_dict(formats.read_zoo(zoo).refs[3].path)
    assert all(torch.equal(sd[k], want[k]) for k in want)
    # the registry entry is gone again: run.json names a method this install does not know
    capsys.readouterr()
    assert gen("--run", str(other), "--out", str(tmp_path / "g2"), "--num", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    known = ", ".join(sorted(METHODS))
    assert len(err) == 1 and f"run.json: method 'resample': unknown method (known: {known})" in err[0]
    assert not (tmp_path / "g2").exists()


def test_unknown_method_on_train_is_one_line(zoo_run, tmp_path, capsys):
    zoo, _ = zoo_run
    assert train_cli.main(["--method", "nosuch", "--checkpoints", str(zoo), "--out", str(tmp_path / "r"),
                           "--threads", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --method 'nosuch'") and "rpg" in err[0]
    assert not (tmp_path / "r").exists()
    with pytest.raises(RPGInputError, match="unknown method"):
        get_method("nope")


# ---------------------------------------------------------------------------------------------- same weights as before
def old_generate(run: Path, num: int, seed: int, permutation: int | None = None, **kw) -> list[dict]:
    """The pre-seam `rpg generate` path: permutation ids drawn first, then sample_tokens with the same generator."""
    model, tok, meta = load_run(run)
    g = torch.Generator().manual_seed(seed)
    if permutation is not None:
        perm = torch.full((num,), permutation, dtype=torch.long)
    else:
        perm = torch.randint(0, meta["num_permutations"], (num,), generator=g)
    tokens = sample_tokens(model, num, permutation=perm, generator=g, **kw)
    return [tok.detokenize(tokens[i]) for i in range(num)]


@pytest.mark.parametrize("case", ["defaults", "steps_partial_permutation"])
def test_sample_equals_old_code_path_byte_for_byte(zoo_run, tmp_path, case):
    _, run = zoo_run
    if case == "defaults":
        old = old_generate(run, 3, seed=11)
        assert gen("--run", str(run), "--out", str(tmp_path / "g"), "--num", "3", "--seed", "11",
                   "--precision", "fp32") == 0
    else:
        old = old_generate(run, 2, seed=5, permutation=1, sampler="ddim", steps=3, mode="partial", chunk_size=7)
        assert gen("--run", str(run), "--out", str(tmp_path / "g"), "--num", "2", "--seed", "5", "--precision",
                   "fp32", "--sampler", "ddim", "--steps", "3", "--mode", "partial", "--chunk-size", "7",
                   "--permutation", "1") == 0
    refs = formats.read_generated(tmp_path / "g").refs
    assert len(refs) == len(old)
    for i, (ref, sd) in enumerate(zip(refs, old)):
        io.save_state_dict(tmp_path / f"old_{i}.safetensors", sd)
        assert ref.path.read_bytes() == (tmp_path / f"old_{i}.safetensors").read_bytes()
    man = formats.read_generated(tmp_path / "g").manifest
    if case == "defaults":   # the run's own settings, recorded as they ran
        assert (man["sampler"], man["steps"], man["precision"]) == ("ddim", 5, "fp32")
    else:
        assert (man["sampler"], man["steps"], man["mode"], man["chunk_size"]) == ("ddim", 3, "partial", 7)
        assert [r.permutation for r in refs] == [1, 1]


# ---------------------------------------------------------------------------------------------- conditions
def test_permutations_one_subfolder_each_and_rerun_leaves_no_stale_files(zoo_run, tmp_path):
    zoo, run = zoo_run
    out = tmp_path / "g"
    assert gen("--run", str(run), "--out", str(out), "--num", "2", "--seed", "3", "--conditions", "permutations") == 0
    states = sorted({r.permutation for r in formats.read_zoo(zoo).refs})
    gs = formats.read_generated(out, formats.read_zoo(zoo))
    want = {f"perm_{k:03d}/generated_{i:03d}.safetensors" for k in states for i in range(2)}
    assert files_on_disk(out) == want == {r.path.relative_to(out).as_posix() for r in gs.refs}
    for r in gs.refs:
        assert r.condition == f"perm_{r.permutation:03d}" and r.path.parent.name == r.condition and r.task is None
    m = gs.manifest
    assert m["conditions"] == "permutations" and m["method"] == "rpg" and m["architecture"] == gs.manifest[
        "architecture"] == formats.read_zoo(zoo).architecture and m["seed"] == 3
    # every condition is sampled with the same seed: the perm_002 subfolder is `--permutation 2` on its own
    assert gen("--run", str(run), "--out", str(tmp_path / "p2"), "--num", "2", "--seed", "3",
               "--permutation", "2") == 0
    single = formats.read_generated(tmp_path / "p2").refs
    assert [r.path.name for r in single] == ["generated_000.safetensors", "generated_001.safetensors"]
    assert [r.path.read_bytes() for r in single] == [
        (out / "perm_002" / r.path.name).read_bytes() for r in single]
    # rerun with fewer models and no conditions: only the new set remains
    assert gen("--run", str(run), "--out", str(out), "--num", "1", "--seed", "3") == 0
    assert files_on_disk(out) == {"generated_000.safetensors"}
    assert [p.name for p in out.iterdir() if p.is_dir()] == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]      # no temporary folders left over


def test_tasks_subfolders_store_int_lists(task_run, tmp_path, capsys):
    zoo, run = task_run
    out = tmp_path / "g"
    assert gen("--run", str(run), "--out", str(out), "--num", "2", "--conditions", "tasks:314,482") == 0
    gs = formats.read_generated(out, formats.read_zoo(zoo))
    assert files_on_disk(out) == {f"task_{t:04d}/generated_{i:03d}.safetensors" for t in (314, 482) for i in (0, 1)}
    raw = io.read_json(out / "manifest.json")["files"]
    assert [f["task"] for f in raw] == [task_bits(314)] * 2 + [task_bits(482)] * 2
    assert all(isinstance(b, int) and not isinstance(b, bool) for f in raw for b in f["task"])
    assert [r.group for r in gs.refs] == ["0100111010"] * 2 + ["0111100010"] * 2
    # the --task shortcut: one flat folder, the same weights as that task's subfolder
    assert gen("--run", str(run), "--out", str(tmp_path / "t"), "--num", "2", "--task", "0100111010") == 0
    flat = formats.read_generated(tmp_path / "t").refs
    assert [r.task for r in flat] == [task_bits(314)] * 2
    assert [r.path.read_bytes() for r in flat] == [(out / "task_0314" / r.path.name).read_bytes() for r in flat]
    # a task-conditioned generator needs a task; no task for a generator without one
    capsys.readouterr()
    for args in (["--conditions", "permutations"], []):
        assert gen("--run", str(run), "--out", str(tmp_path / "x"), "--num", "1", *args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "task-conditioned" in err[0]
    assert not (tmp_path / "x").exists()


def test_task_condition_on_a_run_without_tasks_is_refused(zoo_run, tmp_path):
    _, run = zoo_run
    with pytest.raises(RPGInputError, match="has no task condition"):
        generate(run, tmp_path / "g", 1, 0, "tasks:314")
    with pytest.raises(RPGInputError, match=r"--permutation 99: must be in 0\.\.3"):
        generate(run, tmp_path / "g", 1, 0, ConditionSpec("permutation", (99,)))
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("text, msg", [
    ("tasks:1023", "task id"), ("tasks:3,3", "listed twice"), ("tasks:a", "integer task ids"),
    ("task:0000000000", "labels every class the same"), ("task:01", "10 characters"),
    ("permutation:-1", "integer >= 0"), ("everything", "expected none"),
])
def test_condition_spec_errors(text, msg):
    with pytest.raises(RPGInputError, match=msg):
        ConditionSpec.parse(text)


def test_condition_spec_round_trips():
    for text in ("none", "permutations", "permutation:4", "tasks:314,482", "task:0100111010"):
        assert str(ConditionSpec.parse(text)) == text


# ---------------------------------------------------------------------------------------------- refused outputs
def test_out_holding_a_zoo_or_a_run_is_refused_and_untouched(zoo_run, tmp_path, capsys):
    zoo, run = zoo_run
    for target in (zoo, run):
        before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in target.rglob("*") if p.is_file()}
        capsys.readouterr()
        assert gen("--run", str(run), "--out", str(target), "--num", "1") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "refusing" in err[0]
        after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in target.rglob("*") if p.is_file()}
        assert after == before
    assert not [p for p in zoo.parent.iterdir() if p.name.startswith(".")]


def test_set_without_its_manifest_is_regenerated_but_loose_weights_are_not(zoo_run, tmp_path, capsys):
    """Snakemake deletes the manifest (the rule's output) before it reruns `generate`: that set is replaced
    whole; one foreign weight file beside the generated ones keeps the folder refused."""
    _, run = zoo_run
    out = tmp_path / "g"
    assert gen("--run", str(run), "--out", str(out), "--num", "2") == 0
    (out / "manifest.json").unlink()
    assert gen("--run", str(run), "--out", str(out), "--num", "1") == 0
    assert sorted(p.name for p in out.iterdir()) == ["generated_000.safetensors", "manifest.json"]
    (out / "manifest.json").unlink()
    (out / "mine.safetensors").write_bytes((out / "generated_000.safetensors").read_bytes())
    capsys.readouterr()
    assert gen("--run", str(run), "--out", str(out), "--num", "1") == 2
    assert "refusing" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["generated_000.safetensors", "mine.safetensors"]
    # one folder per condition: the same, one level down; a foreign weight file there keeps it refused
    per = tmp_path / "per"
    assert gen("--run", str(run), "--out", str(per), "--num", "1", "--conditions", "permutations") == 0
    files = sorted(p.relative_to(per) for p in per.rglob("*.safetensors"))
    (per / "manifest.json").unlink()
    assert gen("--run", str(run), "--out", str(per), "--num", "1", "--conditions", "permutations") == 0
    assert sorted(p.relative_to(per) for p in per.rglob("*.safetensors")) == files and len(files) > 1
    (per / "manifest.json").unlink()
    (per / files[0].parent / "mine.safetensors").write_bytes((per / files[0]).read_bytes())
    assert gen("--run", str(run), "--out", str(per), "--num", "1", "--conditions", "permutations") == 2


def test_conflicting_condition_flags(zoo_run, tmp_path, capsys):
    _, run = zoo_run
    assert gen("--run", str(run), "--out", str(tmp_path / "g"), "--permutation", "1", "--conditions",
               "permutations") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "give only one" in err[0]


def test_library_generate_records_resolved_options(zoo_run, tmp_path):
    _, run = zoo_run
    files = generate(run, tmp_path / "g", 1, 0, "permutation:0", SampleOptions(mode="full", precision="fp32"))
    m = io.read_json(tmp_path / "g" / "manifest.json")
    assert [Path(f) for f in files] == [tmp_path / "g" / "generated_000.safetensors"]
    assert (m["mode"], m["precision"], m["conditions"], m["num"]) == ("full", "fp32", "permutation:0", 1)
    assert os.access(tmp_path / "g", os.R_OK | os.X_OK)


def test_bad_sampling_options_fail_before_writing(zoo_run, tmp_path):
    _, run = zoo_run
    for opts, msg in ((SampleOptions(sampler="ddpm", steps=4), "DDPM sampler runs all"),
                      (SampleOptions(steps=0), "--steps 0"), (SampleOptions(chunk_size=0), "--chunk-size 0")):
        with pytest.raises(RPGInputError, match=msg):
            generate(run, tmp_path / "g", 1, 0, "none", opts)
    assert not tmp_path.joinpath("g").exists() and not list(tmp_path.iterdir())


def test_run_folder_from_before_run_json_is_an_rpg_run(zoo_run, tmp_path):
    _, run = zoo_run
    old = tmp_path / "old_run"
    shutil.copytree(run, old)
    (old / "run.json").unlink()
    assert gen("--run", str(old), "--out", str(tmp_path / "a"), "--num", "1", "--seed", "2") == 0
    assert gen("--run", str(run), "--out", str(tmp_path / "b"), "--num", "1", "--seed", "2") == 0
    a, b = (formats.read_generated(tmp_path / x).refs[0].path.read_bytes() for x in "ab")
    assert a == b and io.read_json(tmp_path / "a" / "manifest.json")["method"] == "rpg"


# ---------------------------------------------------------------------------------------------- what a method answers
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_answers_for_its_config(name):
    """What the workflow asks a method by name: its resolved config (the rerun trigger, as config.json records
    it), a record read back unchanged, its display name and the config keys of its training stages."""
    import json

    m = get_method(name)
    assert isinstance(m.display_name, str) and m.display_name
    cfg = m.resolved_config("mini", [])
    assert json.loads(json.dumps(cfg)) == cfg                     # JSON types, as config.json holds them
    assert m.normalised_config(cfg) == cfg
    for stage in m.stages:                                        # each stage has its steps and batch size
        section = cfg
        for key in stage.split("."):
            section = section[key]
        assert {"steps", "batch_size"} <= set(section)
    if not m.stages:                                              # no config class: preset and set are the config
        assert m.resolved_config("mini", ["a=1"]) == {"preset": "mini", "set": ["a=1"]}
        return
    stage = m.stages[0]
    changed = m.resolved_config("mini", [f"{stage}.steps=7"])
    assert changed != cfg and m.resolved_config("mini", [f"{stage}.steps=7"]) == changed
    with pytest.raises(RPGInputError):
        m.resolved_config("mini", [f"{stage}.stpes=7"])
    with pytest.raises(RPGInputError):
        m.resolved_config("no_such_preset", [])


def test_rpg_config_record_is_read_back_with_new_fields_filled():
    from rpg.generator.config import preset_config

    m = get_method("rpg")
    assert m.resolved_config("tiny", ["train.lr=0.002"]) == preset_config("tiny", {"train.lr": "0.002"}).to_dict()
    record = m.resolved_config("tiny", [])
    old = {**record, "train": {k: v for k, v in record["train"].items() if k != "num_workers"}}
    assert m.normalised_config(old) == record
    assert m.normalised_config({"not": "a config"}) == {"not": "a config"}


def test_capped_rpg_fit_saves_its_state_and_no_generator(zoo_run, tmp_path):
    from rpg.methods import FitSettings

    zoo, _ = zoo_run
    run = tmp_path / "run"
    settings = FitSettings(preset="tiny", overrides={**FAST, "train.save_every": "100"}, quiet=True, max_steps=2)
    get_method("rpg").fit(zoo, run, settings)
    assert not (run / "generator.safetensors").exists() and not (run / "run.json").exists()
    assert io.load_torch_file(run / "train_state.pt")["step"] == 2        # an uncapped fit resumes from here


def test_capped_baseline_fit_runs_every_stage_to_the_cap(zoo_run, tmp_path):
    """max_steps cuts every stage (p-diff: autoencoder, then diffusion); nothing is saved, no generator; the
    uncapped fit afterwards runs every stage in full."""
    from rpg.methods import FitSettings
    from rpg.methods.baseline import stage_losses

    zoo, _ = zoo_run
    run = tmp_path / "run"
    m = get_method("pdiff")
    overrides = {f"{s}.steps": "6" for s in m.stages}
    m.fit(zoo, run, FitSettings(preset="mini", overrides=overrides, quiet=True, max_steps=2))
    assert [len(stage_losses(run, s)) for s in ("autoencoder", "diffusion")] == [2, 2]
    assert not {"generator.safetensors", "run.json", "train_state.pt"} & {p.name for p in run.iterdir()}
    m.fit(zoo, run, FitSettings(preset="mini", overrides=overrides, quiet=True))
    assert [len(stage_losses(run, s)) for s in ("autoencoder", "diffusion")] == [6, 6]
    assert formats.read_run(run)["method"] == "pdiff"


def test_address_space_cap_fails_an_allocation_past_it_and_is_lifted_after():
    import resource

    from rpg.memory import address_space_cap

    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(MemoryError):
        with address_space_cap(256 * 2 ** 20):
            bytearray(2 ** 31)
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert len(bytearray(2 ** 28)) == 2 ** 28
