"""Generation methods behind one seam (`rpg.methods.base`): RPG now; a new method is a class + one line here."""

from __future__ import annotations

from rpg.errors import RPGInputError
from rpg.methods.base import Condition, ConditionSpec, FitSettings, Method, RunInfo, SampleOptions, expand, generate
from rpg.methods.retrieval import RetrievalMethod
from rpg.methods.rpg import RPGMethod

METHODS: dict[str, type] = {"rpg": RPGMethod, "retrieval": RetrievalMethod}


def get_method(name: str, where: str = "--method") -> Method:
    """A fresh instance of the method registered as `name`."""
    if name not in METHODS:
        raise RPGInputError(f"{where} {name!r}: unknown method (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]()


__all__ = ["METHODS", "Condition", "ConditionSpec", "FitSettings", "Method", "RunInfo", "SampleOptions", "expand",
           "generate", "get_method"]
