"""`python -m rpg evaluate`: test accuracy of original and generated checkpoints, and their similarity.

- Accuracy: every state_dict is loaded strictly into the architecture of the zoo's manifest and run on
  the test split of its dataset (ImageNet: the validation set), unaugmented, in fixed order. The paper's
  summary over a set of models is best / mean / min / median / std (population std) of the
  accuracies, in percent (paper §3.1: "we repeat the above process 10 times and report the best, average,
  medium, minimum, and standard deviation").
- Similarity (paper App. B.4, following p-diff): for two models a and b with misclassified test-sample
  sets A and B, IoU = |A & B| / |A | B|. For each generated model the maximum IoU over all originals is
  its nearest-neighbour similarity. The baseline is the originals with Gaussian noise added in the
  normalized per-layer space of the tokenizer (W' = W + level * sigma_key * eps, sigma_key = the
  zoo average of the per-checkpoint std of that tensor; BN running_var in its log space), at the levels of
  the reference evaluate.py (0.01..0.05, App. B.4 / Fig. 9) and of Tab. 16 (0.01, 0.1, 1.0).
- Task zoos (unseen-task study): each model is evaluated on its own binary relabelling, similarity is
  computed among models of the same task, and a per-task breakdown is added.

Output: the "rpg-eval/1" JSON of the repo's contracts.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from rpg.errors import RPGInputError

EVAL_FORMAT = "rpg-eval/1"
# App. B.4 (reference workspace/evaluate/evaluate.py: 0.01..0.05) and Tab. 16 (0.01, 0.1, 1.0)
PAPER_NOISE_LEVELS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 1.0)


# --------------------------------------------------------------------------------------------------
# core: predictions and summaries
# --------------------------------------------------------------------------------------------------


@torch.inference_mode()
def predict(
    model: nn.Module,
    split,
    device: torch.device | str,
    batch_size: int,
    label_map: torch.Tensor | None = None,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true labels (both (N,) int64, CPU) of `split` in its fixed order.

    With `label_map` (binary tasks) the targets are relabelled and a 2-way head is expected.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    preds, targets = [], []
    for x, y in split.batches(batch_size, label_map=label_map):
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        preds.append(model(x).argmax(dim=1).cpu())
        targets.append(y)
    model.train(was_training)
    return torch.cat(preds), torch.cat(targets)


def summarize(accuracies: list[float]) -> dict:
    """The paper's summary of a set of accuracies (percent): best, mean, min, median, std (ddof=0)."""
    if not accuracies:
        return {
            "accuracies": [],
            "best": None,
            "mean": None,
            "min": None,
            "median": None,
            "std": None,
            "n": 0,
        }
    a = [float(x) for x in accuracies]
    return {
        "accuracies": [round(x, 2) for x in a],
        "best": round(max(a), 2),
        "mean": round(statistics.fmean(a), 2),
        "min": round(min(a), 2),
        "median": round(statistics.median(a), 2),
        "std": round(statistics.pstdev(a), 2),
        "n": len(a),
    }


def iou_matrix(wrong_a: torch.Tensor, wrong_b: torch.Tensor) -> torch.Tensor:
    """IoU of misclassified sets: wrong_a (A, N) and wrong_b (B, N) bool -> (A, B) float.
    Two models with no mistakes at all count as identical (IoU 1)."""
    a, b = wrong_a.double(), wrong_b.double()
    inter = a @ b.T  # (A, B) |A & B|
    union = a.sum(1, keepdim=True) + b.sum(1).unsqueeze(0) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


# --------------------------------------------------------------------------------------------------
# noise baseline in the tokenizer's normalized space
# --------------------------------------------------------------------------------------------------


def _generated_key(key: str, v: torch.Tensor) -> bool:
    """Tensors RPG generates (reference §1.1): floating, more than one element, not num_batches_tracked."""
    return v.is_floating_point() and v.numel() > 1 and "num_batches_tracked" not in key


