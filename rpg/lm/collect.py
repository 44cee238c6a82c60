"""`rpg collect --zoo mini/dora_r4`: fine-tune a DoRA adapter and keep its last checkpoints (paper Tab. 3).

Reference §7.6: the official code runs NVlabs DoRA's commonsense fine-tuning and a watcher copies every trainer
checkpoint's adapter_model.bin, keeping the last 50. Here one loop does both: AdamW with linear warm-up and linear
decay to 0 (the Hugging Face Trainer's schedule that DoRA uses), the loss on the answer tokens only, and after the
optimizer steps listed by `DoraZooConfig.kept_steps` the adapter's tensors (lora_A, lora_B, magnitude vector;
the base model is never stored) are written as ckpt_NNNN.safetensors with the zoo writer
(rpg.zoos.collection.ZooManifest), so the zoo is an ordinary rpg-zoo/1 folder with `domain: language_model`.

Batches are drawn with a seeded generator (uniform over the training items, with replacement), so a run is a
function of the recipe and the seed. Resuming: a rerun of a finished zoo (its manifest.json lists every
checkpoint) returns at once; an interrupted one starts again from step 0 (a mini run is minutes).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rpg import optim
from rpg.io import read_json, save_state_dict
from rpg.lm import models
from rpg.lm.config import DoraZooConfig
from rpg.lm.tasks import read_items, training_pairs
from rpg.runtime import resolve_device

IGNORE = -100  # label of a token without loss (prompt, padding): torch cross_entropy's ignore_index


def encode_pairs(tokenizer, pairs: list[tuple[str, str]], max_length: int) -> list[tuple[list[int], int]]:
    """(token ids, number of prompt tokens) per pair. As lm-eval splits a scored continuation: the prompt's
    encoding, then the whole text's encoding, whose tokens past the prompt are the answer. No BOS (lm-eval's HFLM
    adds none for LLaMA-family causal LMs)."""
    out = []
    for prompt, answer in pairs:
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        ids = tokenizer(prompt + answer, add_special_tokens=False)["input_ids"][:max_length]
        out.append((ids, min(n_prompt, len(ids) - 1)))
    return out


def make_batch(examples: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask / labels, all (B, T) int64; labels are IGNORE on prompt and
    padding."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for i, (seq, n_prompt) in enumerate(examples):
        ids[i, :len(seq)] = torch.tensor(seq)
        mask[i, :len(seq)] = 1
        labels[i, n_prompt:len(seq)] = torch.tensor(seq[n_prompt:])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def train_adapter(cfg: DoraZooConfig, peft_model, tokenizer, device: torch.device, on_step=None,
                  progress: bool | None = None, log=print) -> list[float]:
    """The fine-tuning loop; `on_step(step, model)` runs after every optimizer step (1-based). Returns the losses."""
    items = read_items(cfg.train_file)
    examples = encode_pairs(tokenizer, training_pairs(items, cfg.train_format, str(cfg.train_file)),
                            cfg.max_length)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = optim.make_optimizer(params, "adamw", cfg.lr, cfg.weight_decay, log=log)
    lr_at = optim.lr_schedule(cfg.lr, "linear", warmup_steps=cfg.warmup, span=max(1, cfg.steps - cfg.warmup))
    gen = torch.Generator().manual_seed(cfg.seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    peft_model.train()
    losses = []
    bar = tqdm(range(cfg.steps), desc=f"{cfg.name} DoRA", leave=False, disable=None if progress is None
               else not progress)
    for step in bar:
        idx = torch.randint(len(examples), (cfg.batch_size,), generator=gen).tolist()
        batch = {k: v.to(device) for k, v in make_batch([examples[i] for i in idx], pad_id).items()}
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = peft_model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, peft_model)
    bar.close()
    return losses


def adapter_zoo_header(cfg: DoraZooConfig, params: int) -> dict:
    """The manifest header of an adapter zoo: what evaluation rebuilds (the base model + this adapter config; the
    zoo holds the adapter only), and the whole recipe under `config` (the workflow's staleness check reads it)."""
    from rpg.zoos.collection import zoo_header

    return zoo_header(cfg, {"name": "dora", "base_model": cfg.base_model, "rank": cfg.adapter.rank,
                            "target_modules": list(cfg.adapter.target_modules), "layers": cfg.adapter.layers},
                      {"name": cfg.task or "+".join(cfg.eval_tasks), "eval_tasks": list(cfg.eval_tasks)},
                      params, domain=cfg.domain, config=cfg.to_dict())


def collect_adapters(cfg: DoraZooConfig, out: str | Path, device: str = "auto", progress: bool | None = None,
                     log=print, model=None, tokenizer=None) -> list[Path]:
    """Collect (or find complete) a DoRA adapter zoo in OUT; returns [OUT]. `model`/`tokenizer`: an already built
    base model (tests), else cfg.model_dir is loaded."""
    from rpg.zoos.collection import ZooManifest

    out = Path(out)
    final = out / "manifest.json"
    if final.is_file() and len(read_json(final).get("checkpoints", [])) >= cfg.num_checkpoints:
        log(f"{out}: complete ({cfg.num_checkpoints} checkpoints)")
        return [out]
    dev = torch.device(resolve_device(device))
    torch.manual_seed(cfg.seed)
    if model is None:
        model, tokenizer = models.load_base(cfg.model_dir, cfg.dtype, dev)
    peft_model = models.add_dora(model.to(dev), cfg.adapter)
    scorer = None
    if cfg.eval_checkpoints:
        from rpg.lm.scoring import Scorer

        scorer = Scorer(cfg, dev, model=peft_model, tokenizer=tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    params = models.count_adapter_params(peft_model)
    manifest = ZooManifest(out, adapter_zoo_header(cfg, params))
    manifest.data["checkpoints"] = []   # no mid-run resume: a restarted run rewrites every checkpoint
    kept = {s: k for k, s in enumerate(cfg.kept_steps)}
    t0 = time.perf_counter()
    timing = {"eval": 0.0}

    def on_step(step: int, m) -> None:
        if step not in kept:
            return
        fname = f"ckpt_{kept[step]:04d}.safetensors"
        save_state_dict(out / fname, models.adapter_state(m), metadata={"zoo": cfg.name, "iteration": str(step)})
        acc = None
        if scorer is not None:
            t = time.perf_counter()
            acc = round(scorer.score(models.adapter_state(m), fname).mean / 100.0, 4)
            timing["eval"] += time.perf_counter() - t
            m.train()
        manifest.add({"file": fname, "permutation": 0, "seed": cfg.seed, "iteration": step, "accuracy": acc,
                      "task": None}, fixed_permutation=False)

    losses = train_adapter(cfg, peft_model, tokenizer, dev, on_step, progress, log)
    manifest.publish()
    k = max(1, len(losses) // 10)
    log(f"{cfg.name}: {cfg.steps} DoRA steps in {time.perf_counter() - t0:.1f} s "
        f"(checkpoint scoring {timing['eval']:.1f} s); loss {sum(losses[:k]) / k:.4f} -> "
        f"{sum(losses[-k:]) / k:.4f}; {params} adapter parameters")
    return [out]
