"""`python -m rpg <command>` / `rpg <command>`: one entry point for every step.

Each command lives in its own module with a `main(argv)` function, so it can also be run as
`python -m rpg.<module>`.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("rpg.cli.train", "train an RPG generator on a folder of checkpoints"),
    "generate": ("rpg.cli.generate", "sample new weights from a trained generator"),
    "collect": ("rpg.cli.collect", "train a checkpoint zoo (the generator's training data)"),
    "evaluate": ("rpg.cli.evaluate", "measure original and generated checkpoints"),
    "table": ("rpg.cli.table", "assemble a paper table (CSV + plot) from evaluation JSON"),
    "memory": ("rpg.cli.memory", "peak training memory vs token size (paper Fig. 7), JSON + plot"),
    "memory-study": ("rpg.cli.memory_study", "training memory vs generated parameters per method (Fig. 8)"),
    "claims": ("rpg.cli.claims", "which of the paper's claims hold, judged from the table CSVs"),
    "lm": ("rpg.cli.lm", "offline base model and tasks of the DoRA adapter zoos (Tab. 3)"),
}


def usage() -> str:
    lines = ["usage: rpg <command> [options]   (rpg <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
