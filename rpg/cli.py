"""Small helpers shared by the command-line entry points."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from rpg.errors import RPGInputError


def run(main_fn: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser,
        argv: list[str] | None) -> int:
    """Parse `argv`, run `main_fn`; bad input becomes one `error:` line and exit status 2."""
    args = parser.parse_args(argv)
    try:
        main_fn(args)
    except RPGInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """`--set a.b=value` pairs -> {"a.b": "value"} (values are parsed later, against the config types)."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise RPGInputError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out
