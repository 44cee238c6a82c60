"""Paper-scale check on one GPU: a Base- and a Large-preset training step on a ViT-Base-sized token sequence
(86.6M parameters: 10,654 tokens of 8192, or 5,378 of 16384) and one partially parallel DDIM generation of
it; time and peak memory of each, an out-of-memory recorded as a result. Also checks the Mamba2 path on
CUDA (mamba_ssm kernel if it imports, else the pure-PyTorch scan) against the float64 reference.

    python benchmarks/gpu_paper_scale.py --out OUT_DIR [--smoke]     (--smoke: tiny sizes, runs on a CPU)
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import torch

from rpg.generator.config import preset_config
from rpg.generator.model import RPG
from rpg.generator.sampling import sample_tokens
from rpg.generator.training import make_optimizer

# ViT-Base state_dict: 86,567,656 generated values in 152 tensors (official dataset/dataset.py). We rebuild the exact
# layout from timm when it is importable, else from the tensor shapes of vit_base_patch16_224.


def vit_base_layout(d: int):
    from rpg.generator.tokenizer import Layer, ParamTokenizer
    try:
        import timm
        sd = timm.create_model("vit_base_patch16_224", pretrained=False).state_dict()
        shapes = [(k, tuple(v.shape)) for k, v in sd.items()]
    except Exception:
        shapes = [("cls_token", (1, 1, 768)), ("pos_embed", (1, 197, 768)),
                  ("patch_embed.proj.weight", (768, 3, 16, 16)), ("patch_embed.proj.bias", (768,))]
        for i in range(12):
            p = f"blocks.{i}."
            shapes += [(p + "norm1.weight", (768,)), (p + "norm1.bias", (768,)), (p + "attn.qkv.weight", (2304, 768)),
                       (p + "attn.qkv.bias", (2304,)), (p + "attn.proj.weight", (768, 768)),
                       (p + "attn.proj.bias", (768,)),
                       (p + "norm2.weight", (768,)), (p + "norm2.bias", (768,)), (p + "mlp.fc1.weight", (3072, 768)),
                       (p + "mlp.fc1.bias", (3072,)), (p + "mlp.fc2.weight", (768, 3072)), (p + "mlp.fc2.bias", (768,))]
        shapes += [("norm.weight", (768,)), ("norm.bias", (768,)), ("head.weight", (1000, 768)), ("head.bias", (1000,))]
    layers = [Layer(k, s, torch.float32, "normal", 0.0, 1.0, 0.0) for k, s in shapes]
    return ParamTokenizer(layers, {}, [k for k, _ in shapes], d, "layer")


def measure(fn, device):
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0, (torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None)


def train_step_check(preset: str, batch: int, device: str, smoke: bool) -> dict:
    over = {"train.batch_size": str(batch), "train.precision": "bf16" if device == "cuda" else "fp32"}
    if smoke:
        over.update({"tokenizer.token_size": "256", "recurrent.d_model": "[256, 256]", "recurrent.d_state": "16",
                     "diffusion.diffusion_batch": "64"})
    cfg = preset_config(preset, over)
    tok = vit_base_layout(cfg.tokenizer.token_size)
    res = {"preset": preset, "token_size": cfg.tokenizer.token_size, "tokens": tok.num_tokens,
           "params_generated": tok.num_params, "batch": batch}
    if smoke:  # keep the CPU smoke run small: first 64 tokens of the layout
        tok.layer_ids, tok.token_ids = tok.layer_ids[:64], tok.token_ids[:64]
        tok.mask = tok.mask[:64]
    try:
        model = RPG(cfg, tok.layer_ids, tok.token_ids, 50).to(device)
        res["generator_params_M"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 1)
        res["mamba_impl"] = type(model.recurrent.layers[0]).__module__
        opt = make_optimizer(model, cfg)
        L, d = len(tok.layer_ids), cfg.tokenizer.token_size
        x0 = torch.randn(batch, L, d, device=device)
        mask = tok.mask.to(device)
        perm = torch.randint(0, 50, (batch,), device=device)

        def step():
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                loss = model(x0, mask, perm)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return float(loss)

        _, t_first, _ = measure(step, device)
        times = []
        for _ in range(3):
            loss, t, mem = measure(step, device)
            times.append(t)
        res.update(ok=True, loss=loss, first_step_s=round(t_first, 3), step_s=round(sorted(times)[1], 3),
                   peak_mem_GiB=None if mem is None else round(mem, 2))
        if preset == "large":
            def gen():
                return sample_tokens(model, 1, sampler="ddim", steps=60 if not smoke else 5, mode="partial",
                                     chunk_size=256, device=device, autocast=device == "cuda",
                                     generator=torch.Generator().manual_seed(0))
            out, t, mem = measure(gen, device)
            res.update(generate_ok=bool(torch.isfinite(out).all()), generate_s=round(t, 2),
                       generate_peak_mem_GiB=None if mem is None else round(mem, 2))
    except torch.cuda.OutOfMemoryError as e:
        res.update(ok=False, oom=True, where=traceback.format_exc().strip().splitlines()[-3][:300],
                   error=str(e).splitlines()[0][:300])
    except Exception as e:
        res.update(ok=False, error=f"{type(e).__name__}: {str(e)[:300]}")
    finally:
        if device == "cuda":
            torch.cuda.empty_cache()
    return res


def mamba_check(device: str) -> dict:
    from rpg.generator.mamba2 import Mamba2, kernel_available, mamba2_reference
    res = {"kernel_available": kernel_available()}
    torch.manual_seed(0)
    m = Mamba2(256, d_state=32, headdim=64, chunk_size=64).to(device)
    x = torch.randn(2, 300, 256, device=device)
    with torch.no_grad():
        y = m(x)
        m64 = Mamba2(256, d_state=32, headdim=64, chunk_size=64).double()
        m64.load_state_dict({k: v.double().cpu() for k, v in m.state_dict().items()})
        ref = mamba2_reference(m64, x.double().cpu())
    res["pure_pytorch_rel_err_vs_fp64_reference"] = float((y.double().cpu() - ref).norm() / ref.norm())
    for L in (512, 4096):
        width = 8192 if device == "cuda" else 256
        mm = Mamba2(width, d_state=128, chunk_size=256 if device == "cuda" else 64).to(device)
        xx = torch.randn(2, L, width, device=device, requires_grad=True)

        def fb(mm=mm, xx=xx):
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                out = mm(xx)
            out.float().pow(2).mean().backward()
        measure(fb, device)
        _, t, mem = measure(fb, device)
        key = f"pure_pytorch_fwd_bwd_dmodel{width}_B2_L{L}"
        res[key + "_s"] = round(t, 4)
        res[key + "_peak_GiB"] = None if mem is None else round(mem, 2)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__}
    steps = [("mamba", lambda: mamba_check(device)),
             ("large_b2", lambda: train_step_check("large", 2, device, args.smoke)),
             ("base_b2", lambda: train_step_check("base", 2, device, args.smoke)),
             ("base_b4", lambda: train_step_check("base", 4, device, args.smoke))]
    for name, fn in steps:
        t0 = time.time()
        try:
            report[name] = fn()
        except Exception as e:
            report[name] = {"error": f"{type(e).__name__}: {e}"[:500]}
        report[name]["wall_s"] = round(time.time() - t0, 1)
        print(name, json.dumps(report[name]), flush=True)
        (out / "gpu_paper_scale.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
