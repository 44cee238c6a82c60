"""Train an RPG generator on a folder of checkpoints (paper §3.1, App. A.1; official workspace/**/<exp>.py).

    python -m rpg train --checkpoints ZOO_DIR --out RUN_DIR [--preset mini|tiny|small|base|large] [--set k=v ...]

The zoo is tokenized once into an (N, L, d) float32 array (RUN_DIR/tokens.npy, memory-mapped when large);
training steps only index it. AdamW (8-bit when bitsandbytes imports and is asked for), cosine decay to 0
without warm-up, stepped on every rank; bf16 autocast on CUDA. Every `train.save_every` steps the full state
(model, optimizer, LR schedule, step, RNG) goes to RUN_DIR/train_state.pt; starting the same command again
continues from there. The finished generator is RUN_DIR/generator.safetensors (+ config.json,
tokenizer.safetensors, meta.json), written last; meta.json then holds the training's wall time, s/step and
peak memory (`training`, see `training_cost`).

Multi-GPU: `torchrun --nproc_per_node N -m rpg.cli.train ...` (DDP). `train.batch_size` is the global batch:
each of the N ranks draws batch_size / N checkpoints per step (the paper's 8 = 2 per GPU x 4 GPUs).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rpg import configs, formats, io, optim
from rpg.errors import RPGInputError
from rpg.generator.config import RPGConfig, TokenizerConfig
from rpg.generator.model import RPG
from rpg.generator.tokenizer import ParamTokenizer
from rpg.memory import PeakMemory
from rpg.runtime import use_bf16

_IN_MEMORY_BYTES = 2 << 30  # token arrays up to 2 GiB are read into RAM, larger ones stay memory-mapped
STATE_FORMAT = "rpg-train-state/2"   # train_state.pt: {format, step, config, zoo_fingerprint, threads, ...}


# ------------------------------------------------------------------------------------------------ data
def tokenize_zoo(zoo: formats.Zoo, tcfg: TokenizerConfig, run_dir: Path,
                 fingerprint: str | None = None) -> tuple[ParamTokenizer, np.ndarray]:
    """Fit the per-layer statistics, tokenize every checkpoint once, write tokenizer + tokens.npy (cached)."""
    tok_path, arr_path, fp_path = run_dir / "tokenizer.safetensors", run_dir / "tokens.npy", run_dir / "zoo.json"
    token_size = tcfg.token_size
    # the cache key: the zoo's contents and every tokenizer setting (to_dict leaves out switches at default)
    fp = {"fingerprint": fingerprint or zoo.fingerprint(), **configs.to_dict(tcfg)}
    if tok_path.is_file() and arr_path.is_file() and fp_path.is_file() and io.read_json(fp_path) == fp:
        return ParamTokenizer.load(tok_path), np.load(arr_path, mmap_mode="r")
    # keep loaded checkpoints for the second pass when they are small; otherwise load each twice
    cache: list = []
    total = sum(f.stat().st_size for f in zoo.files)

    def first_pass():
        for name, sd in tqdm(zoo.state_dicts(), total=len(zoo.files), desc="fitting statistics", unit="ckpt",
                            disable=None):  # bars only on a terminal
            if total < _IN_MEMORY_BYTES:
                cache.append(sd)
            yield name, sd

    tok = ParamTokenizer.fit(first_pass(), token_size, tcfg.strategy, tcfg.center)
    with io.atomic_path(arr_path) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                        shape=(len(zoo.files), tok.num_tokens, token_size))
        source = cache if cache else (sd for _, sd in zoo.state_dicts())
        for i, sd in enumerate(tqdm(source, total=len(zoo.files), desc="tokenizing", unit="ckpt",
                                        disable=None)):
            arr[i] = tok.tokenize(sd, dtype=torch.float32).numpy()
        arr.flush()
        del arr
    tok.save(tok_path)
    io.write_json(fp_path, fp)
    return tok, np.load(arr_path, mmap_mode="r")


# ------------------------------------------------------------------------------------------------ helpers
def make_optimizer(model: torch.nn.Module, cfg: RPGConfig) -> torch.optim.Optimizer:
    """The generator's optimizer from its `train` section (rpg.optim is the one factory; benchmarks use this too)."""
    tc = cfg.train
    return optim.make_optimizer(model.parameters(), tc.optimizer, tc.lr, tc.weight_decay)


def _autocast(enabled: bool, device: str):
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def batch_per_rank(batch_size: int, world: int) -> int:
    """`train.batch_size` is the global batch of one optimizer step: each DDP rank draws its share."""
    if batch_size % world:
        raise RPGInputError(f"train.batch_size={batch_size}: the global batch must be divisible by the "
                            f"{world} DDP ranks (each rank draws batch_size / world_size checkpoints)")
    return batch_size // world


