"""Generation methods behind one seam (`rpg.methods.base`): RPG and the Table 8 baselines (`rpg.methods.baseline`);
a new method is a class + one line here."""

from __future__ import annotations

from rpg.errors import RPGInputError
from rpg.methods.base import Condition, ConditionSpec, FitSettings, Method, RunInfo, SampleOptions, expand, generate
from rpg.methods.d2nwg import D2NWGMethod
from rpg.methods.pdiff import PDiffMethod
from rpg.methods.retrieval import RetrievalMethod
from rpg.methods.rpg import RPGMethod
from rpg.methods.sane import SANEMethod
from rpg.methods.skde30 import SKDEMethod

METHODS: dict[str, type] = {"rpg": RPGMethod, "pdiff": PDiffMethod, "skde30": SKDEMethod, "sane": SANEMethod,
                            "d2nwg": D2NWGMethod, "retrieval": RetrievalMethod}


def get_method(name: str, where: str = "--method") -> Method:
    """A fresh instance of the method registered as `name`."""
    if name not in METHODS:
        raise RPGInputError(f"{where} {name!r}: unknown method (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]()


__all__ = ["METHODS", "Condition", "ConditionSpec", "FitSettings", "Method", "RunInfo", "SampleOptions", "expand",
           "generate", "get_method"]
