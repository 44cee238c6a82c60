"""Reliability under hostile-but-fair use: stale resumes, kill -9, unchecked numbers, non-finite
training, file modes, one-line errors instead of tracebacks, concurrent runs, thread counts."""

import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from rpg import formats, io
from rpg.errors import RPGInputError
from rpg.generator import training
from rpg.generator.config import preset_config
from rpg.generator.schedulers import make_scheduler
from rpg.generator.tokenizer import ParamTokenizer, check_compatible
from rpg.generator.training import train
from rpg.methods.base import FitSettings
from rpg.methods.rpg import RPGMethod
from rpg.zoos.architectures import load_weights_strict
from rpg.zoos.collection import MANIFEST_FORMAT, ZooManifest

TORCH_THREADS = 1
FAST = {"tokenizer.token_size": "64", "recurrent.d_model": "[64, 64]", "recurrent.d_state": "16",
        "recurrent.headdim": "32", "denoiser.channels": "[1, 8, 16, 8, 1]", "diffusion.sampler": "ddim",
        "diffusion.sampling_steps": "10", "train.steps": "6", "train.batch_size": "4", "train.save_every": "3",
        "train.log_every": "2", "train.lr": "1e-3", "diffusion.diffusion_batch": "16"}
ROOT = Path(__file__).resolve().parents[1]


def small_net():
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))


def make_zoo(folder: Path, n: int = 5, seed: int = 0, edit=None) -> Path:
    torch.manual_seed(seed)
    net = small_net()
    for i in range(n):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.01 * torch.randn_like(p))
        sd = net.state_dict()
        if edit is not None:
            sd = edit(dict(sd))
        io.save_state_dict(folder / f"ckpt_{i:02d}.safetensors", sd)
    return folder


@pytest.fixture
def zoo(tmp_path):
    return make_zoo(tmp_path / "zoo")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("rel")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(fast_cfg(), make_zoo(base / "zoo"), base / "run", quiet=True)
    finally:
        torch.set_num_threads(n)
    return base / "run"


def fast_cfg(**extra):
    return preset_config("tiny", {**FAST, **extra})


def sets(**extra):
    return [x for k, v in {**FAST, **extra}.items() for x in ("--set", f"{k}={v}")]


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "rpg", *map(str, args)], capture_output=True, text=True, env=env(),
                          **kw)


def rpg_main(*args):
    """`rpg ...` in this process (the same entry point and error handling as the console script, without
    paying a Python + torch start-up per case); stderr is captured."""
    import contextlib
    import io as _io

    from rpg.__main__ import main
    err = _io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(_io.StringIO()):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:   # the unfixed CLI let argparse exit
            rc = e.code
    return subprocess.CompletedProcess(args, rc, "", err.getvalue())


