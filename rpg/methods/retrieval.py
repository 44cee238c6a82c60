"""Retrieval: the reference point of the unseen-task study that the paper lacks (Tab. 9 / Tab. 14).

For a task condition it returns the ORIGINAL checkpoints of the nearest task the zoo holds, by Hamming distance
of the 10-bit task vectors, labelled with the asked task, so `rpg evaluate` scores them on that task. A generator
that beats retrieval on unseen tasks generalises rather than looks up its training data.

- fit: index the zoo's checkpoints by task (run folder: generator.safetensors = the (N, 10) task table, the
  file the workflow's train rule waits for; index.json = the checkpoint files, relative to the zoo folder;
  run.json last).
- sample: the checkpoints of every task at the smallest distance (ties all kept), shuffled with the seed, then
  taken in turn until `num` models: with 2 nearest tasks x 3 checkpoints and num=3, both tasks may appear.
  A seen task is its own nearest task (distance 0): its originals come back.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path

import torch

from rpg import formats, io
from rpg.errors import RPGInputError
from rpg.formats import GeneratedModel
from rpg.methods.base import Condition, FitSettings, RunInfo, SampleOptions

INDEX = "index.json"
TABLE = "generator.safetensors"


def hamming(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> int:
    """Number of classes two binary tasks label differently."""
    return sum(int(x) != int(y) for x, y in zip(a, b, strict=True))


def nearest(task: list[int] | tuple[int, ...], tasks: list[list[int]]) -> list[int]:
    """Indices of `tasks` at the smallest Hamming distance from `task` (in the given order)."""
    dist = [hamming(task, t) for t in tasks]
    best = min(dist)
    return [i for i, d in enumerate(dist) if d == best]


class RetrievalMethod:
    name = "retrieval"
    display_name = "retrieval"
    stages = ()   # dotted config keys of each training stage (steps, batch size)

    def resolved_config(self, preset: str, overrides: list[str]) -> dict:
        # no config class: the preset and the overrides are the whole config (neither changes what it indexes)
        return {"preset": preset, "set": list(overrides)}

    def normalised_config(self, record: dict) -> dict:
        return record

    def fit(self, zoo_dir: str | os.PathLike, run_dir: str | os.PathLike, settings: FitSettings) -> Path:
        from rpg.methods.rpg import zoo_fingerprint

        zoo = formats.read_zoo(zoo_dir)
        missing = [r.path.name for r in zoo.refs if r.task is None]
        if missing:
            raise RPGInputError(f"{Path(zoo_dir) / formats.MANIFEST}: retrieval needs a task zoo (no task for "
                                f"{missing[0]})")
        run_dir = Path(run_dir)
        (run_dir / "run.json").unlink(missing_ok=True)
        files = [Path(os.path.relpath(r.path, zoo.folder)).as_posix() for r in zoo.refs]
        io.write_json(run_dir / INDEX, {"zoo": {k: v for k, v in zoo.manifest.items() if k != "checkpoints"},
                                        "files": files, "tasks": [r.task for r in zoo.refs]})
        table = torch.tensor([r.task for r in zoo.refs], dtype=torch.uint8)   # (N, 10)
        io.save_state_dict(run_dir / TABLE, {"tasks": table})
        formats.write_run(run_dir, self.name, zoo_dir, zoo_fingerprint(zoo_dir))
        return run_dir / TABLE

    def _index(self, run_dir: str | os.PathLike) -> tuple[dict, Path]:
        run = formats.read_run(run_dir)
        path = Path(run_dir) / INDEX
        if not path.is_file():
            raise RPGInputError(f"{path}: file not found (fit the retrieval run with `rpg train --method "
                                "retrieval`)")
        return io.read_json(path), Path(run["zoo"])

    def info(self, run_dir: str | os.PathLike) -> RunInfo:
        index, _ = self._index(run_dir)
        return RunInfo(zoo=index["zoo"], permutations=[], num_permutations=0, task_conditioned=True)

    def resolve(self, run_dir: str | os.PathLike, options: SampleOptions, device: str) -> SampleOptions:
        return replace(options, precision="fp32")      # weights are copied, not sampled

    def sample(self, run_dir: str | os.PathLike, num: int, condition: Condition, options: SampleOptions,
               seed: int, device: str) -> list[GeneratedModel]:
        if condition.task is None:
            raise RPGInputError(f"{run_dir}: retrieval needs a task condition (--conditions tasks:ID,...)")
        index, zoo_dir = self._index(run_dir)
        files = [index["files"][i] for i in nearest(condition.task, index["tasks"])]
        random.Random(seed).shuffle(files)
        out = []
        for k in range(num):
            path = zoo_dir / files[k % len(files)]
            if not path.is_file():
                raise RPGInputError(f"{Path(run_dir) / INDEX}: {path} not found (was the zoo moved?)")
            out.append(GeneratedModel(io.load_state_dict(path), permutation=None, task=list(condition.task)))
        return out
