"""The ablation targets (paper Tab. 4, 5, 6, Fig. 4, Fig. 7) in the workflow: what each schedules (dry runs), at
mini and paper scale.

A row whose setting is the default is Table 1's experiment (trained once, shared); a zoo is collected once; the
table rule hands the builders each row's run folder; Fig. 7 is a benchmark rule (rpg memory), not a table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from test_workflow import PAPER_OVERLAY, TABLE1_IDS, job_counts, overlay, shell_commands, snakemake, workdir_with

REPO = Path(__file__).resolve().parents[1]
MINI = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
PAPER = overlay(MINI, PAPER_OVERLAY)
TABLES = ["table4a", "table4b", "fig4", "table5", "table6"]
TARGETS = [f"results/{t}.csv" for t in TABLES] + ["results/fig7.json"]


def expected_jobs(cfg: dict, tables: list[str], benches: list[str]) -> dict[str, int]:
    rows = {r for t in tables for r in cfg["tables"][t]["rows"]}
    zoos = {cfg["experiments"][r]["zoo"] for r in rows} | {cfg["benchmarks"][b]["zoo"] for b in benches}
    counts = {"collect": len(zoos), "train": len(rows), "generate": len(rows), "evaluate": len(rows)}
    if tables:
        counts.update(table=len(tables), publish_table=len(tables))
    if benches:
        counts.update(memory=len(benches), publish_memory=len(benches))
    return counts


def trained(cmds: list[str], scale: str) -> list[str]:
    return [re.search(rf"--out results/{scale}/runs/(\w+) ", c).group(1) for c in cmds if " train " in c]


def test_every_ablation_target_together_trains_each_generator_once(tmp_path):
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    out = snakemake(work, *TARGETS, "-n").stdout
    assert job_counts(out) == expected_jobs(MINI, TABLES, ["fig7"])
    cmds = shell_commands(out)
    runs = trained(cmds, "mini")
    assert len(runs) == len(set(runs))
    # one default row shared by Tab. 4a/4b/5 and Fig. 4 at the ablations' step count; Tab. 6 trains at Table 1's
    # 1,500 steps, so its d = 256 rows are Table 1's own runs (the same output folders: trained once for both);
    # the paper-only rows (ViT-B at 8192, the 2048 column) are not mini rows
    assert {"abl_vit_tiny", "vit_tiny", "vit_base"} <= set(runs)
    assert not {"tok8k_vit_base", "tok2k_vit_tiny"} & set(runs)
    assert len([c for c in cmds if "rpg collect" in c]) == len({MINI["experiments"][r]["zoo"] for r in runs})
    # the table rule hands every builder its rows' run folders, in row order
    for table in TABLES:
        (cmd,) = [c for c in cmds if c.startswith(f"python -m rpg table {table} ")]
        folders = re.search(r"--runs (.*?) --", cmd).group(1).split()
        assert folders == [f"results/mini/runs/{r}" for r in MINI["tables"][table]["rows"]]
    (memory,) = [c for c in cmds if c.startswith("python -m rpg memory ")]
    sizes = " ".join(map(str, MINI["benchmarks"]["fig7"]["token_sizes"]))
    assert "--checkpoints results/mini/zoos/vit_tiny " in memory and f"--token-sizes {sizes} " in memory


def test_ablation_targets_at_paper_scale_follow_the_official_scripts(tmp_path):
    """rpg-reference.md §9.3: per-row batch, steps, diffusion batch; the Large rows on 4 GPUs; ViT-B's 8192 row
    is its own experiment and its 16384 row is Table 1's vit_base."""
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    out = snakemake(work, *TARGETS, "--configfile", PAPER_OVERLAY, "-n").stdout
    assert job_counts(out) == expected_jobs(PAPER, TABLES, ["fig7"])
    cmds = shell_commands(out)
    train = {r: c for r, c in zip(trained(cmds, "paper"), [c for c in cmds if " train " in c])}
    assert "tok8k_vit_base" in train and "tok16k_vit_base" not in train and "vit_base" in train
    assert "vit_tiny" in train and "abl_vit_tiny" not in train    # the default rows are the main ViT-T run
    assert "--set train.batch_size=16 --set train.steps=80000" in train["no_recurrence"]
    assert "--set diffusion.diffusion_batch=1536" in train["tok_channel"]
    assert "--set train.seed=998" in train["tok4k_vit_tiny"]
    for exp in ("tok16k_vit_tiny", "tok16k_vit_small", "vit_base"):
        assert train[exp].startswith("torchrun --standalone --nproc_per_node 4 -m rpg train ")
        assert "--preset large" in train[exp]
    assert all("--device cuda" in c for c in train.values())
    (memory,) = [c for c in cmds if c.startswith("python -m rpg memory ")]
    assert "--token-sizes 1024 2048 4096 8192 16384 --preset base" in memory and "--device cuda" in memory


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_each_ablation_target_schedules_only_its_rows(tmp_path, target):
    work = workdir_with(tmp_path, REPO / "config" / "config.yaml")
    out = snakemake(work, target, "-n").stdout
    name = Path(target).stem
    tables, benches = ([name], []) if name in MINI["tables"] else ([], [name])
    assert job_counts(out) == expected_jobs(MINI, tables, benches)
    assert set(trained(shell_commands(out), "mini")) == {r for t in tables for r in MINI["tables"][t]["rows"]}


def test_table1_ids_come_first_and_ablation_rows_share_table1_zoos():
    assert list(MINI["experiments"])[:len(TABLE1_IDS)] == TABLE1_IDS
    rows = {r for t in TABLES for r in MINI["tables"][t]["rows"]}
    assert {MINI["experiments"][r]["zoo"] for r in rows} <= set(TABLE1_IDS)