def one_line_error(r, *names):
    """rc 2, exactly one stderr line starting with `error:` and naming every one of `names`."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr[-3000:]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def same_bytes(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


# ------------------------------------------------------------------------------------ 1. stale resumes
def test_finished_run_is_trained_again_not_resumed(zoo, tmp_path):
    run, fresh = tmp_path / "run", tmp_path / "fresh"
    cfg = fast_cfg()
    train(cfg, zoo, fresh, quiet=True)
    train(cfg, zoo, run, quiet=True)
    # make the finished state distinguishable: were it "resumed", these zero weights would be saved again
    st = torch.load(run / "train_state.pt", weights_only=True)
    st["model"] = {k: torch.zeros_like(v) for k, v in st["model"].items()}
    torch.save(st, run / "train_state.pt")
    train(cfg, zoo, run, quiet=True)
    assert same_bytes(run / "generator.safetensors", fresh / "generator.safetensors")


def test_changed_zoo_fails_or_starts_over(zoo, tmp_path):
    run, fresh = tmp_path / "run", tmp_path / "fresh"
    cfg = fast_cfg()
    train(cfg, zoo, run, max_steps=3, quiet=True)                  # unfinished run on the old zoo
    shutil.rmtree(zoo)
    make_zoo(zoo, seed=1)                                          # re-collected: same names, other weights
    with pytest.raises(RPGInputError, match="fingerprint changed"):
        train(cfg, zoo, run, quiet=True)
    assert not (run / "generator.safetensors").exists()
    train(cfg, zoo, run, quiet=True, restart_on_change=True)
    train(cfg, zoo, fresh, quiet=True)
    assert same_bytes(run / "generator.safetensors", fresh / "generator.safetensors")
    assert same_bytes(run / "tokenizer.safetensors", fresh / "tokenizer.safetensors")


def test_zoo_fingerprint_sees_content_at_same_size_and_mtime(zoo):
    before = formats.read_zoo(zoo).fingerprint()
    f = sorted(zoo.glob("*.safetensors"))[0]
    st = f.stat()
    sd = io.load_state_dict(f)
    sd["0.weight"] = sd["0.weight"] + 1.0
    io.save_state_dict(f, sd)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size
    assert formats.read_zoo(zoo).fingerprint() != before


def test_run_json_state_and_meta_record_zoo_and_threads(zoo, tmp_path):
    run = tmp_path / "run"
    RPGMethod().fit(zoo, run, FitSettings(config_file=None, preset="tiny", overrides=dict(FAST), quiet=True))
    rj = formats.read_run(run)
    st = torch.load(run / "train_state.pt", weights_only=True)
    meta = io.read_json(run / "meta.json")
    assert rj["format"] == formats.RUN_FORMAT and rj["method"] == "rpg" and Path(rj["zoo"]) == zoo
    assert rj["zoo_fingerprint"] == st["zoo_fingerprint"] == formats.read_zoo(zoo).fingerprint()
    assert st["format"] == training.STATE_FORMAT
    assert meta["threads"] == st["threads"] == torch.get_num_threads()


# Loaded by the child through PYTHONPATH: after the child has put its Nth training state in place (os.replace of
# train_state.pt, save_every steps apart), it marks the file GATE_MARK and waits to be killed, so where each
# interruption lands depends on the step count alone, never on how fast this machine trains.
GATE = """
import os, time
_replace, _left = os.replace, int(os.environ["RPG_TEST_GATE_SAVES"])
def _gated(src, dst, *a, **k):
    global _left
    _replace(src, dst, *a, **k)
    if os.fspath(dst).endswith("train_state.pt"):
        _left -= 1
        if _left == 0:
            open(os.environ["RPG_TEST_GATE_MARK"], "w").close()
            time.sleep(3600)
