"""One typed config loader: dataclass schemas, dicts from JSON/YAML, and dotted `--set` overrides.

Used by `rpg train` (RPGConfig.override), `rpg collect` (recipes.apply_overrides, the YAML recipes) and the data
settings (DataConfig.from_sources), so that one `--set key=value` means the same thing everywhere.

Also the one reader of YAML config data (`load_yaml`, `merge`, `extends_chain`): the zoo recipes (one file per
recipe, rpg/zoos/recipes), the Table 8 baselines' presets (rpg/methods/presets/<method>.yaml) and RPG's own presets
(rpg/generator/presets.yaml) all state their differences from what they `extends:`; mappings merge key by key,
lists and scalars replace.

Semantics (one for all three):
- a `--set` value is parsed against the declared type of the field it sets:
  `str` keeps the text as it is (`--set x=none` is the string "none");
  `X | None` accepts `none`/`null` (any case) as None, anything else is parsed as X;
  `bool` accepts true/false, yes/no, on/off, 1/0; `int` integers (`2`, not `2.0` or `1e3`);
  `float` numbers (`1e-4`, `2`);
  lists and mappings are JSON (`[1, 2]`, `{"a": 1}`); fields typed `dict` or `Any` take JSON when it parses,
  else the text;
- paths are dotted: `train.steps`, `save.lr`, list items by index (`phases.0.epochs`), keys inside a free-form
  mapping (`architecture.kwargs.embed_dim`); a mapping field may declare the dataclass its contents follow
  (`__field_schemas__ = {"dataset": DatasetSpec}`), so `dataset.normalize=none` is None as it is in DatasetSpec;
- values from Python (library use, YAML) are taken as they are and only type-checked;
- unknown keys and wrong types raise RPGInputError naming the key (and the file, via `where`).

Why an own small function and not OmegaConf structured configs (installed): OmegaConf rebuilds the schema from the
dataclass but not its `__post_init__` checks or the recipes' free-form `architecture.kwargs`; its `${...}`
interpolation would give a meaning to strings that today are plain text; its errors are multi-line
ValidationErrors that the CLI would have to translate into the one-line `error: FILE: key: ...` contract; and
`X | None` annotations under `from __future__ import annotations` need its newer releases. The rules above fit
in ~150 lines over `typing.get_type_hints`, and the dataclasses stay the one schema.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import yaml

from rpg.errors import RPGInputError

_NONE = ("none", "null")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _key(where: str, name: str | int) -> str:
    return f"{where}.{name}" if where else str(name)


def _split_optional(hint: Any) -> tuple[Any, bool]:
    """`X | None` -> (X, True); anything else -> (hint, False)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return inner[0], type(None) in args
    return hint, False


_INT_LIMIT = 2 ** 63


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def parse_text(text: str, hint: Any, key: str) -> Any:
    """A `--set` value (text) -> a Python value of the field's declared type `hint`."""
    base, optional = _split_optional(hint)
    low = text.strip().lower()
    if optional and low in _NONE:
        return None
    if base is str:
        return text
    if base is bool:
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise RPGInputError(f"{key}: expected true/false, got {text!r}")
    if base in (int, float):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise RPGInputError(f"{key}: expected a number, got {text!r}") from None
        if base is int and isinstance(value, float):
            # 1e30 would pass as an "integral" float: an integer field takes integer notation only
            raise RPGInputError(f"{key}: expected an integer, got {text!r}")
        return check_value(value, hint, key)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        origin = typing.get_origin(base) or base
        if origin in (list, tuple) or dataclasses.is_dataclass(base):
            raise RPGInputError(f"{key}: expected JSON ({getattr(origin, '__name__', origin)}), got {text!r}") from None
        return text  # dict / Any: free-form text
    return value


def check_value(value: Any, hint: Any, key: str) -> Any:
    """Type-check (and lightly convert: int -> float, dict -> dataclass) a Python value against `hint`."""
    base, optional = _split_optional(hint)
    if value is None:
        if optional or base is Any:
            return None
        raise RPGInputError(f"{key}: must not be null")
    if dataclasses.is_dataclass(base):
        return value if isinstance(value, base) else from_dict(base, value, key)
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin is list or base is list:
        if not isinstance(value, (list, tuple)):
            raise RPGInputError(f"{key}: expected a list, got {value!r}")
        return [check_value(v, args[0], _key(key, i)) for i, v in enumerate(value)] if args else list(value)
    if origin is dict or base is dict:
        if not isinstance(value, dict):
            raise RPGInputError(f"{key}: expected a mapping, got {value!r}")
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise RPGInputError(f"{key}: expected true/false, got {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise RPGInputError(f"{key}: expected an integer, got {value!r}")
        if abs(value) >= _INT_LIMIT:
            # no count, size or seed here can be that large; torch and numpy cannot even hold it (int64)
            raise RPGInputError(f"{key}: {value!r} is out of range (|value| < 2**63)")
        return int(value)
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RPGInputError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if base is str:
        if not isinstance(value, str):
            raise RPGInputError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type, d: Any, where: str = ""):
    """Build dataclass `cls` from a mapping: unknown keys and wrong types are errors naming `where.key`."""
    if not isinstance(d, dict):
        raise RPGInputError(f"{where or cls.__name__}: expected a mapping, got {type(d).__name__}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise RPGInputError(
            f"{where + ': ' if where else ''}unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} (known: {', '.join(names)})"
        )
    return cls(**{k: check_value(v, hints[k], _key(where, k)) for k, v in d.items()})


ADDED_LATER = "omit_at_default"


