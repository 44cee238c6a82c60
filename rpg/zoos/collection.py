"""`python -m rpg collect`: train (or fine-tune) a network and save its checkpoint zoo.

Recipe (official dataset/<tag>/train.py): optional training phases, then one more pass over the training set at a
constant learning rate during which a checkpoint is written every `save.every` iterations (after the
optimizer step), until `num_checkpoints` exist. Each checkpoint is a plain float32 state_dict
(`ckpt_0000.safetensors`, ...); `manifest.json` records the architecture, the dataset spec and, per
checkpoint, its permutation index, seed, iteration, test accuracy and task vector.

Kinds (see rpg.zoos.recipes): `single` -> OUT/; `seeds` -> OUT/ with `seedSSS_ckptKKKK` files whose
permutation is the seed id; `tasks` -> OUT/seen/ (the generator's training data) and OUT/unseen/ (the
held-out tasks, for evaluation), files `taskNNNN_ckptKK`, each with its manifest, and last OUT/manifest.json:
the seen checkpoints (`file` = `seen/taskNNNN_ckptKK.safetensors`) and `parts` {seen: "seen", unseen: "unseen"}.

Resuming: the model and optimizer state are written atomically to OUT/.collect_state/<unit>.pt after
each training epoch and every `state_every` checkpoints; a rerun with the same --out continues from
there and skips every checkpoint already in the manifest. The state file is removed once a unit
(a run, a seed or a task) is complete.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from rpg import optim
from rpg.errors import RPGInputError
from rpg.evaluation.evaluate import predict
from rpg.io import atomic_path, read_json, save_state_dict, write_json
from rpg.runtime import resolve_device
from rpg.zoos import architectures as archs
from rpg.zoos import recipes as zoos
from rpg.zoos.datasets import DataConfig, LoadedDataset, load_dataset
from rpg.zoos.recipes import PhaseConfig, SaveConfig, ZooConfig

MANIFEST_FORMAT = "rpg-zoo/1"
STATE_DIR = ".collect_state"
# config keys that may differ between the run that started a zoo and the run that resumes it
RESUMABLE_KEYS = {
    "description",
    "eval_batch_size",
    "state_every",
    "num_seen_tasks",
    "collect_unseen",
    "eval_checkpoints",
    "channels_last",
    "num_seeds",
}


def zoo_header(cfg, architecture: dict, dataset: dict, params: int, kind: str = "single",
               domain: str | None = None, config: dict | None = None) -> dict:
    """The rpg-zoo/1 manifest fields every collector writes (ZooManifest's header); `cfg` gives the zoo's name
    and `substitute_for`. Other domains name their `domain` and keep their whole recipe under `config`."""
    h: dict = {"format": MANIFEST_FORMAT}
    if domain is not None:
        h["domain"] = domain
    h.update({"architecture": architecture, "dataset": dataset, "substitute_for": cfg.substitute_for,
              "code_version": code_version(), "zoo": cfg.name, "kind": kind, "params": params})
    if config is not None:
        h["config"] = config
    return h


def code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown" if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# --------------------------------------------------------------------------------------------------
# training pieces
# --------------------------------------------------------------------------------------------------


def focal_loss(logits: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) on softmax outputs: mean of (1 - p_y)^gamma * CE."""
    ce = F.cross_entropy(logits.float(), y, reduction="none")
    p_y = torch.exp(-ce)
    return ((1.0 - p_y) ** gamma * ce).mean()


def set_trainable(model: nn.Module, trainable: str, freeze: list[str]) -> list[nn.Parameter]:
    """Mark which parameters learn in this phase; returns them (frozen names never learn)."""
    head = {id(p) for p in archs.head_parameters(model)} if trainable == "head" else None
    params = []
    for name, p in model.named_parameters():
        on = (head is None or id(p) in head) and not any(s in name for s in freeze)
        p.requires_grad_(on)
        if on:
            params.append(p)
    if not params:
        raise RPGInputError(
            f"freeze/trainable: no parameter left to train (trainable={trainable}, freeze={freeze})"
        )
    return params


def make_optimizer(params: list[nn.Parameter], opt: PhaseConfig | SaveConfig) -> torch.optim.Optimizer:
    return optim.make_optimizer(params, opt.optimizer, opt.lr, opt.weight_decay, opt.momentum)


def phase_lr(phase: PhaseConfig, total: int):
    """step -> lr of a training phase: cosine from lr to lr_end, reached on the phase's last step; constant when
    lr_end is None."""
    if phase.lr_end is None or total <= 1:
        return optim.lr_schedule(phase.lr)
    return optim.lr_schedule(phase.lr, "cosine", span=total - 1, lr_end=phase.lr_end)


@dataclass
class Unit:
    """One training run of a zoo: the single run, one seed, or one task."""

    name: str  # state-file name and log label
    prefix: str  # checkpoint file-name prefix
    digits: int  # zero-padding of the checkpoint index
    seed: int  # RNG seed of the run
    permutation: int | None  # fixed permutation index (seed id), None = position in sorted order
    task: int | None  # task id (tasks zoo)
    zoo_dir: Path


class ZooManifest:
    """The manifest of one zoo folder.

    While the folder is being collected, the manifest lives in ZOO/.collect_state/manifest.json and is
    rewritten atomically after every checkpoint; ZOO/manifest.json appears only once every run of the
    folder is complete (`publish`), so a manifest.json always describes a finished zoo (workflow
    rules can treat it as the folder's last output).
    """

    def __init__(self, folder: Path, header: dict):
        self.final = folder / "manifest.json"
        self.path = folder / STATE_DIR / "manifest.json"
        src = self.path if self.path.exists() else self.final if self.final.exists() else None
        if src is not None:
            data = read_json(src)
            if data.get("format") != MANIFEST_FORMAT:
                raise RPGInputError(f"{src}: not an {MANIFEST_FORMAT} manifest")
            _check_same_zoo(src, data.get("config", {}), header["config"])
            self.data = data
            self.data["config"] = header["config"]  # resumable keys may have changed
        else:
            self.data = {**header, "checkpoints": []}

    def files(self) -> set[str]:
        return {c["file"] for c in self.data["checkpoints"]}

    def count(self, prefix: str) -> int:
        return sum(c["file"].startswith(prefix) for c in self.data["checkpoints"])

    def add(self, entry: dict, fixed_permutation: bool) -> None:
        cks = [c for c in self.data["checkpoints"] if c["file"] != entry["file"]] + [entry]
        cks.sort(key=lambda c: c["file"])
        if not fixed_permutation:
            for i, c in enumerate(cks):
                c["permutation"] = i
        self.data["checkpoints"] = cks
        self.write()

    def write(self) -> None:
        write_json(self.path, self.data)

    def publish(self) -> None:
        """Write ZOO/manifest.json and drop the in-progress copy (and the state folder once empty)."""
        write_json(self.final, self.data)
        if self.path.exists():
            self.path.unlink()
        try:
            self.path.parent.rmdir()
        except OSError:
            pass


def _check_same_zoo(path: Path, old: dict, new: dict) -> None:
    try:  # a manifest written before a config key existed holds that key's default
        old = ZooConfig.from_dict(old).to_dict()
    except RPGInputError:
        pass
    diff = sorted(k for k in set(old) | set(new) if k not in RESUMABLE_KEYS and old.get(k) != new.get(k))
    if diff:
        raise RPGInputError(
            f"{path}: this folder holds a zoo collected with different settings ({', '.join(diff)}); "
            "use another --out or the original settings"
        )


class Collector:
    def __init__(
        self,
        cfg: ZooConfig,
        out: Path,
        data_cfg: DataConfig,
        device: torch.device,
        progress: bool | None = None,
        log=print,
    ):
        self.cfg, self.out, self.device, self.log = cfg, Path(out), device, log
        self.progress_disabled = None if progress is None else not progress
        self.data: LoadedDataset = load_dataset(cfg.dataset_spec, data_cfg)
        self.n_batches = len(self.data.train) // cfg.batch_size
        self.drop_last = self.n_batches > 0
        if not self.drop_last:
            self.n_batches = 1  # a training set smaller than one batch: one partial batch per epoch
        self.every = cfg.save.every or max(1, self.n_batches // cfg.num_checkpoints)
        # wall-clock seconds spent in: training phases, the saving pass (incl. writes), test passes, pretraining
        self.timing = {"train": 0.0, "save_pass": 0.0, "eval": 0.0, "pretrain": 0.0}
        self._fresh_said = False    # the "keep their fresh init" line: once per collection, not once per run
        self.pretrained_sd = self._pretrain() if cfg.pretrain else self._pretrained()

    # -- setup --------------------------------------------------------------------------------------
    def _pretrained(self) -> dict[str, torch.Tensor] | None:
        p = self.cfg.pretrained
        if not p:
            if self.cfg.pretrained_required:
                raise RPGInputError(
                    f"pretrained: zoo {self.cfg.name} fine-tunes released weights; set pretrained=PATH "
                    "(a local weights file, e.g. the timm checkpoint saved as .safetensors) "
                    "or pretrained=timm-hub to let "
                    "timm download them"
                )
            return None
        if p == "timm-hub":
            return archs.timm_hub_state_dict(self.cfg.architecture)
        from rpg.io import load_state_dict

        return load_state_dict(p)

    def _pretrain(self) -> dict[str, torch.Tensor]:
        """The `pretrain` phases, once per zoo, on the dataset's own classes (cross-entropy, no relabelling): the
        start of every unit, like released weights (paper §4: an ImageNet-pretrained ViT-Tiny fine-tuned per task).
        Saved as OUT/pretrain.safetensors, so a resumed collection reuses it."""
        from rpg.io import load_state_dict

        path = self.out / "pretrain.safetensors"
        if path.is_file():
            return load_state_dict(path)
        t0 = time.perf_counter()
        spec = self.cfg.architecture
        # the full-class head (e.g. 10 classes) in place of the task head; load_matching drops it later
        spec = {**spec, "kwargs": {**spec.get("kwargs", {}), "num_classes": self.data.num_classes}}
        torch.manual_seed(self.cfg.seed)
        model = archs.build_model(spec).to(self.device)
        model.train()
        for pi, phase in enumerate(self.cfg.pretrain):
            opt = make_optimizer(set_trainable(model, phase.trainable, self.cfg.freeze), phase)
            total = self._phase_iterations(phase)
            lr_at = phase_lr(phase, total)
            for it, (x, y) in enumerate(self._phase_batches(None, phase, self.cfg.seed, 2000 + pi)):
                for g in opt.param_groups:
                    g["lr"] = lr_at(it)
                self._step(model, opt, x, y, ce=True)
        sd = {k: (v.float() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
        save_state_dict(path, sd, metadata={"zoo": self.cfg.name, "pretrain": "1"})
        self.timing["pretrain"] += time.perf_counter() - t0
        self.log(f"pretrained on {self.data.num_classes} classes in {self.timing['pretrain']:.1f} s")
        return sd

    def _phase_iterations(self, phase: PhaseConfig) -> int:
        return phase.iterations if phase.iterations is not None else phase.epochs * self.n_batches

    def _phase_batches(self, label_map, phase: PhaseConfig, seed: int, pi: int):
        """(x, y) batches of a whole phase: `epochs` passes, or exactly `iterations` batches (across epochs)."""
        total, it, e = self._phase_iterations(phase), 0, 0
        while it < total:
            for x, y in self._batches(label_map, _mix(seed, pi, e)):
                yield x, y
                it += 1
                if it >= total:
                    return
            e += 1

    def _build(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        model = archs.build_model(self.cfg.architecture)
        if self.pretrained_sd is not None:
            left = archs.load_matching(model, self.pretrained_sd)
            if left and not self._fresh_said:
                self.log(f"pretrained: {len(left)} tensors keep their fresh init in every run (e.g. {left[0]})")
                self._fresh_said = True
        model = model.to(self.device)
        if self.cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def units(self) -> list[Unit]:
        cfg = self.cfg
        if cfg.kind == "single":
            return [Unit("run", "ckpt_", 4, cfg.seed, None, None, self.out)]
        if cfg.kind == "seeds":
            return [
                Unit(f"seed{s:03d}", f"seed{s:03d}_ckpt", 4, cfg.seed + s, s, None, self.out)
                for s in range(cfg.num_seeds)
            ]
        units = [
            Unit(f"task{n:04d}", f"task{n:04d}_ckpt", 2, cfg.seed, None, n, self.out / "seen")
            for n in cfg.seen_tasks()
        ]
        if cfg.collect_unseen:
            units += [
                Unit(f"task{n:04d}", f"task{n:04d}_ckpt", 2, cfg.seed, None, n, self.out / "unseen")
                for n in sorted(cfg.unseen_tasks)
            ]
        return units

    def header(self, zoo_dir: Path, params: int) -> dict:
        h = zoo_header(self.cfg, self.cfg.architecture, self.cfg.dataset_spec.to_dict(), params, self.cfg.kind)
        if self.cfg.kind == "tasks":
            h["split"] = zoo_dir.name
            h["unseen_tasks"] = sorted(self.cfg.unseen_tasks)
        h["config"] = self.cfg.to_dict()
        return h

    # -- main loop ----------------------------------------------------------------------------------
    def run(self) -> list[Path]:
        units = self.units()
        params = archs.count_params(archs.build_model(self.cfg.architecture))
        manifests: dict[Path, ZooManifest] = {}
        for u in units:
            if u.zoo_dir not in manifests:
                u.zoo_dir.mkdir(parents=True, exist_ok=True)
                manifests[u.zoo_dir] = ZooManifest(u.zoo_dir, self.header(u.zoo_dir, params))
        todo = [u for u in units if manifests[u.zoo_dir].count(u.prefix) < self.cfg.num_checkpoints]
        if len(units) > 1:
            self.log(f"{self.cfg.name}: {len(units)} runs ({len(units) - len(todo)} already complete)")
        for i, u in enumerate(todo):
            if len(todo) > 1:
                self.log(f"[{i + 1}/{len(todo)}] {u.name}")
            self.run_unit(u, manifests[u.zoo_dir])
            # a folder is finished once none of its runs is left: publish its manifest.json right away
            if not any(v.zoo_dir == u.zoo_dir for v in todo[i + 1 :]):
                manifests[u.zoo_dir].publish()
        for m in manifests.values():
            # folders that had nothing left to do: a rerun of a finished zoo, or of one whose last
            # checkpoint was written just before an interruption
            if not m.final.exists() or m.path.exists():
                m.publish()
        if self.cfg.kind == "tasks":
            self._publish_tasks_index(manifests, params)  # OUT/manifest.json; the folders returned stay seen/unseen
        return sorted(manifests)

    def _publish_tasks_index(self, manifests: dict[Path, ZooManifest], params: int) -> None:
        """OUT/manifest.json of a tasks zoo, written last (the file the collect rule waits for): the seen tasks,
        i.e. the generator's training data, with `file` relative to OUT, and `parts` naming the per-split
        folders (seen/ = the same checkpoints, unseen/ = the held-out tasks, for evaluation)."""
        seen = manifests[self.out / "seen"]
        header = self.header(self.out / "seen", params)
        header["parts"] = {p.name: p.name for p in sorted(manifests)}
        top = ZooManifest(self.out, header)
        top.data.update({k: v for k, v in header.items() if k != "config"})
        top.data["checkpoints"] = [{**c, "file": f"seen/{c['file']}"} for c in seen.data["checkpoints"]]
        top.publish()

    def _state_path(self, u: Unit) -> Path:
        return u.zoo_dir / STATE_DIR / f"{u.name}.pt"

    def _save_state(self, u: Unit, model: nn.Module, opt: torch.optim.Optimizer, **pos: Any) -> None:
        path = self._state_path(u)
        with atomic_path(path) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), **pos}, tmp)

    def _load_state(self, u: Unit) -> dict | None:
        path = self._state_path(u)
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:
            raise RPGInputError(
                f"{path}: unreadable resume state ({type(e).__name__}); delete it to restart this run"
            ) from None

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, ce: bool = False) -> torch.Tensor:
        if self.cfg.loss == "focal" and not ce:
            return focal_loss(logits, y, self.cfg.focal_gamma)
        return F.cross_entropy(logits.float(), y)

    def _step(self, model, opt, x, y, ce: bool = False) -> float:
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        amp = self.cfg.amp == "bf16" and self.device.type == "cuda"
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = self._loss(logits, y, ce)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def _batches(self, label_map, shuffle_seed: int, start_batch: int = 0):
        return self.data.train.batches(
            self.cfg.batch_size,
            shuffle_seed=shuffle_seed,
            start_batch=start_batch,
            augment=True,
            drop_last=self.drop_last,
            label_map=label_map,
        )

    def run_unit(self, u: Unit, manifest: ZooManifest) -> None:
        cfg = self.cfg
        label_map = zoos.task_label_map(zoos.task_bits(u.task)) if u.task is not None else None
        model = self._build(u.seed)
        state = self._load_state(u)
        if state is not None:
            model.load_state_dict(state["model"])
            self.log(
                f"resuming {u.name}: {state['stage']} phase {state['phase']} epoch {state['epoch']} "
                f"iteration {state['iteration']}"
            )
        model.train()
        torch.manual_seed(u.seed + 1)  # dropout / augmentation randomness after the init
        opt = None
        phases = cfg.phases

        # ---- training phases (skipped entirely when resuming inside the saving pass) -------------------
        first_phase = (
            len(phases)
            if state is not None and state["stage"] == "save"
            else (state["phase"] if state is not None else 0)
        )
        for pi in range(first_phase, len(phases)):
            phase = phases[pi]
            opt = make_optimizer(set_trainable(model, phase.trainable, cfg.freeze), phase)
            start_epoch = 0
            if state is not None and state["stage"] == "pretrain" and state["phase"] == pi:
                start_epoch = state["epoch"]
                opt.load_state_dict(state["optimizer"])
            total = self._phase_iterations(phase)
            lr_at = phase_lr(phase, total)
            n_epochs = -(-total // self.n_batches)  # = phase.epochs unless the phase counts iterations
            for e in range(start_epoch, n_epochs):
                t_epoch = time.perf_counter()
                bar = tqdm(
                    self._batches(label_map, _mix(u.seed, pi, e)),
                    total=min(self.n_batches, total - e * self.n_batches),
                    leave=False,
                    desc=f"{u.name} phase {pi + 1}/{len(phases)} epoch {e + 1}/{n_epochs}",
                    disable=self.progress_disabled,
                    file=sys.stderr,
                )
                for b, (x, y) in enumerate(bar):
                    if e * self.n_batches + b >= total:
                        break
                    for g in opt.param_groups:
                        g["lr"] = lr_at(e * self.n_batches + b)
                    loss = self._step(model, opt, x, y)
                    if b % 20 == 0:
                        bar.set_postfix(loss=f"{loss:.3f}")
                self._save_state(u, model, opt, stage="pretrain", phase=pi, epoch=e + 1, iteration=0)
                self.timing["train"] += time.perf_counter() - t_epoch

        # ---- the checkpoint-saving pass ---------------------------------------------------------------
        save = cfg.save
        params = set_trainable(model, save.trainable, cfg.freeze)
        last = phases[-1] if phases else None
        resumed_save = state is not None and state["stage"] == "save"
        # like the reference, the saving pass keeps the last phase's optimizer (only the LR changes) when
        # it is the same optimizer over the same parameters
        keep = (
            opt is not None
            and last is not None
            and last.optimizer == save.optimizer
            and last.trainable == save.trainable
            and last.weight_decay == save.weight_decay
        )
        if resumed_save or not keep:
            opt = make_optimizer(params, save)
        if resumed_save:
            opt.load_state_dict(state["optimizer"])
        for g in opt.param_groups:
            g["lr"] = save.lr
        it = state["iteration"] if resumed_save else 0
        done = manifest.files()
        n = cfg.num_checkpoints
        target_iters = (n - 1) * self.every + 1  # checkpoint k follows the step of iteration k * every
        bar = tqdm(
            total=n,
            initial=min(n, manifest.count(u.prefix)),
            desc=f"{u.name} checkpoints",
            leave=False,
            disable=self.progress_disabled,
            file=sys.stderr,
        )
        t_save = time.perf_counter()
        while it < target_iters:
            ep, start = divmod(it, self.n_batches)
            for x, y in self._batches(label_map, _mix(u.seed, 1000, ep), start_batch=start):
                self._step(model, opt, x, y)
                if it % self.every == 0:
                    k = it // self.every
                    fname = f"{u.prefix}{k:0{u.digits}d}.safetensors"
                    if fname not in done:
                        self._write_checkpoint(u, manifest, model, fname, it, label_map)
                        bar.update(1)
                    if (k + 1) % cfg.state_every == 0 and k + 1 < n:
                        self._save_state(
                            u, model, opt, stage="save", phase=len(phases), epoch=0, iteration=it + 1
                        )
                it += 1
                if it >= target_iters:
                    break
        bar.close()
        self.timing["save_pass"] += time.perf_counter() - t_save
        sp = self._state_path(u)
        if sp.exists():
            sp.unlink()
        try:
            sp.parent.rmdir()  # only succeeds once no other unit has a state file there
        except OSError:
            pass

    def _write_checkpoint(
        self, u: Unit, manifest: ZooManifest, model: nn.Module, fname: str, it: int, label_map
    ) -> None:
        sd = {k: (v.float() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
        save_state_dict(u.zoo_dir / fname, sd, metadata={"zoo": self.cfg.name, "iteration": str(it)})
        acc = None
        if self.cfg.eval_checkpoints:
            t_eval = time.perf_counter()
            preds, targets = predict(
                model,
                self.data.test,
                self.device,
                self.cfg.eval_batch_size,
                label_map=label_map,
                channels_last=self.cfg.channels_last,
            )
            acc = round(float((preds == targets).float().mean()), 4)
            model.train()
            self.timing["eval"] += time.perf_counter() - t_eval
        bits = zoos.task_bits(u.task) if u.task is not None else None
        manifest.add(
            {
                "file": fname,
                "permutation": u.permutation if u.permutation is not None else 0,
                "seed": u.seed,
                "iteration": it,
                "accuracy": acc,
                "task": bits,
            },
            fixed_permutation=u.permutation is not None,
        )


def _mix(*xs: int) -> int:
    """A deterministic 63-bit seed from a few integers (data order of one epoch)."""
    h = 1469598103934665603
    for x in xs:
        h = ((h ^ (x & 0xFFFFFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


def collect(
    cfg: ZooConfig,
    out: str | Path,
    data_cfg: DataConfig | None = None,
    device: str = "auto",
    progress: bool | None = None,
    log=print,
) -> list[Path]:
    """Collect (or resume) a zoo; returns the zoo folder(s) written."""
    c = Collector(
        cfg, Path(out), data_cfg or DataConfig.from_sources(), torch.device(resolve_device(device)), progress, log
    )
    folders = c.run()
    t = c.timing
    log(
        f"time: training phases {t['train']:.1f} s, saving pass {t['save_pass']:.1f} s "
        f"(of which test passes {t['eval']:.1f} s)" + (f", pretraining {t['pretrain']:.1f} s" if t["pretrain"] else "")
    )
    return folders