def _dist() -> tuple[int, int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


# ------------------------------------------------------------------------------------------------ training
def train(cfg: RPGConfig, zoo_dir: str | Path, run_dir: str | Path, device: str = "cpu",
          eval_fn: Callable[[list[dict]], dict] | None = None, eval_num: int = 2,
          max_steps: int | None = None, quiet: bool = False, restart_on_change: bool = False) -> Path:
    """Train (or resume) a generator. `eval_fn(state_dicts) -> metrics` is the periodic evaluation hook.
    `max_steps` stops early (`FitSettings.max_steps`: tests of resumption, the Fig. 8 memory study) after saving
    the state, without writing the final generator.

    Only an unfinished run of the same config on the same zoo (fingerprint) is resumed. A finished run is
    trained again from step 0; a saved state of another config, zoo or state format is an error, or with
    `restart_on_change` is started over. One training at a time per run folder (RUN/.lock)."""
    rank, world, local_rank = _dist()
    if world > 1 and device.startswith("cuda"):
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    batch_per_rank(cfg.train.batch_size, world)   # a bad global batch fails before anything is written
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _run_lock(run_dir, enabled=rank == 0):
        return _train(cfg, zoo_dir, run_dir, device, eval_fn, eval_num, max_steps, quiet, restart_on_change,
                      rank, world, local_rank)


@contextlib.contextmanager
def _run_lock(run_dir: Path, enabled: bool = True):
    """Exclusive, non-blocking flock on RUN/.lock: a second training into the same folder fails at once
    (it would otherwise race on the state's temp file). The kernel drops the lock if the process dies."""
    if not enabled:
        yield
        return
    f = open(run_dir / ".lock", "a")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RPGInputError(f"{run_dir}: another `rpg train` is writing this run folder (it holds "
                                f"{run_dir / '.lock'}); wait for it to finish or use another --out") from None
        yield
    finally:
        f.close()   # closing the file releases the lock


_STATE_KEYS = ("step", "config", "zoo_fingerprint", "model", "optimizer", "scheduler", "rng")


def _resumable_state(path: Path, cfg: RPGConfig, fingerprint: str, zoo_dir: Path, restart_on_change: bool,
                     say: Callable[[str], None]) -> dict | None:
    """The saved state to resume from, or None to start from step 0 (see `train`)."""
    if not path.is_file():
        return None
    st = io.load_torch_file(path)
    if not isinstance(st, dict):
        raise RPGInputError(f"{path}: not a training state (a {type(st).__name__}); delete it to start over")
    if st.get("format") != STATE_FORMAT:
        why = f"was written in another state format ({st.get('format')!r}; this version writes {STATE_FORMAT!r})"
    else:
        missing = [k for k in _STATE_KEYS if k not in st]
        if missing:
            raise RPGInputError(f"{path}: key {missing[0]!r} is missing from this {STATE_FORMAT} state; "
                                "delete it to start over")
        if st["config"] != cfg.to_dict():
            why = "was written with a different config"
        elif st["zoo_fingerprint"] != fingerprint:
            why = f"was trained on other contents of the zoo {zoo_dir} (its fingerprint changed)"
        elif not isinstance(st["step"], int) or st["step"] >= cfg.train.steps:
            say(f"{path}: the saved run is finished (step {st['step']} of {cfg.train.steps}); training again "
                "from step 0")
            return None
        else:
            return st
    if not restart_on_change:
        raise RPGInputError(f"{path}: {why}; use a new --out, delete it, or pass --restart-on-change")
    say(f"{path}: {why}; starting over")
    return None


def _train(cfg: RPGConfig, zoo_dir, run_dir: Path, device: str, eval_fn, eval_num: int, max_steps: int | None,
           quiet: bool, restart_on_change: bool, rank: int, world: int, local_rank: int) -> Path:
    zoo = formats.read_zoo(zoo_dir, trainable=True)
    tc = cfg.train
    local_batch = batch_per_rank(tc.batch_size, world)   # checked in train() already
    fingerprint = zoo.fingerprint()
    state_path = run_dir / "train_state.pt"
    # decided before tokenizing: a run that cannot resume must not get a new tokenizer beside its old model
    st = _resumable_state(state_path, cfg, fingerprint, zoo.folder, restart_on_change,
                          say=print if rank == 0 else lambda _: None)
    if st is None and rank == 0:
        for stale in ("train_state.pt", "log.jsonl", "generator.safetensors"):
            (run_dir / stale).unlink(missing_ok=True)
    torch.manual_seed(tc.seed)
    tok, tokens = (tokenize_zoo(zoo, cfg.tokenizer, run_dir, fingerprint)
                   if rank == 0 else (None, None))
    if world > 1:
        torch.distributed.barrier()
        if rank:
            tok, tokens = tokenize_zoo(zoo, cfg.tokenizer, run_dir, fingerprint)
    if tokens.nbytes <= _IN_MEMORY_BYTES:
        tokens = torch.from_numpy(np.array(tokens))                  # (N, L, d) copied into RAM
    num_perm = max(zoo.permutations) + 1
    perms = torch.tensor(zoo.permutations)
    tasks = None
    if cfg.condition.task != "none":
        if any(t is None for t in zoo.tasks):
            raise RPGInputError(f"{zoo.folder / 'manifest.json'}: condition.task={cfg.condition.task} needs a "
                                "'task' vector for every checkpoint")
        tasks = torch.tensor(zoo.tasks, dtype=torch.float32)
        if tasks.shape[1] != cfg.condition.task_dim:
            raise RPGInputError(f"{zoo.folder / 'manifest.json'}: task vectors have {tasks.shape[1]} entries, "
                                f"condition.task_dim is {cfg.condition.task_dim}")
    if cfg.condition.task == "none" and cfg.condition.permutation == "onehot" and num_perm > cfg.recurrent.d_model[0]:
        raise RPGInputError(f"condition.permutation=onehot: {num_perm} permutation states exceed "
                            f"recurrent.d_model[0]={cfg.recurrent.d_model[0]}")
    # Training cost (paper Tab. 5 / Fig. 4): peak memory from here (model, optimizer state, activations; the
    # token array is already loaded) to the last step, and the wall time of the steps this process runs.
    mem = PeakMemory(device).start()
    mask = tok.mask.to(device)
    model = RPG(cfg, tok.layer_ids, tok.token_ids, num_perm).to(device)
    opt = make_optimizer(model, cfg)
    # factor of tc.lr: warm-up, then constant or cosine to 0 over the remaining steps (CosineAnnealingLR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, optim.lr_schedule(
        1.0, tc.schedule, tc.warmup_steps, span=max(1, tc.steps - tc.warmup_steps)))
    g = torch.Generator().manual_seed(tc.seed + rank)   # batches and diffusion noise; saved for resumption
    step = 0
    threads = torch.get_num_threads()   # CPU results are bit-reproducible only at the same count
    if st is not None:
        try:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            sched.load_state_dict(st["scheduler"])
            g.set_state(st["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise RPGInputError(f"{state_path}: does not fit this run's model/optimizer ({type(e).__name__}); "
                                "delete it to start over") from None
        step = st["step"]
        if not quiet and rank == 0:
            print(f"resuming {run_dir} from step {step}")
        if st.get("threads") not in (None, threads):
            # CPU kernels sum in another order at another thread count: follow the recorded count, so a resumed
            # run ends with the bytes an uninterrupted one would have
            if rank == 0:
                print(f"note: {state_path} was trained with {st['threads']} threads; resuming with {st['threads']} "
                      f"(not {threads}) so the result is bit-identical to an uninterrupted run")
            threads = int(st["threads"])
            torch.set_num_threads(threads)
    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.startswith("cuda") else None, find_unused_parameters=True)
    meta = {"num_permutations": num_perm, "permutations": zoo.permutations, "zoo": str(zoo.folder),
            "zoo_manifest": {k: v for k, v in zoo.manifest.items() if k != "checkpoints"},
            "num_tokens": tok.num_tokens, "num_params": tok.num_params, "num_checkpoints": len(zoo.files),
            "world_size": world, "batch_per_rank": local_batch,
            "zoo_fingerprint": fingerprint, "threads": threads, "device": device}
    if rank == 0:
        io.write_json(run_dir / "config.json", cfg.to_dict())
        io.write_json(run_dir / "meta.json", meta)
    log_path = run_dir / "log.jsonl"
    bf16 = use_bf16(tc.precision, device)                          # decided once, not per step
    end = tc.steps if max_steps is None else min(tc.steps, max_steps)
    bar = tqdm(total=tc.steps, initial=step, desc="training", unit="step", disable=True if quiet or rank else None)
    plain_log = not quiet and rank == 0 and bar.disable   # no terminal (e.g. a Snakemake log): print log lines
    t_last, ema = time.time(), None
    first_step, t_start = step, time.perf_counter()
    model.train()
    while step < end:
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(tc.grad_accum):
            idx = torch.randint(0, len(zoo.files), (local_batch,), generator=g)
            if isinstance(tokens, np.ndarray):   # memory-mapped: read each row once, in file order,
                rows, inv = torch.unique(idx, return_inverse=True)   # then restore the drawn order
                x0 = torch.from_numpy(tokens[rows.numpy()])[inv]
            else:
                x0 = tokens[idx]
            x0 = x0.to(device, non_blocking=True)                                      # (B, L, d)
            with _autocast(bf16, device):
                loss = ddp_model(x0, mask, perms[idx].to(device), None if tasks is None else tasks[idx].to(device),
                                 generator=g)
            (loss / tc.grad_accum).backward()
            total += float(loss.detach()) / tc.grad_accum
        if not math.isfinite(total):   # stop before the step: a NaN would spread into every weight and state
            raise RPGInputError(f"{run_dir}: the training loss is {total} at step {step + 1}; no generator was "
                                "written (look for extreme or constant tensors in the zoo, or lower train.lr)")
        opt.step()
        sched.step()          # every rank steps its schedule (the official pre-fix code only stepped rank 0)
        step += 1
        ema = total if ema is None else 0.98 * ema + 0.02 * total
        bar.update()
        bar.set_postfix(loss=f"{ema:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
        if rank == 0 and (step % tc.log_every == 0 or step == end):
            now = time.time()
            with open(log_path, "a") as f:
                f.write(json.dumps({"step": step, "loss": total, "loss_ema": ema, "lr": sched.get_last_lr()[0],
                                    "sec_per_step": (now - t_last) / tc.log_every}) + "\n")
            if plain_log:
                print(f"step {step}/{tc.steps} loss {ema:.4f} lr {sched.get_last_lr()[0]:.2e} "
                      f"{(now - t_last) / tc.log_every:.3f} s/step", flush=True)
            t_last = now
        if rank == 0 and eval_fn is not None and tc.eval_every and step % tc.eval_every == 0:
            from rpg.generator.sampling import sample_tokens
            gen = sample_tokens(model, eval_num, generator=torch.Generator().manual_seed(step), device=device,
                                autocast=bf16)
            metrics = eval_fn([tok.detokenize(x) for x in gen])
            model.train()
            with open(log_path, "a") as f:
                f.write(json.dumps({"step": step, "eval": metrics}) + "\n")
            bar.write(f"step {step}: {metrics}")
        if rank == 0 and (step % tc.save_every == 0 or step == end):
            torch.save({"format": STATE_FORMAT, "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "rng": g.get_state(), "step": step, "config": cfg.to_dict(),
                        "zoo_fingerprint": fingerprint, "threads": threads}, _tmp(state_path))
            os.replace(_tmp(state_path), state_path)
    bar.close()
    out = run_dir / "generator.safetensors"
    if rank == 0 and step >= tc.steps:
        meta["training"] = training_cost(time.perf_counter() - t_start, step - first_step, first_step, mem.stop(),
                                         state_bytes(model, opt))
        io.write_json(run_dir / "meta.json", meta)
        io.save_state_dict(out, model.state_dict())
    if world > 1:
        torch.distributed.barrier()
    return out


def state_bytes(model: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
    """Bytes of the training state proper: parameters, their gradients and the optimizer's state tensors. Exact
    and free of allocator effects, unlike a peak RSS; activations are not in it."""
    tensors = [p for p in model.parameters()] + [p.grad for p in model.parameters() if p.grad is not None]
    tensors += [v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)]
    return sum(t.numel() * t.element_size() for t in tensors)


def training_cost(wall_s: float, steps: int, resumed_from: int, memory: dict, state: int) -> dict:
    """meta.json's `training` block: the wall time and peak memory of the steps this process ran (a resumed
    run times only its last stretch; `resumed_from` says where it started). Periodic evaluations and saves
    are inside the wall time; tokenizing the zoo is not. `memory` is `rpg.memory.PeakMemory.result()` (on a
    CPU it includes the one-time growth of the process when torch first runs its kernels), on rank 0 under DDP;
    `state_bytes` the parameters + gradients + optimizer state (`state_bytes`)."""
    return {"wall_s": round(wall_s, 3), "steps_timed": steps, "resumed_from": resumed_from,
            "s_per_step": round(wall_s / steps, 5) if steps else None, "threads": torch.get_num_threads(),
            "memory": memory, "state_bytes": state}


def _tmp(p: Path) -> Path:
    return p.with_name(f".{p.name}.tmp")
