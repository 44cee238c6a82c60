"""Where does a generated model's accuracy gap come from? (issue: the mini preset's accuracy, ResNet-18)

For a zoo and a generated set of a BatchNorm network, scores every generated model three ways:
  as generated; with its BatchNorm running statistics (running_mean, running_var) replaced by the zoo's mean
  statistics; and with only its conv/linear/BN-affine weights replaced by the zoo's nearest original (the
  statistics kept). A gap that closes under the first swap comes from the generated running statistics. Also
  prints how far the generated running statistics lie from the zoo's spread, per layer (z-score of the
  log-variance). Two more swaps split the weights by shape: the 1-D tensors (norm affine parameters, biases)
  and the matrices/kernels, each taken from the nearest original, the rest kept; for a network without running
  statistics (GroupNorm ResNet-50) they say which part of the generated weights holds the error.

    python benchmarks/bn_diagnosis.py --zoo results/mini/zoos/resnet18 --generated results/mini/generated/resnet18

A diagnosis, not a fix: the fix belongs in training or sampling (the issue rules out recomputing statistics
after generation).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from rpg import formats, io
from rpg.domains import make_domain
from rpg.evaluation.evaluate import summarize


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zoo", required=True)
    ap.add_argument("--generated", required=True)
    ap.add_argument("--originals", type=int, default=10, help="originals scored for the reference mean")
    a = ap.parse_args(argv)
    zoo = formats.read_zoo(a.zoo, evaluable=True)
    gen = formats.read_generated(a.generated, zoo)
    dom = make_domain(zoo)
    originals = [io.load_state_dict(r.path) for r in zoo.refs]
    ref = originals[0]
    stat_keys = [k for k in ref if k.endswith(("running_mean", "running_var"))]
    var_keys = [k for k in stat_keys if k.endswith("running_var")]
    w_keys = [k for k in ref if k not in stat_keys and ref[k].is_floating_point()]
    # zoo-side quantities, computed once: mean statistics, the (N, P) matrix of flattened weights, and the
    # per-element mean/std of log running_var
    zoo_stats = {k: torch.stack([sd[k].double() for sd in originals]).mean(0).to(ref[k].dtype) for k in stat_keys}
    zoo_w = torch.stack([torch.cat([o[k].flatten() for k in w_keys]) for o in originals])       # (N, P)
    logvar = {k: torch.stack([o[k].double().log() for o in originals]) for k in var_keys}     # k -> (N, C)
    logvar = {k: (v.mean(0), v.std(0).clamp_min(1e-6)) for k, v in logvar.items()}
    step = max(1, len(zoo.refs) // a.originals)
    orig_acc = [dom.score(originals[i], str(zoo.refs[i].path), zoo.refs[i]).metric
                for i in range(0, len(zoo.refs), step)]
    vec_keys = [k for k in w_keys if ref[k].dim() == 1]
    mat_keys = [k for k in w_keys if ref[k].dim() > 1]
    names = ("as generated", "zoo-mean BN stats", "nearest original's weights",
             "nearest original's 1-D tensors", "nearest original's matrices/kernels")
    scores: dict[str, list[float]] = {n: [] for n in names}
    for r in gen.refs:
        sd = io.load_state_dict(r.path)
        as_is = dom.score(sd, str(r.path), r).metric
        swapped = dom.score({**sd, **zoo_stats}, str(r.path), r).metric
        # the nearest original by the weights (not the statistics), with the generated statistics kept
        flat = torch.cat([sd[k].flatten() for k in w_keys])
        near = originals[int((zoo_w - flat).norm(dim=1).argmin())]
        from_original = dom.score({**sd, **{k: near[k] for k in w_keys}}, str(r.path), r).metric
        vec = dom.score({**sd, **{k: near[k] for k in vec_keys}}, str(r.path), r).metric
        mat = dom.score({**sd, **{k: near[k] for k in mat_keys}}, str(r.path), r).metric
        # z-score of the generated log running_var against the zoo's per-element spread, averaged per model
        z = statistics.mean([float(((sd[k].double().clamp_min(1e-12).log() - mu) / sd_).abs().mean())
                             for k, (mu, sd_) in logvar.items()] or [float("nan")])
        for n, v in zip(names, (as_is, swapped, from_original, vec, mat)):
            scores[n].append(v)
        print(f"{r.path.name}: as generated {as_is:.2f}  zoo-mean BN stats {swapped:.2f}  "
              f"nearest original's weights + generated stats {from_original:.2f}  1-D {vec:.2f}  "
              f"matrices {mat:.2f}  |z| of log running_var {z:.2f}", flush=True)
    om = statistics.mean(orig_acc)
    print(f"originals ({len(orig_acc)} scored): mean {om:.2f}")
    for n, vals in scores.items():
        s = summarize(vals)
        print(f"{n:28s} mean {s['mean']:.2f}  std {s['std']:.2f}  gap {statistics.mean(vals) - om:+.2f}")

if __name__ == "__main__":
    main()