def layer_stats(state_dicts: list[dict[str, torch.Tensor]]) -> dict[str, dict[str, float]]:
    """Per-key statistics averaged over the zoo: mean/std (unbiased) of every checkpoint's tensor, averaged;
    for BN running_var the log transform log(v / pre + 0.05) with pre = 0.95 * mean(v) comes first."""
    stats: dict[str, dict[str, float]] = {}
    for key, v0 in state_dicts[0].items():
        if not _generated_key(key, v0):
            continue
        means, stds, pres = [], [], []
        for sd in state_dicts:
            w = sd[key].double()
            if "running_var" in key:
                pre = 0.95 * float(w.mean())
                pres.append(pre)
                w = torch.log(w / pre + 0.05)
            means.append(float(w.mean()))
            stds.append(float(w.std()))
        entry = {"mean": statistics.fmean(means), "std": statistics.fmean(stds)}
        if pres:
            entry["pre_mean"] = statistics.fmean(pres)
        stats[key] = entry
    return stats


def add_normalized_noise(
    sd: dict[str, torch.Tensor], stats: dict[str, dict[str, float]], level: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Gaussian noise of std `level` added in normalized space x = (W - mean) / std, mapped back."""
    out = {}
    for key, w in sd.items():
        st = stats.get(key)
        if st is None:
            out[key] = w.clone()
            continue
        eps = torch.randn(w.shape, generator=generator, dtype=torch.float64)
        if "pre_mean" in st:
            pre = st["pre_mean"]
            x = torch.log(w.double() / pre + 0.05) + level * st["std"] * eps
            out[key] = ((torch.exp(x) - 0.05).clamp(min=0.001) * pre).to(w.dtype)
        else:
            out[key] = (w.double() + level * st["std"] * eps).to(w.dtype)
    return out


# --------------------------------------------------------------------------------------------------
# zoo / generated folders
# --------------------------------------------------------------------------------------------------


@dataclass
class ModelRef:
    path: Path
    task: list[int] | None = None
    permutation: int | None = None

    @property
    def group(self) -> str | None:
        from rpg.zoos.recipes import task_string

        return task_string(self.task) if self.task is not None else None


def read_zoo(zoo_dir: Path) -> tuple[dict, list[ModelRef]]:
    from rpg.io import read_json
    from rpg.zoos.recipes import task_id

    manifest_path = zoo_dir / "manifest.json"
    if not zoo_dir.is_dir():
        raise RPGInputError(f"{zoo_dir}: zoo folder not found")
    m = read_json(manifest_path)
    for key in ("architecture", "dataset", "checkpoints"):
        if key not in m:
            raise RPGInputError(f"{manifest_path}: missing {key!r}")
    if not m["checkpoints"]:
        raise RPGInputError(f"{manifest_path}: lists no checkpoints")
    refs = []
    for c in m["checkpoints"]:
        if c.get("task") is not None:
            task_id(c["task"])
        refs.append(ModelRef(zoo_dir / c["file"], c.get("task"), c.get("permutation")))
    return m, refs


def read_generated(gen: Path, zoo_manifest: dict) -> list[ModelRef]:
    from rpg.io import list_weight_files, read_json
    from rpg.zoos.recipes import task_id

    if gen.is_file():
        return [ModelRef(gen)]
    mpath = gen / "manifest.json"
    if not mpath.exists():
        return [ModelRef(p) for p in list_weight_files(gen)]
    m = read_json(mpath)
    if "architecture" in m and m["architecture"] != zoo_manifest["architecture"]:
        raise RPGInputError(
            f"{mpath}: architecture {m['architecture']} differs from the zoo's {zoo_manifest['architecture']}"
        )
    files = m.get("files")
    if not isinstance(files, list) or not files:
        raise RPGInputError(f"{mpath}: 'files' must be a non-empty list")
    refs = []
    for f in files:
        if not isinstance(f, dict) or "file" not in f:
            raise RPGInputError(f"{mpath}: every entry of 'files' needs a 'file'")
        if f.get("task") is not None:
            task_id(f["task"])
        refs.append(ModelRef(gen / f["file"], f.get("task"), f.get("permutation")))
    return refs


class Evaluator:
    """One architecture + one test set; evaluates many state_dicts (strict load) on it."""

    def __init__(
        self,
        zoo_manifest: dict,
        data_cfg=None,
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
    ):
        from rpg.zoos.architectures import build_model
        from rpg.zoos.datasets import DatasetSpec, load_dataset

        self.device = torch.device(device)
        self.arch = zoo_manifest["architecture"]
        self.spec = DatasetSpec.from_dict(zoo_manifest["dataset"])
        cfg = zoo_manifest.get("config") or {}
        self.channels_last = bool(cfg.get("channels_last", False))
        self.batch_size = batch_size or int(cfg.get("eval_batch_size", 1000))
        self.data = load_dataset(self.spec, data_cfg)
        self.model = build_model(self.arch).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def wrong(self, sd: dict[str, torch.Tensor], source: str, task: list[int] | None = None) -> torch.Tensor:
        """(N,) bool: which test samples the weights `sd` misclassify."""
        from rpg.zoos.architectures import load_weights_strict
        from rpg.zoos.recipes import task_label_map

        load_weights_strict(self.model, sd, source)
        label_map = task_label_map(task) if task is not None else None
        preds, targets = predict(
            self.model, self.data.test, self.device, self.batch_size, label_map, self.channels_last
        )
        return preds != targets

    def wrong_file(self, ref: ModelRef) -> torch.Tensor:
        from rpg.io import load_state_dict

        return self.wrong(load_state_dict(ref.path), str(ref.path), ref.task)


def _acc(wrong: torch.Tensor) -> float:
    return 100.0 * (1.0 - float(wrong.float().mean()))


def _nearest(
    wrong_q: torch.Tensor, groups_q: list, wrong_o: torch.Tensor, groups_o: list
) -> tuple[list, list]:
    """For each query model, the max IoU over originals of the same group, and the argmax index."""
    iou = iou_matrix(wrong_q, wrong_o)
    same = torch.tensor([[gq == go for go in groups_o] for gq in groups_q], dtype=torch.bool)
    iou = torch.where(same, iou, torch.full_like(iou, -1.0))
    best, idx = iou.max(dim=1)
    return [round(float(b), 4) for b in best], [int(i) for i in idx]


def _mean_offdiag(m: torch.Tensor, mask: torch.Tensor) -> float | None:
    vals = m[mask]
    return round(float(vals.mean()), 4) if vals.numel() else None


def similarity(
    ev: Evaluator,
    originals: list[ModelRef],
    wrong_o: torch.Tensor,
    generated: list[ModelRef],
    wrong_g: torch.Tensor | None,
    noise_levels: tuple[float, ...],
    noise_repeats: int,
    progress: bool | None,
) -> dict:
    from rpg.io import load_state_dict

    go = [r.group for r in originals]
    oo = iou_matrix(wrong_o, wrong_o)
    same_oo = torch.tensor([[a == b for b in go] for a in go]) & ~torch.eye(len(go), dtype=torch.bool)
    out: dict[str, Any] = {
        "metric": "IoU of misclassified test samples (paper App. B.4); "
        "max over originals = nearest neighbour",
        "original_original_mean_iou": _mean_offdiag(oo, same_oo),
    }
    # each original's nearest *other* original: the reference point for "how similar are the originals"
    oo_other = torch.where(same_oo, oo, torch.full_like(oo, -1.0)).max(dim=1).values
    valid = oo_other >= 0
    out["original_max_iou"] = [round(float(v), 4) if ok else None for v, ok in zip(oo_other, valid)]
    if wrong_g is not None and len(generated):
        gg_groups = [r.group for r in generated]
        best, idx = _nearest(wrong_g, gg_groups, wrong_o, go)
        gg = iou_matrix(wrong_g, wrong_g)
        same_gg = torch.tensor([[a == b for b in gg_groups] for a in gg_groups]) & ~torch.eye(
            len(generated), dtype=torch.bool
        )
        og = iou_matrix(wrong_g, wrong_o)
        same_og = torch.tensor([[a == b for b in go] for a in gg_groups])
        out["generated_generated_mean_iou"] = _mean_offdiag(gg, same_gg)
        out["original_generated_mean_iou"] = _mean_offdiag(og, same_og)
        out["generated"] = [
            {
                "file": r.path.name,
                "accuracy": round(_acc(w), 2),
                "max_iou": b,
                "nearest_original": originals[i].path.name if b >= 0 else None,
            }
            for r, w, b, i in zip(generated, wrong_g, best, idx)
        ]
        bs = [b for b in best if b >= 0]
        out["generated_max_iou_mean"] = round(statistics.fmean(bs), 4) if bs else None
    if noise_levels and noise_repeats > 0:
        sds = [load_state_dict(r.path) for r in originals]
        stats = layer_stats(sds)
        mean_orig = statistics.fmean(_acc(w) for w in wrong_o)
        per_level = []
        picks = [(r * len(originals)) // noise_repeats for r in range(noise_repeats)]
        bar = tqdm(
            total=len(noise_levels) * noise_repeats,
            desc="noise baseline",
            leave=False,
            disable=None if progress is None else not progress,
            file=sys.stderr,
        )
        for li, level in enumerate(noise_levels):
            accs, ious, srcs = [], [], []
            for r, j in enumerate(picks):
                g = torch.Generator().manual_seed(1000 * li + r)
                noised = add_normalized_noise(sds[j], stats, level, g)
                w = ev.wrong(noised, f"{originals[j].path} + noise {level}", originals[j].task)
                b, _ = _nearest(w.unsqueeze(0), [originals[j].group], wrong_o, go)
                accs.append(round(_acc(w), 2))
                ious.append(b[0])
                srcs.append(originals[j].path.name)
                bar.update(1)
            per_level.append(
                {
                    "level": level,
                    "sources": srcs,
                    "accuracies": accs,
                    "max_iou": ious,
                    "mean_accuracy": round(statistics.fmean(accs), 2),
                    "accuracy_decline": round(mean_orig - statistics.fmean(accs), 2),
                    "mean_max_iou": round(statistics.fmean(ious), 4),
                }
            )
        bar.close()
        out["noise"] = {
            "space": "normalized per-layer (zoo-average mean/std per key; running_var in log space)",
            "repeats": noise_repeats,
            "levels": per_level,
        }
    return out


def evaluate_zoo(
    zoo_dir: str | Path,
    generated: str | Path | None = None,
    *,
    with_similarity: bool = False,
    data_cfg=None,
    device: str = "auto",
    batch_size: int | None = None,
    noise_levels: tuple[float, ...] = PAPER_NOISE_LEVELS,
    noise_repeats: int = 5,
    progress: bool | None = None,
) -> dict:
    """Evaluate a zoo (and optionally a folder of generated weights); returns the rpg-eval/1 dict."""
    from rpg.cli.common import resolve_device
    from rpg.zoos.architectures import count_params

    zoo_dir = Path(zoo_dir)
    manifest, originals = read_zoo(zoo_dir)
    gen_refs = read_generated(Path(generated), manifest) if generated is not None else []
    is_tasks = any(r.task is not None for r in originals)
    if is_tasks and any(r.task is None for r in gen_refs):
        raise RPGInputError(
            f"{generated}: this is a task zoo; every generated file needs a 'task' in manifest.json"
        )
    ev = Evaluator(manifest, data_cfg, torch.device(resolve_device(device)), batch_size)
    disable = None if progress is None else not progress

    def run_all(refs: list[ModelRef], desc: str) -> torch.Tensor:
        rows = [
            ev.wrong_file(r) for r in tqdm(refs, desc=desc, leave=False, disable=disable, file=sys.stderr)
        ]
        return torch.stack(rows)  # (M, N_test) bool

    wrong_o = run_all(originals, "originals")
    wrong_g = run_all(gen_refs, "generated") if gen_refs else None
    spec = ev.spec
    result: dict[str, Any] = {
        "format": EVAL_FORMAT,
        "architecture": manifest["architecture"],
        "params": count_params(ev.model),
        "dataset": spec.name,
        "substitute_for": manifest.get("substitute_for"),
        "split": "test",
        "zoo": str(zoo_dir),
        "generated_dir": str(generated) if generated is not None else None,
        "original": summarize([_acc(w) for w in wrong_o]),
        "generated": summarize([_acc(w) for w in wrong_g]) if wrong_g is not None else None,
        "similarity": None,
    }
    if is_tasks:
        per_task: dict[str, dict] = {}
        for name, refs, wrong in (("original", originals, wrong_o), ("generated", gen_refs, wrong_g)):
            for r, w in zip(refs, wrong if wrong is not None else []):
                per_task.setdefault(r.group, {}).setdefault(name, []).append(_acc(w))
        result["per_task"] = {
            t: {k: summarize(v.get(k, [])) for k in ("original", "generated")}
            for t, v in sorted(per_task.items())
        }
    if with_similarity:
        result["similarity"] = similarity(
            ev, originals, wrong_o, gen_refs, wrong_g, tuple(noise_levels), noise_repeats, progress
        )
    return result
