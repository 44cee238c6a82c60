"""Where a CPU training step and a sampling step spend their time, how close the convolutions are to this
machine's peak, and what the usual CPU remedies buy (issue "Sampling and speed").

Workloads (the same as `bench_core.py`'s side-by-side comparison with the official code, plus Table 1's):
- ``tiny``: the Tiny preset, LSTM backbone, all 17 tokens of the 2.9k-parameter digits zoo per step, batch 8;
  sampling DDIM-60, 10 models at once (fully parallel);
- ``mini``: the `mini` preset (Mamba2, denoiser [1,32,64,32,1], 256 tokens per step) on the 68k digits zoo
  (272 tokens); sampling DDIM-100 (η = 1), 10 models.

For each workload, in one process:
1. **Profile** (torch.profiler, self CPU time per op, summed by category: convolution, normalisation,
   element-wise (AdamW's per-parameter updates on CPU included), recurrent model, other ops; "Python and
   dispatch" = wall time minus all ops), and the wall time of forward, backward and optimizer.
2. **FLOPs** per training step and per sampling step (torch.utils.flop_counter: convolutions and matmuls) and
   the GFLOP/s the convolutions reach inside the step.
3. **This machine's peak for the same convolutions**: each denoiser convolution alone, forward + backward at the
   step's token count and at 8x that, and a 2048^3 sgemm; the ratio achieved/peak says whether fp32 is at its
   compute limit.
4. **Variants** of the denoiser, timed the same way (median of `--reps` after warm-up, each variant in turn):
   ``eager`` (the library), ``channels_last`` (the 1-D convolutions as 2-D ones on (n, C, 1, d) in channels-last
   layout, oneDNN's preferred format), ``compile`` (torch.compile of the denoiser, inductor on CPU).

    python benchmarks/profile_step.py [--workloads tiny,mini] [--reps 10] [--threads 2] [--variants ...]

Writes benchmarks/out/profile_step.json and prints tables. Measurements, not assertions: run on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from rpg.formats import read_zoo
from rpg.generator.config import preset_config
from rpg.generator.denoiser import ConditionalUNet1D
from rpg.generator.model import RPG
from rpg.generator.sampling import sample_tokens
from rpg.generator.training import make_optimizer, tokenize_zoo

WORKLOADS = {
    # name: (zoo, preset, overrides, sampler, steps)
    "tiny": ("digits_2k9", "tiny", {"recurrent.kind": "lstm"}, "ddim", 60),
    "mini": ("digits_68k", "mini", {}, "ddim", 100),
}
CATEGORIES = (  # first match wins; matched against the lower-case op name
    ("convolution", ("conv",)),
    ("normalisation", ("batch_norm", "layer_norm", "group_norm", "rms_norm")),
    ("recurrent", ("lstm", "rnn", "cumsum", "einsum", "bmm", "segsum")),
    ("optimizer", ("_foreach", "adam", "optimizer")),
    ("matmul", ("addmm", "mm", "linear", "matmul")),
    ("element-wise", ("add", "mul", "sub", "div", "elu", "silu", "gelu", "pow", "exp", "sqrt", "neg", "copy",
                      "fill", "zero", "clamp", "where", "sum", "mean", "cat", "randn", "rand", "index", "gather",
                      "scatter", "masked", "softplus", "sigmoid", "tanh", "cos", "sin")),
)


# -------------------------------------------------------------------------------------------- variants
def _forward_2d(unet: ConditionalUNet1D, x_t, t, prototypes=None, *, c_emb=None, t_emb=None):
    """The denoiser's forward with every Conv1d run as a Conv2d on (n, C, 1, d) in channels-last layout.
    Same parameters, same result up to float rounding; gradients reach the Conv1d weights."""
    c = unet.embed_condition(prototypes) if c_emb is None else c_emb              # (n, 1, d)
    te = unet.embed_time(t) if t_emb is None else t_emb                            # (n or 1, 1, d)
    cl = torch.channels_last
    c, te = c[:, :, None, :], te[:, :, None, :]                                    # (n, 1, 1, d)
    h = x_t[:, None, None, :].contiguous(memory_format=cl)                        # (n, 1, 1, d)
    skips, last, n_enc = [], len(unet.convs) - 1, unet.n_skip + 2
    for i, conv in enumerate(unet.convs):
        if i >= n_enc:
            h = h + skips.pop()
        k = conv.kernel_size[0]
        w = conv.weight[:, :, None, :]                                             # (C_out, C_in, 1, k)
        h = F.conv2d(((h + c) * te).contiguous(memory_format=cl), w, conv.bias, padding=(0, k // 2))
        if i < last:
            bn = unet.norms[i]
            if not isinstance(bn, torch.nn.Identity):
                h = F.batch_norm(h, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                 bn.training, bn.momentum, bn.eps)
            h = F.elu(h)
        if i < unet.n_skip:
            skips.append(h)
    return h[:, 0, 0, :]


def _digits_zoo():
    """benchmarks/digits_zoo.py (the digits zoo collector), loaded by path: this file also runs as a plain script."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("digits_zoo", Path(__file__).with_name("digits_zoo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def apply_variant(unet: ConditionalUNet1D, variant: str) -> ConditionalUNet1D:
    """Patch one denoiser instance in place (the library's class is untouched)."""
    if variant == "channels_last":
        unet.forward = _forward_2d.__get__(unet)
    elif variant == "compile":
        unet.forward = torch.compile(unet.forward, dynamic=False)
    elif variant != "eager":
        raise ValueError(f"unknown variant {variant!r}")
    return unet


