"""Similarity of generated and original models (paper App. B.4, following p-diff), for any domain.

- For two models a and b with mistake sets A and B (classification: misclassified test samples),
  IoU = |A & B| / |A | B|. For each generated model the maximum IoU over all originals is its nearest-neighbour
  similarity. Models are compared only within one group (the same task).
- The baseline is the originals with Gaussian noise added in the normalized per-layer space of the tokenizer
  (W' = W + level * sigma_key * eps, sigma_key = the zoo average of the per-checkpoint std of that tensor; BN
  running_var in its log space), at the levels of the reference evaluate.py (0.01..0.05, App. B.4 / Fig. 9) and of
  Tab. 16 (0.01, 0.1, 1.0). The noised models are scored by the same `Domain`.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

import torch
from tqdm.auto import tqdm

from rpg import io
from rpg.domains import Domain
from rpg.formats import ModelRef

# App. B.4 (reference workspace/evaluate/evaluate.py: 0.01..0.05) and Tab. 16 (0.01, 0.1, 1.0)
PAPER_NOISE_LEVELS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 1.0)


def iou_matrix(wrong_a: torch.Tensor, wrong_b: torch.Tensor) -> torch.Tensor:
    """IoU of mistake sets: wrong_a (A, N) and wrong_b (B, N) bool -> (A, B) float.
    Two models with no mistakes at all count as identical (IoU 1)."""
    a, b = wrong_a.double(), wrong_b.double()
    inter = a @ b.T  # (A, B) |A & B|
    union = a.sum(1, keepdim=True) + b.sum(1).unsqueeze(0) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


# --------------------------------------------------------------------------------------------------
# noise baseline in the tokenizer's normalized space
# --------------------------------------------------------------------------------------------------


def _generated_key(key: str, v: torch.Tensor) -> bool:
    """Tensors RPG generates (official BaseDataset): floating, more than one element, not num_batches_tracked."""
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
# nearest neighbours
# --------------------------------------------------------------------------------------------------


def _nearest(wrong_q: torch.Tensor, groups_q: list, wrong_o: torch.Tensor, groups_o: list) -> tuple[list, list]:
    """For each query model, the max IoU over originals of the same group (-1: none), and the argmax index."""
    iou = iou_matrix(wrong_q, wrong_o)
    same = torch.tensor([[gq == go for go in groups_o] for gq in groups_q], dtype=torch.bool)
    iou = torch.where(same, iou, torch.full_like(iou, -1.0))
    best, idx = iou.max(dim=1)
    return [round(float(b), 4) for b in best], [int(i) for i in idx]


def _mean_offdiag(m: torch.Tensor, mask: torch.Tensor) -> float | None:
    vals = m[mask]
    return round(float(vals.mean()), 4) if vals.numel() else None


def similarity(
    domain: Domain,
    originals: list[ModelRef],
    orig_names: list[str],
    orig_metrics: list[float],
    wrong_o: torch.Tensor,
    generated: list[ModelRef],
    gen_names: list[str],
    gen_metrics: list[float],
    wrong_g: torch.Tensor | None,
    noise_levels: tuple[float, ...],
    noise_repeats: int,
    progress: bool | None,
) -> dict:
    """The `similarity` block of the eval JSON. wrong_o (O, N) / wrong_g (G, N) bool are the mistake masks,
    orig_metrics / gen_metrics the domain's metric of each model (percent)."""
    go = [r.group for r in originals]
    oo = iou_matrix(wrong_o, wrong_o)
    same_oo = torch.tensor([[a == b for b in go] for a in go]) & ~torch.eye(len(go), dtype=torch.bool)
    out: dict[str, Any] = {
        "metric": "IoU of the test samples each model gets wrong (paper App. B.4); "
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
                "file": name,
                "accuracy": round(metric, 2),
                "max_iou": b,
                "nearest_original": orig_names[i] if b >= 0 else None,
            }
            for name, metric, b, i in zip(gen_names, gen_metrics, best, idx)
        ]
        bs = [b for b in best if b >= 0]
        out["generated_max_iou_mean"] = round(statistics.fmean(bs), 4) if bs else None
    if noise_levels and noise_repeats > 0:
        out["noise"] = _noise_baseline(domain, originals, orig_names, statistics.fmean(orig_metrics), wrong_o,
                                       noise_levels, noise_repeats, progress)
    return out


def _noise_baseline(domain: Domain, originals: list[ModelRef], orig_names: list[str], mean_orig: float,
                    wrong_o: torch.Tensor, noise_levels: tuple[float, ...], noise_repeats: int,
                    progress: bool | None) -> dict:
    """Noised copies of evenly spaced originals: their metric, its decline from the originals' mean
    `mean_orig`, and their nearest-original IoU."""
    go = [r.group for r in originals]
    sds = [io.load_state_dict(r.path) for r in originals]
    stats = layer_stats(sds)
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
            outcome = domain.score(noised, f"{originals[j].path} + noise {level}", originals[j])
            b, _ = _nearest(outcome.mistakes.unsqueeze(0), [go[j]], wrong_o, go)
            accs.append(round(outcome.metric, 2))
            ious.append(b[0])
            srcs.append(orig_names[j])
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
    return {
        "space": "normalized per-layer (zoo-average mean/std per key; running_var in log space)",
        "repeats": noise_repeats,
        "levels": per_level,
    }
