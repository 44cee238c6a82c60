"""The Tab. 7 / Tab. 13 / Tab. 16 / Fig. 9 targets in the workflow: config entries only, sampling Table 1's
generators (`snakemake -n`, mini and paper scale)."""

from __future__ import annotations

import re

import yaml
from test_workflow import PAPER_OVERLAY, REPO, TABLE1_IDS, job_counts, shell_commands, snakemake, workdir_with

MINI = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
TARGETS = ("table7", "table13", "table16", "fig9")
ROWS = sorted({r for t in TARGETS for r in MINI["tables"][t]["rows"]})


def _by_row(cmds: list[str], rule: str, flag: str, scale: str) -> dict[str, str]:
    """{row id: its command} for `python -m rpg RULE` commands, the row read from FLAG's path."""
    out = {}
    for c in cmds:
        if c.startswith(f"python -m rpg {rule} "):
            m = re.search(rf"{flag} results/{scale}/(?:generated|metrics)/(\w+)", c)
            out[m.group(1)] = c
    return out


def _check_commands(cmds: list[str], scale: str, chunk: int) -> None:
    gen = _by_row(cmds, "generate", "--out", scale)
    ev = _by_row(cmds, "evaluate", "--out", scale)
    assert sorted(gen) == ROWS and sorted(ev) == ROWS
    for row, cmd in gen.items():
        spec = MINI["variants"][row]
        assert f"--run results/{scale}/runs/{spec['generator']} " in cmd       # Table 1's generator, not its own
        sample = spec.get("sample", {})
        if "steps" in sample:
            assert f"--sampler ddim --steps {sample['steps']} " in cmd
        if "mode" in sample:
            assert f"--mode {sample['mode']}" in cmd and "--num 1 " in cmd
        assert ("--chunk-size" in cmd) == (sample.get("mode") == "partial")
        if sample.get("mode") == "partial":
            assert f"--chunk-size {chunk}" in cmd
    # the IoU similarity and noise baseline only where Tab. 16 / Fig. 9 need them
    assert sorted(r for r, c in ev.items() if "--similarity" in c) == sorted(MINI["tables"]["table16"]["rows"])
    for t in TARGETS:
        assert any(c.startswith(f"python -m rpg table {t} ") and f"results/{scale}/{t}.csv" in c for c in cmds)


def test_targets_sample_table1_generators_only(tmp_path):
    """With Table 1's zoos and generators in place, the four targets schedule sampling and evaluation only."""
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    for exp in TABLE1_IDS:                        # present = up to date (reuse_artifacts: pinned inputs)
        for path in (f"zoos/{exp}/manifest.json", f"runs/{exp}/generator.safetensors"):
            (work / "results" / "mini" / path).parent.mkdir(parents=True, exist_ok=True)
            (work / "results" / "mini" / path).write_text("{}")
    out = snakemake(work, *(f"results/{t}.csv" for t in TARGETS), "-n").stdout
    assert job_counts(out) == {"generate": len(ROWS), "evaluate": len(ROWS), "table": 4, "publish_table": 4}
    _check_commands(shell_commands(out), "mini", chunk=32)


def test_paper_scale_targets_dry_run(tmp_path):
    """Paper overlay: the same rows at paper scale; training only Table 1's experiments; 256-token chunks."""
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    out = snakemake(work, *(f"results/paper/{t}.csv" for t in TARGETS), "--configfile", PAPER_OVERLAY, "-n").stdout
    n = len(ROWS)
    assert job_counts(out) == {"collect": 7, "train": 7, "generate": n, "evaluate": n, "table": 4}
    cmds = shell_commands(out)
    trained = {re.search(r"--out results/paper/runs/(\w+)", c).group(1) for c in cmds if " rpg train " in c}
    assert trained == set(TABLE1_IDS)
    _check_commands(cmds, "paper", chunk=256)
    assert all("--device cuda" in c for c in cmds if c.startswith("python -m rpg generate"))

