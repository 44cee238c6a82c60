"""Where does a generated model's accuracy gap come from? (issue: the mini preset's accuracy, ResNet-18)

For a zoo and a generated set of a BatchNorm network, scores every generated model three ways:
  as generated; with its BatchNorm running statistics (running_mean, running_var) replaced by the zoo's mean
  statistics; and with only its conv/linear/BN-affine weights replaced by the zoo's nearest original (the
  statistics kept). A gap that closes under the first swap comes from the generated running statistics. Also
  prints how far the generated running statistics lie from the zoo's spread, per layer (z-score of the
  log-variance).

    python benchmarks/bn_diagnosis.py --zoo results/mini/zoos/resnet18 --generated results/mini/generated/resnet18

A diagnosis, not a fix: the fix belongs in training or sampling (the issue rules out recomputing statistics
after generation).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from rpg import formats, io
from rpg.evaluation.domains import make_domain


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
    stat_keys = [k for k in originals[0] if k.endswith(("running_mean", "running_var"))]
    zoo_stats = {k: torch.stack([sd[k].double() for sd in originals]).mean(0).to(originals[0][k].dtype)
                 for k in stat_keys}
    step = max(1, len(zoo.refs) // a.originals)
    orig_acc = [dom.score(originals[i], str(zoo.refs[i].path), zoo.refs[i]).metric
                for i in range(0, len(zoo.refs), step)]
    rows = []
    for r in gen.refs:
        sd = io.load_state_dict(r.path)
        as_is = dom.score(sd, str(r.path), r).metric
        swapped = dom.score({**sd, **zoo_stats}, str(r.path), r).metric
        # the nearest original by the weights (not the statistics), with the generated statistics kept
        w = [k for k in sd if k not in stat_keys and sd[k].is_floating_point()]
        flat = torch.cat([sd[k].flatten() for k in w])
        d = [float((flat - torch.cat([o[k].flatten() for k in w])).norm()) for o in originals]
        near = originals[min(range(len(d)), key=d.__getitem__)]
        weights_from_original = dom.score({**sd, **{k: near[k] for k in w}}, str(r.path), r).metric
        # z-score of the generated log running_var against the zoo's per-element spread, averaged per model
        z = []
        for k in stat_keys:
            if k.endswith("running_var"):
                zs = torch.stack([o[k].double().log() for o in originals])
                z.append(float(((sd[k].double().clamp_min(1e-12).log() - zs.mean(0)) / zs.std(0).clamp_min(1e-6))
                               .abs().mean()))
        rows.append((r.path.name, as_is, swapped, weights_from_original, statistics.mean(z)))
        print(f"{r.path.name}: as generated {as_is:.2f}  zoo-mean BN stats {swapped:.2f}  "
              f"nearest original's weights + generated stats {weights_from_original:.2f}  "
              f"|z| of log running_var {statistics.mean(z):.2f}", flush=True)
    om = statistics.mean(orig_acc)
    print(f"originals ({len(orig_acc)} scored): mean {om:.2f}")
    for i, name in enumerate(("as generated", "zoo-mean BN stats", "nearest original's weights")):
        vals = [row[i + 1] for row in rows]
        print(f"{name:28s} mean {statistics.mean(vals):.2f}  std {statistics.pstdev(vals):.2f}  "
              f"gap {statistics.mean(vals) - om:+.2f}")


if __name__ == "__main__":
    main()