class _Folded:
    """`sample_tokens` folds BatchNorm into a deep copy of the denoiser; patch the copy as well."""

    def __init__(self, variant: str):
        import rpg.generator.sampling as s
        self.s, self.variant, self.orig = s, variant, s.fold_batchnorm

    def __enter__(self):
        self.s.fold_batchnorm = lambda unet: apply_variant(self.orig(unet), self.variant)

    def __exit__(self, *exc):
        self.s.fold_batchnorm = self.orig


# ------------------------------------------------------------------------------------------- workloads
def build(workload: str, zoo_root: Path):
    zoo_name, preset, over, _, _ = WORKLOADS[workload]
    zoo_dir = zoo_root / zoo_name
    if not (zoo_dir / "manifest.json").is_file():
        _digits_zoo().collect(zoo_name, zoo_dir)
    cfg = preset_config(preset, {**over, "train.precision": "fp32"})
    run = zoo_root / f".profile_{zoo_name}"
    run.mkdir(exist_ok=True)
    tok, tokens = tokenize_zoo(read_zoo(zoo_dir), cfg.tokenizer, run)
    tokens = torch.from_numpy(tokens[:])
    torch.manual_seed(0)
    model = RPG(cfg, tok.layer_ids, tok.token_ids, tokens.shape[0])
    return cfg, model, tok, tokens


def make_step(cfg, model, tok, tokens, phases: dict | None = None):
    """One training step; with `phases`, the wall seconds of forward, backward and optimizer are added to it."""
    opt = make_optimizer(model, cfg)
    g = torch.Generator().manual_seed(0)
    B = cfg.train.batch_size

    def step():
        t0 = time.perf_counter()
        idx = torch.randint(0, tokens.shape[0], (B,), generator=g)
        loss = model(tokens[idx], tok.mask, idx, generator=g)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        if phases is not None:
            for k, v in (("forward", t1 - t0), ("backward", t2 - t1), ("optimizer", time.perf_counter() - t2)):
                phases[k] = phases.get(k, 0.0) + v
    return step


