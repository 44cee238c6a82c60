"""`rpg train`: argument parsing for the RPG training loop (rpg.generator.training)."""

from __future__ import annotations

import argparse

from rpg import io
from rpg.cli.common import add_threads_arg, parse_overrides, resolve_device, set_threads
from rpg.cli.common import run as run_cli
from rpg.generator.config import PRESETS, RPGConfig, preset_config
from rpg.generator.training import train


# ------------------------------------------------------------------------------------------------ CLI
def build_config(preset: str, config_file: str | None, overrides: dict[str, str]) -> RPGConfig:
    if config_file:
        d = io.read_json(config_file)
        cfg = RPGConfig.from_dict(d, where=config_file)
        return cfg.override(overrides) if overrides else cfg
    return preset_config(preset, overrides)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rpg train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", required=True,
                   help="folder of state_dicts (*.safetensors, or *.pt/*.pth loaded with weights_only=True), "
                        "used in sorted name order; an optional manifest.json gives permutation ids and tasks")
    p.add_argument("--out", required=True, help="run folder; rerunning the same command resumes from it")
    p.add_argument("--preset", default="mini", choices=sorted(PRESETS),
                   help="size preset (paper Tab. 12: tiny/small/base/large; mini: CPU preset). Default mini")
    p.add_argument("--config", help="a full config JSON (e.g. a run's config.json) instead of a preset")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", default=[],
                   help="override a config value, e.g. --set train.steps=2000 --set recurrent.kind=lstm")
    p.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda[:N]")
    p.add_argument("--eval-every", type=int, default=None,
                   help="every N steps generate 2 models and test them (needs an evaluable zoo manifest)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--restart-on-change", action="store_true",
                   help="if --out holds a run saved with another config, start over instead of failing "
                        "(the workflow passes it: Snakemake reruns training when its settings change)")
    add_threads_arg(p)
    return run_cli(_train_cli, p, argv)


def _train_cli(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    overrides = parse_overrides(args.set)
    if args.eval_every is not None:
        overrides["train.eval_every"] = str(args.eval_every)
    cfg = build_config(args.preset, args.config, overrides)
    device = resolve_device(args.device)
    eval_fn = None
    if cfg.train.eval_every:
        from rpg.evaluation import make_eval_fn
        eval_fn = make_eval_fn(args.checkpoints, device)
    out = train(cfg, args.checkpoints, args.out, device=device, eval_fn=eval_fn, quiet=args.quiet,
                restart_on_change=args.restart_on_change)
    print(f"wrote {out}")


if __name__ == "__main__":
    raise SystemExit(main())
