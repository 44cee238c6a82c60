"""`rpg train`: fit a generation method (default: RPG, rpg.generator.training) on a zoo into a run folder.

The method writes RUN/run.json (method, zoo, zoo fingerprint) once the fit is complete; `rpg generate --run RUN`
then reads the method from there.
"""

from __future__ import annotations

import argparse
import fcntl
from pathlib import Path

from rpg import io
from rpg.cli.common import add_threads_arg, int_in
from rpg.cli.common import run as run_cli
from rpg.configs import parse_overrides
from rpg.evaluation import make_eval_fn
from rpg.generator.config import PRESETS
from rpg.methods import METHODS, FitSettings, get_method
from rpg.runtime import resolve_device, set_threads


# ------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rpg train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="rpg",
                   help=f"generation method to fit (default rpg; known: {', '.join(sorted(METHODS))})")
    p.add_argument("--checkpoints", required=True,
                   help="folder of state_dicts (*.safetensors, or *.pt/*.pth loaded with weights_only=True), "
                        "used in sorted name order; an optional manifest.json gives permutation ids and tasks")
    p.add_argument("--out", required=True,
                   help="run folder; rerunning the same command resumes an unfinished run of the same config and "
                        "zoo (a finished one is trained again); one training at a time per folder")
    p.add_argument("--preset", default="mini",
                   help="size preset of the method; rpg: " + ", ".join(sorted(PRESETS)) +
                   " (paper Tab. 12: tiny/small/base/large; mini: CPU preset). Default mini")
    p.add_argument("--config", help="a full config JSON (e.g. a run's config.json) instead of a preset")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", default=[],
                   help="override a config value, e.g. --set train.steps=2000 --set recurrent.kind=lstm")
    p.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda[:N]")
    p.add_argument("--eval-every", type=int_in(0), default=None,
                   help="every N steps generate 2 models and test them (needs an evaluable zoo manifest)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--restart-on-change", action="store_true",
                   help="if --out holds a run saved with another config or zoo, start over instead of failing "
                        "(the workflow passes it: Snakemake reruns training when its settings change)")
    add_threads_arg(p)
    return run_cli(_train_cli, p, argv, interrupted="interrupted; rerunning the same command resumes the run from "
                   "its last saved state (train.save_every), if it saved one")


def _train_cli(args: argparse.Namespace) -> None:
    io.check_output_dir(args.out)
    set_threads(args.threads)
    method = get_method(args.method)
    device = resolve_device(args.device)
    settings = FitSettings(preset=args.preset, config_file=args.config, overrides=parse_overrides(args.set),
                           device=device, restart_on_change=args.restart_on_change, eval_every=args.eval_every,
                           eval_hook=lambda zoo: make_eval_fn(zoo, device), quiet=args.quiet)
    created = _missing_dirs(Path(args.out))
    try:
        out = method.fit(args.checkpoints, args.out, settings)
    except BaseException:
        _remove_empty(created)
        raise
    print(f"wrote {out}")


def _missing_dirs(path: Path) -> list[Path]:
    """`path` and its ancestors that do not exist yet, deepest first (what a fit's mkdir will create)."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_empty(created: list[Path]) -> None:
    """A fit that failed before writing anything (an unreadable zoo, a bad config) leaves no run folder that
    holds only its lock file: remove the folders this call created while they are empty but for it."""
    if created and created[0].is_dir() and [p.name for p in created[0].iterdir()] == [".lock"]:
        with open(created[0] / ".lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:      # another `rpg train` took the folder meanwhile: it is its lock
                return
            (created[0] / ".lock").unlink()
    for d in created:
        try:
            d.rmdir()
        except OSError:          # not empty (the fit wrote something to resume from), or already gone
            return


if __name__ == "__main__":
    raise SystemExit(main())