def timed(fn, reps: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def categorize(prof, wall_s: float) -> dict[str, float]:
    """Self CPU seconds per category (ops of the calling thread; intra-op threads are inside the op's time)."""
    cats = {name: 0.0 for name, _ in CATEGORIES} | {"other ops": 0.0}
    for ev in prof.key_averages():
        if ev.key.startswith("ProfilerStep") or not ev.key.startswith(("aten::", "mkldnn", "_")):
            continue
        name = ev.key.lower()
        s = ev.self_cpu_time_total / 1e6
        for cat, keys in CATEGORIES:
            if any(k in name for k in keys):
                cats[cat] += s
                break
        else:
            cats["other ops"] += s
    cats["Python and dispatch"] = max(0.0, wall_s - sum(cats.values()))
    return cats


def profile(fn, n: int) -> tuple[dict[str, float], float]:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprof
    fn()
    with tprof(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        wall = time.perf_counter() - t0
    cats = categorize(prof, wall)
    conv_s = cats["convolution"]
    return {k: round(v / n, 5) for k, v in cats.items()}, conv_s / n


def flops(fn) -> dict[str, float]:
    with FlopCounterMode(display=False) as fc:
        fn()
    total = fc.get_total_flops()
    conv = sum(v for k, v in fc.get_flop_counts()["Global"].items() if "conv" in str(k))
    return {"total": float(total), "convolution": float(conv)}


def conv_peak(unet: ConditionalUNet1D, n_tokens: int, d: int, reps: int) -> dict:
    """GFLOP/s of the denoiser's convolutions alone (forward + backward), at n_tokens and 8 x n_tokens."""
    out = {}
    for n in (n_tokens, 8 * n_tokens):
        total_flop, total_s = 0.0, 0.0
        for conv in unet.convs:
            x = torch.randn(n, conv.in_channels, d, requires_grad=True)
            layer = torch.nn.Conv1d(conv.in_channels, conv.out_channels, conv.kernel_size[0],
                                    padding=conv.padding[0])

            def fb(layer=layer, x=x):
                layer(x).sum().backward()
            with FlopCounterMode(display=False) as fc:
                fb()
            t = statistics.median(timed(fb, reps))
            total_flop += fc.get_total_flops()
            total_s += t
        out[f"tokens_{n}"] = {"gflop": round(total_flop / 1e9, 3), "s": round(total_s, 5),
                              "gflops_per_s": round(total_flop / total_s / 1e9, 1)}
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    t = statistics.median(timed(lambda: a @ b, reps))
    out["sgemm_2048"] = {"gflops_per_s": round(2 * 2048 ** 3 / t / 1e9, 1)}
    return out


def run_workload(workload: str, zoo_root: Path, reps: int, variants: list[str]) -> dict:
    cfg, model, tok, tokens = build(workload, zoo_root)
    _, _, _, sampler, steps = WORKLOADS[workload]
    num = 10
    res = {"workload": workload, "tokens": tok.num_tokens, "params": tok.num_params,
           "preset": WORKLOADS[workload][1], "sampler": f"{sampler}-{steps}", "models_sampled": num}
    phases: dict[str, float] = {}
    step = make_step(cfg, model, tok, tokens, phases)
    n_step_tokens = min(cfg.diffusion.diffusion_batch or 10 ** 9, cfg.train.batch_size * tok.num_tokens)
    res["tokens_per_step"] = n_step_tokens

    def sample_once(n_models=num, k=steps):
        sample_tokens(model, n_models, sampler=sampler, steps=k, mode="full",
                      generator=torch.Generator().manual_seed(0))

    # 1-2. profile and FLOPs of the library as it is
    n_prof = max(3, reps // 2)
    res["train_profile_s"], conv_s = profile(step, n_prof)
    res["train_phases_s"] = {k: round(v / (n_prof + 1), 5) for k, v in phases.items()}   # +1: profile's warm-up
    fl = flops(step)
    res["train_gflop"] = {k: round(v / 1e9, 3) for k, v in fl.items()}
    res["train_conv_gflops_per_s"] = round(fl["convolution"] / conv_s / 1e9, 1) if conv_s else None
    one = lambda: sample_once(num, 1)  # noqa: E731  (one sampling step for all models, plus the prototypes)
    res["sample_step_profile_s"], _ = profile(lambda: sample_once(num, 5), 2)
    fl = flops(one)
    res["sample_step_gflop"] = {k: round(v / 1e9, 3) for k, v in fl.items()}
    # 3. the machine's peak for the same convolutions
    res["peak"] = conv_peak(model.denoiser, n_step_tokens, cfg.tokenizer.token_size, reps)
    # 4. variants
    res["variants"] = {}
    for v in variants:
        cfg, model, tok, tokens = build(workload, zoo_root)
        apply_variant(model.denoiser, v)
        step = make_step(cfg, model, tok, tokens)
        t_train = timed(step, reps, warmup=3)
        with _Folded(v):
            t_sample = timed(lambda: sample_once(), max(2, reps // 4), warmup=1)
        res["variants"][v] = {"train_step_s": round(statistics.median(t_train), 4),
                              "sample_s_per_model": round(statistics.median(t_sample) / num, 4)}
        print(f"  {workload} {v}: {res['variants'][v]}", flush=True)
    base = res["variants"].get("eager")
    if base:
        for r in res["variants"].values():
            r["train_speedup"] = round(base["train_step_s"] / r["train_step_s"], 2)
            r["sample_speedup"] = round(base["sample_s_per_model"] / r["sample_s_per_model"], 2)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo-dir", default="runs/zoos", help="where the digits zoos are (collected if missing)")
    p.add_argument("--workloads", default="tiny,mini")
    p.add_argument("--variants", default="eager,channels_last,compile")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for w in args.workloads.split(","):
        if w not in WORKLOADS:
            raise SystemExit(f"--workloads: unknown {w!r} (known: {', '.join(WORKLOADS)})")
        r = run_workload(w, Path(args.zoo_dir), args.reps, args.variants.split(","))
        rows.append(r)
        print(json.dumps(r, indent=1), flush=True)
    out = Path("benchmarks/out")
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
            "torch": torch.__version__, "precision": "fp32"}
    (out / "profile_step.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