os.replace = _gated
"""


def test_sigkill_three_times_then_finish_is_byte_identical(zoo, tmp_path):
    extra = {"train.steps": "60", "train.save_every": "3", "train.log_every": "1"}
    args = ["train", "--checkpoints", zoo, "--preset", "tiny", "--device", "cpu", "--threads", "1", "--quiet",
            *sets(**extra)]
    train(fast_cfg(**extra), zoo, tmp_path / "ref", quiet=True)    # uninterrupted, in this process (1 thread)
    run = tmp_path / "run"
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "sitecustomize.py").write_text(GATE)
    mark = tmp_path / "gated"
    step = 0
    for saves in random.Random(9).sample(range(1, 6), 3):    # each child saves 1-5 more states, then is killed
        mark.unlink(missing_ok=True)
        child_env = {**env(), "PYTHONPATH": f"{gate}{os.pathsep}{ROOT}", "RPG_TEST_GATE_SAVES": str(saves),
                     "RPG_TEST_GATE_MARK": str(mark)}
        p = subprocess.Popen([sys.executable, "-m", "rpg", *map(str, args), "--out", str(run)], env=child_env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not mark.exists() and p.poll() is None:
            time.sleep(0.01)
        assert p.poll() is None, f"the child exited ({p.returncode}) before its gate"
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert not (run / "generator.safetensors").exists()
        step += 3 * saves
        assert torch.load(run / "train_state.pt", weights_only=True)["step"] == step
    r = cli(*[a for a in args if a != "--quiet"], "--out", run)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming" in r.stdout
    assert same_bytes(run / "generator.safetensors", tmp_path / "ref" / "generator.safetensors")


def test_a_resume_follows_the_recorded_thread_count(zoo, tmp_path):
    """A run saved with 2 threads and resumed with `--threads 1` finishes with the bytes of an uninterrupted 2-thread
    run (CPU kernels reduce in another order at another thread count)."""
    extra = {"train.steps": "30", "train.save_every": "3"}
    args = ["train", "--checkpoints", zoo, "--preset", "tiny", "--device", "cpu", "--quiet", *sets(**extra)]
    ref = cli(*args, "--threads", "2", "--out", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-2000:]
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "sitecustomize.py").write_text(GATE)
    mark, run = tmp_path / "gated", tmp_path / "run"
    child_env = {**env(), "PYTHONPATH": f"{gate}{os.pathsep}{ROOT}", "RPG_TEST_GATE_SAVES": "4",
                 "RPG_TEST_GATE_MARK": str(mark)}
    p = subprocess.Popen([sys.executable, "-m", "rpg", *map(str, args), "--threads", "2", "--out", str(run)],
                         env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not mark.exists() and p.poll() is None:
        time.sleep(0.01)
    assert p.poll() is None, f"the child exited ({p.returncode}) before its gate"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert torch.load(run / "train_state.pt", weights_only=True)["step"] == 12
    r = cli(*args, "--threads", "1", "--out", run)
    assert r.returncode == 0, r.stderr[-2000:]
    assert io.read_json(run / "meta.json")["threads"] == 2
    assert same_bytes(run / "generator.safetensors", tmp_path / "ref" / "generator.safetensors")


# ------------------------------------------------------------------------------------ 2. generate numbers
@pytest.mark.parametrize("opts, option", [
    (["--chunk-size", "-1"], "--chunk-size"),
    (["--chunk-size", "0"], "--chunk-size"),
    (["--steps", "0"], "--steps"),
    (["--steps", "-1"], "--steps"),
    (["--steps", "5000"], "--steps"),
    (["--sampler", "ddpm", "--steps", "5"], "--steps"),
    (["--num", "0"], "--num"),
    (["--threads", "0"], "--threads"),
    (["--permutation", "-1"], "--permutation"),
])
def test_generate_rejects_bad_numbers_before_writing(trained_run, tmp_path, opts, option):
    out = tmp_path / "gen"
    r = rpg_main("generate", "--run", trained_run, "--out", out, "--num", "2", *opts)
    one_line_error(r, option)
    assert not out.exists()


def test_generate_manifest_records_what_ran(trained_run, tmp_path):
    from rpg.generator.sampling import load_run
    out = tmp_path / "gen"
    r = rpg_main("generate", "--run", trained_run, "--out", out, "--num", "2", "--mode", "partial",
                 "--chunk-size", "5", "--threads", "1")
    assert r.returncode == 0, r.stderr
    man = io.read_json(out / "manifest.json")
    dc = load_run(trained_run)[0].cfg.diffusion
    assert (man["sampler"], man["steps"], man["mode"], man["chunk_size"]) == (dc.sampler, dc.sampling_steps,
                                                                              "partial", 5)


def test_ddim_eta_must_not_be_negative():
    with pytest.raises(RPGInputError, match="diffusion.ddim_eta"):
        fast_cfg(**{"diffusion.ddim_eta": "-1"})
    with pytest.raises(RPGInputError, match="ddim_eta"):
        make_scheduler("ddim", steps=10, eta=-1.0)


# ------------------------------------------------------------------------------------ 3. non-finite training
def test_zero_running_var_fails_at_tokenisation(tmp_path):
    def zero_var(sd):
        sd["1.running_var"] = torch.zeros_like(sd["1.running_var"])
        return sd
    zoo = make_zoo(tmp_path / "zoo", edit=zero_var)
    out = tmp_path / "run"
    r = cli("train", "--checkpoints", zoo, "--out", out, "--preset", "tiny", "--quiet", "--threads", "1", *sets())
    one_line_error(r, "1.running_var", "ckpt_00.safetensors")
    assert not (out / "generator.safetensors").exists()


def test_non_finite_loss_fails_naming_the_step(zoo, tmp_path):
    out = tmp_path / "run"
    r = rpg_main("train", "--checkpoints", zoo, "--out", out, "--preset", "tiny", "--quiet", "--threads", "1",
                 *sets(**{"train.lr": "1e30"}))     # the first update overflows the weights: NaN from step 2
    line = one_line_error(r, "at step", out)
    assert "nan" in line.lower() or "inf" in line.lower()
    assert not (out / "generator.safetensors").exists()


# ------------------------------------------------------------------------------------ 5. file modes
def test_outputs_are_0644_under_umask_022(tmp_path):
    old = os.umask(0o022)
    try:
        io.save_state_dict(tmp_path / "w.safetensors", small_net().state_dict())
        tok = ParamTokenizer.fit([("a", small_net().state_dict()), ("b", small_net().state_dict())], 16)
        tok.save(tmp_path / "tok.safetensors")
        io.write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    for name in ("w.safetensors", "tok.safetensors", "x.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


# ------------------------------------------------------------------------------------ 6. one line, not a traceback
class _Payload:
    def __reduce__(self):
        return (print, ("this pickle runs code when loaded",))


def _corrupt(case: str, run: Path, zoo: Path, tmp_path: Path):
    """Set up one hostile case; returns (CLI args, names the error line must contain)."""
    gen = ["generate", "--run", run, "--out", tmp_path / "gen", "--num", "2", "--threads", "1"]
    trn = ["train", "--checkpoints", zoo, "--out", run, "--preset", "tiny", "--quiet", "--threads", "1", *sets()]
    if case == "state_malicious":
        torch.save({"step": 1, "x": _Payload()}, run / "train_state.pt")
        return trn, ["train_state.pt"]
    if case == "state_garbage":
        (run / "train_state.pt").write_bytes(os.urandom(300))
        return trn, ["train_state.pt"]
    if case == "state_not_a_dict":
        torch.save([torch.zeros(2)], run / "train_state.pt")
        return trn, ["train_state.pt"]
    if case == "train_out_is_file":
        f = tmp_path / "afile"
        f.write_text("x")
        return ["train", "--checkpoints", zoo, "--out", f, "--preset", "tiny", "--quiet", *sets()], ["--out", f]
    if case == "generate_out_is_file":
        f = tmp_path / "afile"
        f.write_text("x")
        return gen[:3] + ["--out", f] + gen[5:], ["--out", f]
    if case == "scheduler_ddpm_steps":
        return gen + ["--sampler", "ddpm", "--steps", "5"], ["--steps"]
    if case == "huge_seed":
        return gen + ["--seed", str(2 ** 70)], ["--seed"]
    if case == "huge_train_seed":
        return trn + ["--set", f"train.seed={2 ** 70}"], ["train.seed"]
    if case == "meta_missing_key":
        meta = io.read_json(run / "meta.json")
        del meta["num_permutations"]
        io.write_json(run / "meta.json", meta)
        return gen, ["meta.json", "num_permutations"]
    if case == "meta_huge_permutations":
        meta = io.read_json(run / "meta.json")
        meta["num_permutations"] = 10 ** 15
        io.write_json(run / "meta.json", meta)
        return gen, ["meta.json", "num_permutations"]
    if case == "tokenizer_garbage":
        (run / "tokenizer.safetensors").write_bytes(os.urandom(300))
        return gen, ["tokenizer.safetensors"]
    if case == "tokenizer_foreign":
        io.save_state_dict(run / "tokenizer.safetensors", small_net().state_dict())
        return gen, ["tokenizer.safetensors"]
    if case == "zoo_permutation_huge":
        header = {"format": MANIFEST_FORMAT, "config": {}}
        man = ZooManifest(zoo, header)
        for i, f in enumerate(sorted(zoo.glob("*.safetensors"))):
            man.add({"file": f.name, "permutation": 10 ** 15 if i == 2 else 0}, fixed_permutation=True)
        man.publish()
        return trn, ["manifest.json", "permutation"]
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "state_malicious", "state_garbage", "state_not_a_dict", "train_out_is_file", "generate_out_is_file",
    "scheduler_ddpm_steps", "huge_seed", "huge_train_seed", "meta_missing_key", "meta_huge_permutations",
    "tokenizer_garbage", "tokenizer_foreign", "zoo_permutation_huge"])
def test_hostile_input_is_one_line_exit_2(trained_run, zoo, tmp_path, case):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    args, names = _corrupt(case, run, zoo, tmp_path)
    r = rpg_main(*args)
    one_line_error(r, *names)
    assert not (tmp_path / "gen" / "manifest.json").exists()
    assert "this pickle runs code" not in r.stdout + r.stderr


def test_hostile_state_as_a_real_process(trained_run, zoo, tmp_path):
    """One case end to end through a real process: the exit status and stderr a shell or Snakemake sees."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    args, names = _corrupt("state_malicious", run, zoo, tmp_path)
    r = cli(*args)
    one_line_error(r, *names)
    assert "this pickle runs code" not in r.stdout + r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_generate_read_only_out_fails_before_sampling(trained_run, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = cli("generate", "--run", trained_run, "--out", ro / "gen", "--num", "2")
    finally:
        ro.chmod(0o755)
    one_line_error(r, "--out", ro)


# ------------------------------------------------------------------------------------ 7. concurrent trainings
def test_second_training_into_the_same_out_fails_cleanly(zoo, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--checkpoints", zoo, "--out", run, "--preset", "tiny", "--device", "cpu", "--threads", "1",
            "--quiet", *sets(**{"train.steps": "2000", "train.save_every": "1000"})]
    first = subprocess.Popen([sys.executable, "-m", "rpg", *map(str, args)], env=env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # meta.json is written under the lock; log.jsonl (after train.log_every steps) means training for sure
        while not ((run / "meta.json").exists() or (run / "log.jsonl").exists()) and first.poll() is None:
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read()
        second = cli(*args)
        one_line_error(second, run, "another")
        assert first.poll() is None                                          # undisturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stderr.close()


# ------------------------------------------------------------------------------------ 8. smaller
def test_pickle_refusal_says_why_in_our_words(tmp_path):
    f = tmp_path / "ckpt.pt"
    f.write_bytes(pickle.dumps({"w": nn.Linear(2, 2)}))
    with pytest.raises(RPGInputError) as e:
        io.load_state_dict(f)
    msg = str(e.value)
    assert str(f) in msg and "arbitrary code" in msg and "\n" not in msg


def test_shape_mismatch_is_reported_before_key_order():
    ref = small_net().state_dict()
    sd = dict(reversed(list(ref.items())))
    sd["3.bias"] = torch.zeros(5)
    with pytest.raises(RPGInputError, match=r"'3\.bias' has shape \(5,\)"):
        check_compatible("a", ref, "b", sd)
    sd.pop("0.bias")
    with pytest.raises(RPGInputError) as e:
        load_weights_strict(small_net(), sd, "b.safetensors")
    msg = str(e.value)
    assert msg.index("shape") < msg.index("missing")


SAVE_IN_CHILD = """
import sys, torch
from rpg import io
sd = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3, dtype=torch.float16),
      "n": torch.zeros(2, dtype=torch.int64)}
io.save_state_dict(sys.argv[1], sd, metadata={k: k * 2 for k in "uvwxyz"})
"""


def test_a_saved_checkpoint_has_the_same_bytes_in_every_process(tmp_path):
    """safetensors orders `__metadata__` by a per-process random hash; rpg.io must not, or no checkpoint's sha256
    would be reproducible (six metadata keys: 720 orders)."""
    paths = [tmp_path / f"sd{i}.safetensors" for i in range(3)]
    for p in paths:
        subprocess.run([sys.executable, "-c", SAVE_IN_CHILD, str(p)], check=True, env=env())
    assert len({p.read_bytes() for p in paths}) == 1
    sd = io.load_state_dict(paths[0])
    assert list(sd) == ["w", "b", "n"] and torch.equal(sd["w"], torch.arange(6.0).reshape(2, 3))
    from safetensors import safe_open
    with safe_open(str(paths[0]), "pt") as f:
        assert {k: v for k, v in f.metadata().items() if len(k) == 1} == {k: k * 2 for k in "uvwxyz"}