def added_later(default_factory: Any, **kw: Any) -> Any:
    """A field added after configs were recorded: `to_dict` leaves it out while it holds its default.

    Recorded configs (a run's config.json, Snakemake's params) then stay equal to what this version writes for
    the same settings, so adding a switch does not make every existing run look changed and retrain it, while
    a run that turns the switch on records it. `from_dict` fills the default in for a record without it."""
    return dataclasses.field(default_factory=default_factory, metadata={ADDED_LATER: True}, **kw)


def to_dict(obj: Any) -> Any:
    """A dataclass as plain dicts and lists (dataclasses.asdict), without `added_later` fields at their default."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get(ADDED_LATER) and value == f.default_factory():
                continue
            out[f.name] = to_dict(value)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_dict(v) for v in obj)
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return copy.deepcopy(obj)


def _step(hint: Any, node: Any, part: str, path: str, here: str, where: str) -> tuple[Any, Any]:
    """One path component: (the key or index into `node`, the declared type of what it reaches)."""
    base = _split_optional(hint)[0]
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise RPGInputError(f"{where} {path}: {part!r} is not an index of the {len(node)}-item list {here}")
        args = typing.get_args(base)
        return int(part), (args[0] if args else Any)
    if not isinstance(node, dict):
        raise RPGInputError(f"{where} {path}: cannot descend into {here} (not a mapping or list)")
    if dataclasses.is_dataclass(base):
        hints = _hints(base)
        if part not in hints:
            raise RPGInputError(f"{where} {path}: unknown key {part!r} in {here} (known: {', '.join(hints)})")
        return part, hints[part]
    return part, Any  # free-form mapping: any key


def apply_overrides(cls: type, d: dict, overrides: dict[str, Any], where: str = "--set") -> dict:
    """Apply dotted-path overrides to `d` (a to_dict() of `cls`) in place and return it.

    Text values are parsed against the declared type of the field they reach (see the module docstring)."""
    for path, raw in overrides.items():
        parts = path.split(".")
        node: Any = d
        hint: Any = cls
        for i, part in enumerate(parts):
            key, child = _step(hint, node, part, path, ".".join(parts[:i]) or "the config", where)
            if i == len(parts) - 1:
                node[key] = parse_text(raw, child, f"{where} {path}") if isinstance(raw, str) else raw
                break
            if isinstance(node, dict) and key not in node:
                node[key] = {}  # a new key inside a free-form mapping (architecture.kwargs.x)
            # a mapping field may declare the dataclass its contents follow (ZooConfig.dataset -> DatasetSpec)
            base = _split_optional(hint)[0]
            schemas = getattr(base, "__field_schemas__", {}) if dataclasses.is_dataclass(base) else {}
            hint = schemas.get(key, child)
            node = node[key]
    return d


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """`a.b=value` texts (as `--set` gives them) -> {"a.b": "value"}, in order, a later key replacing an earlier
    one (values are parsed later, against the config types)."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise RPGInputError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def override(obj: Any, overrides: dict[str, Any], where: str = "--set"):
    """A new dataclass instance of type(obj) with the overrides applied and everything re-validated."""
    d = apply_overrides(type(obj), to_dict(obj), overrides, where)
    return from_dict(type(obj), d, "")


# ------------------------------------------------------------------------------------------- YAML config data
EXTENDS = "extends"


class _YamlLoader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-4` as a string; config files mean a number."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)$"),
    list("-+0123456789."),
)


def load_yaml(path: str | Path) -> Any:
    """A YAML config file's content (None when empty); invalid YAML is one error line naming the file."""
    try:
        return yaml.load(Path(path).read_text(), Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise RPGInputError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


def merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`: mappings merge key by key (recursively); lists and scalars replace."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def extends_chain(start: Any, parent: Callable[[Any], Any], cycle: Callable[[list, Any], str],
                  key: Callable[[Any], Hashable] = lambda node: node) -> list:
    """`start`, what it `extends:`, what that extends, ...: `parent(node)` is the next node (None: the end).
    A node met twice (equal `key`) is an error; `cycle(chain, node)` words it."""
    chain = [start]
    while (node := parent(chain[-1])) is not None:
        if key(node) in [key(n) for n in chain]:
            raise RPGInputError(cycle(chain, node))
        chain.append(node)
    return chain


def merge_chain(entries: list[dict]) -> dict:
    """The mappings of an `extends_chain` (the extending one first) merged, base first, without `extends`."""
    d: dict = {}
    for entry in reversed(entries):
        d = merge(d, {k: v for k, v in entry.items() if k != EXTENDS})
    return d


def preset_entries(path: str | Path) -> dict[str, Any]:
    """A presets file: preset name -> its mapping (which may `extends:` another preset of the file)."""
    d = load_yaml(path) or {}
    if not isinstance(d, dict):
        raise RPGInputError(f"{path}: a presets file is a mapping of preset names, got {type(d).__name__}")
    return d


def resolve_preset(path: str | Path, name: str, what: str) -> dict:
    """Preset `name` of the presets file `path` with its `extends:` chain resolved; `what` names the kind of preset
    in errors (e.g. "pdiff")."""
    presets = preset_entries(path)

    def entry(n: str) -> dict:
        if n not in presets:
            raise RPGInputError(f"--preset {n!r}: not a {what} preset in {path} (known: {', '.join(presets)})")
        return dict(presets[n] or {})

    names = extends_chain(name, lambda n: entry(n).get(EXTENDS),
                          lambda chain, n: f"{path}: presets extend each other in a cycle "
                                           f"({' -> '.join(chain + [n])})")
    return merge_chain([entry(n) for n in names])

