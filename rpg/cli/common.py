"""Small helpers shared by the command-line entry points: argument types, the --threads option, one-line errors.

Threads, devices and precision themselves are library concerns (rpg.runtime)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from rpg.errors import RPGInputError


def run(main_fn: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser,
        argv: list[str] | None, interrupted: str = "interrupted") -> int:
    """Parse `argv`, run `main_fn`; bad input becomes one `error:` line and exit status 2 (argparse's own
    errors too: one line, without the usage block, so a log shows the fault and not a wall of options).
    Ctrl-C (SIGINT) becomes the one line `interrupted` and the shell's status for it, 130: outputs are written
    atomically, so there is nothing to report but what a rerun will do."""
    def one_line_errors(p: argparse.ArgumentParser) -> None:
        def one_line_error(message: str):
            print(f"error: {p.prog}: {message}", file=sys.stderr)
            raise SystemExit(2)
        p.error = one_line_error
        for action in p._actions:          # subcommands (`rpg lm model`) parse with parsers of their own
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    one_line_errors(sub)
    one_line_errors(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        main_fn(args)
    except RPGInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: {interrupted}", file=sys.stderr)
        return 130
    return 0


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """argparse `type=` for an integer in lo..hi: argparse turns the ArgumentTypeError into one usage line
    naming the option, at parse time (before a run folder is read or a model sampled)."""
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer") from None
        if value < lo or (hi is not None and value > hi):
            bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
            raise argparse.ArgumentTypeError(f"{text}: must be {bound}")
        return value
    parse.__name__ = "integer"   # argparse names the type in its messages
    return parse


def seed_arg(text: str) -> int:
    """--seed: 0 <= seed < 2**63 (torch generators take 64-bit seeds)."""
    from rpg.generator.config import MAX_SEED
    return int_in(0, MAX_SEED - 1)(text)


# Far more threads than cores only slows torch down, and past the process's thread limit OpenMP cannot start
# them and the process dies (a segfault, not an error): refuse such a count while parsing.
MAX_THREADS = 4 * (os.cpu_count() or 1)


def threads_arg(text: str) -> int:
    """--threads: 1..MAX_THREADS."""
    return int_in(1, MAX_THREADS)(text)


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=threads_arg, default=None,
        help="torch CPU threads (default: the machine's idle cores, measured over 0.3 s, at least 1: every "
        "core on an otherwise idle machine, fewer on a busy one so OpenMP does not oversubscribe it)")
