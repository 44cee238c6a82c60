"""The generation cost `rpg generate` records for Tab. 7 / Tab. 13 (rpg.measure, rpg.methods.generate): peak
memory of the sampling alone, wall time per model, the machine; and `rpg evaluate` carrying it into the
metrics JSON's `generation` block."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from rpg import formats, io, measure
from rpg.cli import generate as generate_cli
from rpg.cli import train as train_cli
from rpg.evaluation.evaluate import evaluate_zoo
from rpg.methods import METHODS, RunInfo, generate
from rpg.methods.rpg import zoo_fingerprint

TORCH_THREADS = 1
MIB = 2 ** 20
linux = pytest.mark.skipif(platform.system() != "Linux", reason="VmHWM reset needs Linux /proc")


def _touch(mib: int) -> torch.Tensor:
    return torch.ones(mib * MIB // 4)        # float32, every page written: resident


@linux
def test_cpu_peak_is_this_block_not_an_earlier_higher_peak():
    big = _touch(256)
    del big                                  # an earlier, higher peak of the process
    with measure.measure("cpu") as usage:
        block = _touch(64)
        del block
    assert usage.memory == measure.RSS_DELTA
    # the block's 64 MiB, not the 256 MiB peak before it, and not zero (it was freed before the block ended)
    assert 60 * MIB <= usage.peak_bytes < 200 * MIB
    assert usage.wall_s > 0


@pytest.fixture(scope="module")
def tiny(digits_zoo, tmp_path_factory):
    """The suite's digits zoo (a session fixture) and a 2-step RPG run on it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("cost") / "run"
    fast = {"tokenizer.token_size": "64", "recurrent.d_model": "[64, 64]", "recurrent.d_state": "16",
            "recurrent.headdim": "32", "denoiser.channels": "[1, 8, 16, 8, 1]", "diffusion.sampler": "ddim",
            "diffusion.sampling_steps": "5", "train.steps": "2", "train.batch_size": "4", "train.save_every": "2",
            "diffusion.diffusion_batch": "16"}
    sets = [x for k, v in fast.items() for x in ("--set", f"{k}={v}")]
    assert train_cli.main(["--checkpoints", str(digits_zoo), "--out", str(run), "--preset", "tiny", "--device",
                           "cpu", "--threads", "1", "--quiet", *sets]) == 0
    torch.set_num_threads(n)
    return digits_zoo, run


def test_rpg_generate_records_cost_and_evaluate_carries_it(tiny, tmp_path):
    zoo, run = tiny
    out = tmp_path / "gen"
    assert generate_cli.main(["--run", str(run), "--out", str(out), "--num", "3", "--mode", "partial",
                              "--chunk-size", "5", "--device", "cpu", "--threads", "1"]) == 0
    m = io.read_json(out / formats.MANIFEST)
    cost = m["cost"]
    assert cost["models"] == 3 and cost["device"] == "cpu" and cost["peak_memory_bytes"] >= 0
    assert cost["per_model_s"] == pytest.approx(cost["sample_s"] / 3, abs=1e-3) and cost["sample_s"] > 0
    assert cost["memory"] == measure.RSS_DELTA and "cores" in cost["machine"]
    res = evaluate_zoo(zoo, out, device="cpu", progress=False)
    assert res["generation"]["cost"] == cost
    assert (res["generation"]["chunk_size"], res["generation"]["num"], res["generation"]["mode"]) == (5, 3, "partial")


@linux
def test_generate_measures_the_sampling_of_any_method(tiny, tmp_path):
    """The cost is measured around Method.sample, so it is every method's: a method that holds 96 MiB while
    sampling records at least that, and its sampling time."""
    zoo, _ = tiny

    class Hungry:
        name = "hungry"

        def fit(self, zoo_dir, run_dir, settings):
            formats.write_run(run_dir, self.name, zoo_dir, zoo_fingerprint(zoo_dir))
            return Path(run_dir) / "run.json"

        def info(self, run_dir):
            z = formats.read_zoo(formats.read_run(run_dir)["zoo"])
            return RunInfo(zoo={k: v for k, v in z.manifest.items() if k != "checkpoints"}, permutations=[])

        def resolve(self, run_dir, options, device):
            return options

        def sample(self, run_dir, num, condition, options, seed, device):
            scratch = _touch(96)
            sd = io.load_state_dict(formats.read_zoo(formats.read_run(run_dir)["zoo"]).refs[0].path)
            del scratch
            return [formats.GeneratedModel(sd) for _ in range(num)]

    mp = pytest.MonkeyPatch()
    mp.setitem(METHODS, "hungry", Hungry)
    try:
        run = tmp_path / "run"
        Hungry().fit(zoo, run, None)
        generate(run, tmp_path / "g", 2, 0)
    finally:
        mp.undo()
    cost = io.read_json(tmp_path / "g" / formats.MANIFEST)["cost"]
    assert cost["memory"] == measure.RSS_DELTA and cost["models"] == 2
    assert cost["peak_memory_bytes"] >= 90 * MIB
