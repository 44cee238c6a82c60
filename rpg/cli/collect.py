"""`rpg collect`: argument parsing for zoo collection; the recipe's class (any domain) collects the zoo."""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

from rpg.cli.common import add_threads_arg, run
from rpg.configs import parse_overrides
from rpg.errors import RPGInputError
from rpg.io import check_output_dir, read_json
from rpg.runtime import set_threads
from rpg.zoos import architectures as archs
from rpg.zoos import recipes as zoos
from rpg.zoos.datasets import DATA_KEYS, DataConfig, DatasetSpec
from rpg.zoos.recipes import PhaseConfig, SaveConfig, ZooConfig

# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _fill_io_kwargs(arch: dict, in_chans: int, num_classes: int) -> dict:
    """Ad-hoc --arch: add in_chans / num_classes from the dataset when the factory accepts them."""
    name, kw = arch["name"], dict(arch.get("kwargs") or {})
    if name.startswith("timm:"):
        accepts = {"in_chans", "num_classes"}
    else:
        try:
            fn = archs._resolve_factory(name)
            sig = inspect.signature(fn)
            var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
            accepts = {k for k in ("in_chans", "num_classes") if k in sig.parameters or var_kw}
        except (TypeError, ValueError):
            accepts = set()
    if "in_chans" in accepts:
        kw.setdefault("in_chans", in_chans)
    if "num_classes" in accepts:
        kw.setdefault("num_classes", num_classes)
    return {"name": name, "kwargs": kw}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rpg collect",
        description="Train or fine-tune a network and save a checkpoint zoo "
        "(N checkpoints at fixed iteration "
        "spacing during a final constant-LR pass) with manifest.json. Reruns resume.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  rpg collect --zoo mini/resnet18 --out runs/zoos/mini/resnet18\n"
        "  rpg collect --zoo paper/cifar10_cnn_s --out zoos/cnn_s --set cifar_root=/data/cifar "
        "--device cuda\n"
        "  rpg collect --arch timm:resnet18 --arch-kwargs '{\"layers\": [1,1,1,1]}' --dataset digits "
        "--out /tmp/zoo --set num_checkpoints=10\n\n"
        "--set keys: any ZooConfig field by dotted path (num_checkpoints, batch_size, save.lr, save.every,\n"
        "phases.0.epochs, dataset.train_limit, architecture.kwargs.embed_dim, num_seeds, num_seen_tasks,\n"
        "pretrained, ...) and the data settings " + ", ".join(DATA_KEYS) + "\n"
        "(also from the environment as RPG_<KEY>, e.g. RPG_CIFAR_ROOT).",
    )
    p.add_argument("--zoo", help="registry entry (see --list), e.g. mini/resnet18 or paper/imagenet_resnet18, "
                   "or a recipe file path/to/zoo.yaml (it may `extends:` a registry entry)")
    p.add_argument("--out", help="zoo folder to write (default: runs/zoos/<zoo name>)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="override a config field or data setting (repeatable); values are parsed against the field's type "
        "(none/null = None for optional fields only; lists as JSON or by index, phases.0.epochs=2)",
    )
    p.add_argument(
        "--arch",
        help="ad-hoc architecture: registry name, timm:<model> or module:function "
        "(replaces the zoo's architecture)",
    )
    p.add_argument(
        "--arch-kwargs", default=None, metavar="JSON", help="keyword arguments for --arch (JSON object)"
    )
    p.add_argument(
        "--dataset",
        help="ad-hoc dataset name (replaces the zoo's dataset): "
        "fashion_mnist, digits, mnist5k, cifar10, cifar100, imagenet",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    add_threads_arg(p)
    p.add_argument("--list", action="store_true", help="list the registry entries and exit")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _adhoc_recipe(args: argparse.Namespace) -> ZooConfig:
    """A classification recipe from --arch/--dataset (replacing the --zoo entry's, or on a small default)."""
    import json

    if args.zoo:
        cfg = zoos.get_zoo(args.zoo)
        if not isinstance(cfg, ZooConfig):
            raise RPGInputError(f"--zoo {args.zoo}: a {cfg.domain} recipe takes no --arch/--dataset (edit the recipe)")
    else:
        cfg = ZooConfig(
            name="adhoc",
            description="ad-hoc zoo from --arch/--dataset",
            phases=[PhaseConfig(epochs=2, lr=3e-3, lr_end=1e-4, weight_decay=1e-4)],
            save=SaveConfig(lr=1e-4, weight_decay=1e-4, every=2),
        )
    d = cfg.to_dict()
    if args.dataset:
        d["dataset"] = {"name": args.dataset}
    if args.arch or args.arch_kwargs:
        try:
            kwargs = json.loads(args.arch_kwargs) if args.arch_kwargs else {}
        except json.JSONDecodeError as e:
            raise RPGInputError(f"--arch-kwargs: not valid JSON ({e})") from None
        if not isinstance(kwargs, dict):
            raise RPGInputError("--arch-kwargs: expected a JSON object")
        arch = {"name": args.arch or d["architecture"]["name"], "kwargs": kwargs}
        info = DatasetSpec.from_dict(d["dataset"]).info
        n_cls = 2 if d["kind"] == "tasks" else info.num_classes
        d["architecture"] = _fill_io_kwargs(archs.check_spec(arch), info.in_chans, n_cls)
        if not args.zoo:
            d["name"] = f"adhoc/{d['architecture']['name']}"
    return ZooConfig.from_dict(d).override(zoos.recipe_overrides(args.overrides))


def resolve_config(args: argparse.Namespace):
    """The recipe this command collects with (any domain; what the zoo's manifest records as `config`) and the data
    settings (DATA_KEYS of --set and the environment)."""
    if args.zoo and not (args.arch or args.dataset or args.arch_kwargs):
        cfg = zoos.resolve_recipe(args.zoo, args.overrides)
    elif args.zoo or args.arch or args.dataset:
        cfg = _adhoc_recipe(args)
    else:
        raise RPGInputError("--zoo: give a registry entry (see --list) or --arch/--dataset for an ad-hoc zoo")
    data_over = {k: v for k, v in parse_overrides(args.overrides).items() if k in DATA_KEYS}
    return cfg, DataConfig.from_sources(data_over)


def _check_out(out: Path) -> Path:
    """--out before any training: a folder (or a new one) that is not another command's output."""
    from rpg.formats import GENERATED_FORMAT, RUN_FORMAT, manifest_format

    check_output_dir(out)
    if out.is_dir():
        fmt = manifest_format(out)
        run_files = ("run.json", "generator.safetensors", "train_state.pt")     # a run, finished or not
        if fmt in (RUN_FORMAT, GENERATED_FORMAT) or any((out / f).is_file() for f in run_files):
            raise RPGInputError(f"--out {out}: holds a {fmt or RUN_FORMAT!r} folder, not a zoo; refusing to write a "
                                "zoo into it (choose another --out)")
    return out


def _main(args: argparse.Namespace) -> None:
    import json

    if args.list:
        for name, c in zoos.ZOOS.items():
            print(f"{name:32s} {c.description}")
        return
    cfg, data_cfg = resolve_config(args)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return
    out = _check_out(Path(args.out) if args.out else Path("runs/zoos") / cfg.name)
    set_threads(args.threads)
    t0 = time.time()
    # one path for every domain: the recipe's class collects (rpg.domains: each domain's recipe_class)
    folders = cfg.collect(out, data_cfg, args.device, progress=False if args.no_progress else None)
    for f in folders:
        m = read_json(f / "manifest.json")
        print(f"{f}: {len(m['checkpoints'])} checkpoints, {m['params']} params" + cfg.score_summary(m))
    print(f"done in {time.time() - t0:.1f} s")


def main(argv: list[str] | None = None) -> int:
    return run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
