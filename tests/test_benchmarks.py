"""The benchmark scripts are not run by the suite (they measure, and take minutes), but they must keep
importing against the library: a renamed library function once left two of them broken unnoticed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_script_imports(path):
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)        # top-level imports only: every script guards its main()
    assert callable(getattr(module, "main", None)), f"{path.name}: no main()"


def test_profile_step_channels_last_variant_matches_the_denoiser():
    """The 2-D channels-last forward the profile compares is the same function as the library's denoiser."""
    import torch

    spec = importlib.util.spec_from_file_location("_bench_profile_step",
                                                  next(p for p in BENCHMARKS if p.stem == "profile_step"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from rpg.generator.config import DenoiserConfig
    from rpg.generator.denoiser import ConditionalUNet1D, fold_batchnorm

    torch.manual_seed(0)
    unet = ConditionalUNet1D(DenoiserConfig(channels=[1, 8, 16, 8, 1]), token_size=32, condition_dim=12)
    x, t, p = torch.randn(5, 32), torch.randint(0, 1000, (5,)), torch.randn(5, 12)
    unet.train()
    expected = unet(x, t, p)
    got = bench._forward_2d(unet, x, t, p)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    folded = fold_batchnorm(unet)
    torch.testing.assert_close(bench._forward_2d(folded, x, t, p), folded(x, t, p), rtol=1e-4, atol=1e-5)


def test_workflow_time_reads_real_snakemake_logs(tmp_path):
    """Per-job times come from the log Snakemake itself writes, and match the jobs a forced dry run lists, so a
    target's cost is attributable (a change to Snakemake's log layout fails here, not silently in a timing)."""
    import subprocess
    import sys

    spec = importlib.util.spec_from_file_location("_bench_workflow_time",
                                                  next(p for p in BENCHMARKS if p.stem == "workflow_time"))
    wt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wt)
    (tmp_path / "Snakefile").write_text(
        'rule make:\n    output: "a/{n}.txt"\n    shell: "echo {wildcards.n} > {output}"\n\n'
        'rule join:\n    input: "a/1.txt", "a/2.txt"\n    output: "b.txt"\n    shell: "cat {input} > {output}"\n'
    )
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "b.txt"], cwd=tmp_path,
                   check=True, capture_output=True)
    [log] = (tmp_path / ".snakemake" / "log").glob("*.snakemake.log")
    jobs = wt.job_seconds(log)
    assert sorted((rule, out) for out, (rule, _, _) in jobs.items()) == [
        ("join", "b.txt"), ("make", "a/1.txt"), ("make", "a/2.txt")]
    assert all(sec >= 0 for _, sec, _ in jobs.values())
    assert sorted(wt.target_jobs(tmp_path, "a/2.txt")) == [("make", "a/2.txt")]
    assert sorted(o for _, o in wt.target_jobs(tmp_path, "b.txt")) == sorted(jobs)


def test_memory_study_fits_each_method_under_its_cap(tmp_path):
    """`rpg memory-study` (rule fig8): each point is the method's own fit in a child process; RPG-Base's weights
    alone pass a 0.3 GiB cap (recorded as OOM, the larger size skipped without running), SKDE30's mini preset
    fits; the study reads back as rpg-memory/1 and its scratch zoos and runs are gone."""
    import json
    import subprocess
    import sys

    from rpg import formats

    out = tmp_path / "fig8.json"
    proc = subprocess.run([sys.executable, "-m", "rpg", "memory-study", "--out", str(out), "--sizes",
                           "cnn_m_mini,mobilenetv3_mini", "--methods", "rpg:base,skde30:mini", "--steps", "1",
                           "--cap-gib", "0.3", "--threads", "1"], capture_output=True, text=True, check=True)
    study = formats.read_memory_study(out)
    got = {(r["method"], r["size"]): r for r in study["records"]}
    assert [got[("rpg", s)]["status"] for s in ("cnn_m_mini", "mobilenetv3_mini")] == ["oom", "skipped"]
    assert got[("rpg", "cnn_m_mini")]["failed_in"] == "fit"
    for size in ("cnn_m_mini", "mobilenetv3_mini"):
        r = got[("skde30", size)]
        assert r["status"] == "ok" and r["steps"] == 1 and 0 < r["peak_bytes"] < study["cap_bytes"]
        assert r["params"] > 0
    assert study["largest_fitting_params"] == {"skde30:mini": got[("skde30", "mobilenetv3_mini")]["params"]}
    assert json.loads(proc.stdout[proc.stdout.index("{\n"):])["rpg_ratio"] == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig8.csv", "fig8.json", "fig8.png"]


def test_memory_study_refuses_unknown_sizes_and_methods(tmp_path):
    from rpg.cli.memory_study import main

    assert main(["--out", str(tmp_path / "a.json"), "--sizes", "nope"]) == 2
    assert main(["--out", str(tmp_path / "a.json"), "--methods", "nope:mini"]) == 2
    assert not list(tmp_path.iterdir())
