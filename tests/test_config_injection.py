"""Config values never run as shell code, and the workflow's config checks are one line naming the key.

- every string field of the config schema (map keys, list items and map values included) is planted with
  a command substitution, backticks, `;` and a quote: either the schema rejects it, or the `snakemake -n -p`
  commands carry it only as ONE single-quoted argument (what the shell would run is parsed with shlex);
  no planted command ever runs;
- a table's `paper` CSV stays in resources/paper/, an unknown table builder or zoo recipe fails the dry
  run in one line naming its key;
- the documentation never puts a target after an option that takes several values (it would be
  swallowed: a crash, or for --forcerun the whole workflow) unless `--` ends the options.
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from rpg.methods import METHODS

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
MINI = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
# what the dry runs schedule: every table and benchmark (the claims read them all) and Fig. 8's generation
TARGETS = ["results/claims.md", "results/mini/fig7.json", "results/mini/fig8_generation.json"]


# ------------------------------------------------------------------------------------------------ schema walk
def _resolve(node: dict) -> dict:
    while "$ref" in node:
        target = SCHEMA
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _admits_string(node: dict) -> bool:
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else types
    return "string" in types or any(isinstance(v, str) for v in node.get("enum", []))


def string_fields(node: dict = SCHEMA, path: str = "") -> list[str]:
    """Every place a string can go: `a.b`, `a.*` (a map's values), `a.<key>` (its keys), `a[]` (list items)."""
    node = _resolve(node)
    out = [path] if path and _admits_string(node) else []
    for key, sub in node.get("properties", {}).items():
        out += string_fields(sub, f"{path}.{key}".lstrip("."))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out += string_fields(extra, f"{path}.*")
        out.append(f"{path}.<key>")  # JSON keys are strings, named by the config author
    if isinstance(node.get("items"), dict):
        out += string_fields(node["items"], f"{path}[]")
    return out


def _key(mapping: dict, old, new) -> None:
    mapping[new] = mapping.pop(old)


def _sample(where):
    return {f"{where}.sample.{k}": (lambda c, v, k=k, w=where: _entry(c, w).setdefault("sample", {}).update({k: v}))
            for k in ("sampler", "mode", "conditions")}


def _entry(cfg: dict, where: str) -> dict:
    return cfg["experiments"]["vit_tiny"] if where == "experiments.*" else cfg["variants"]["vit_base_ddim5"]


def _table(cfg: dict, table: str) -> dict:
    return cfg["tables"][table]


# how to plant a value in each string field of config/config.yaml (an entry the dry run's targets use)
PLANT = {
    "scale": lambda c, v: c.update(scale=v),
    "device": lambda c, v: c.update(device=v),
    "preset": lambda c, v: c.update(preset=v),
    **{f"data.{k}": (lambda c, v, k=k: c["data"].update({k: v})) for k in
       ("fashion_mnist_root", "cifar_root", "imagenet_root", "imagenet_train_dir", "imagenet_val_dir", "ade20k_root")},
    "collect.set[]": lambda c, v: c["collect"]["set"].append(f"x={v}"),
    "train.set[]": lambda c, v: c["train"]["set"].append(f"x={v}"),
    **{f"sample.{k}": (lambda c, v, k=k: c["sample"].update({k: v})) for k in ("sampler", "mode", "conditions")},
    "zoos.<key>": lambda c, v: c["zoos"].update({v: {"recipe": "mini/vit_tiny"}}),
    "zoos.*.recipe": lambda c, v: c["zoos"]["vit_tiny"].update(recipe=v),
    "zoos.*.set[]": lambda c, v: c["zoos"]["vit_tiny"].setdefault("set", []).append(f"x={v}"),
    "experiments.<key>": lambda c, v: c["experiments"].update({v: {"zoo": "vit_tiny", "label": "x"}}),
    "experiments.*.zoo": lambda c, v: c["experiments"]["vit_tiny"].update(zoo=v),
    "experiments.*.label": lambda c, v: c["experiments"]["vit_tiny"].update(label=v),
    "experiments.*.method": lambda c, v: c["experiments"]["vit_tiny"].update(method=v),
    "experiments.*.preset": lambda c, v: c["experiments"]["tasks_retrieval"].update(preset=v),
    "experiments.*.set[]": lambda c, v: c["experiments"]["vit_tiny"].setdefault("set", []).append(f"x={v}"),
    **_sample("experiments.*"),
    "variants.<key>": lambda c, v: c["variants"].update({v: {"generator": "vit_tiny", "label": "x"}}),
    "variants.*.generator": lambda c, v: c["variants"]["vit_base_ddim5"].update(generator=v),
    "variants.*.label": lambda c, v: c["variants"]["vit_base_ddim5"].update(label=v),
    **_sample("variants.*"),
    "tables.<key>": lambda c, v: c["tables"].update({v: copy.deepcopy(c["tables"]["table1"])}),
    "tables.*.builder": lambda c, v: _table(c, "table6").update(builder=v),
    "tables.*.rows[]": lambda c, v: _table(c, "table6")["rows"].append(v),
    "tables.*.paper": lambda c, v: _table(c, "table6").update(paper=v),
    "tables.*.groups.<key>": lambda c, v: _key(_table(c, "table6")["groups"], "ViT-Tiny", v),
    "tables.*.groups.*[]": lambda c, v: _table(c, "table6")["groups"]["ViT-Tiny"].append(v),
    "tables.*.caption": lambda c, v: _table(c, "table6").update(caption=v),
    "tables.*.mini_substitute": lambda c, v: _table(c, "table6").update(mini_substitute=v),
    "tables.*.paper_substitute": lambda c, v: _table(c, "table6").update(paper_substitute=v),
    "tables.*.memory.study": lambda c, v: _table(c, "table8")["memory"].update(study=v),
    "tables.*.memory.sizes.<key>": lambda c, v: _key(_table(c, "table8")["memory"]["sizes"], "CNN (m)", v),
    "tables.*.memory.sizes.*": lambda c, v: _table(c, "table8")["memory"]["sizes"].update({"CNN (m)": v}),
    "benchmarks.<key>": lambda c, v: c["benchmarks"].update({v: {"zoo": "vit_tiny", "token_sizes": [32]}}),
    "benchmarks.*.zoo": lambda c, v: c["benchmarks"]["fig7"].update(zoo=v),
    "benchmarks.*.preset": lambda c, v: c["benchmarks"]["fig7"].update(preset=v),
    "benchmarks.*.set[]": lambda c, v: c["benchmarks"]["fig7"].setdefault("set", []).append(f"x={v}"),
    "fig8.sizes[]": lambda c, v: c["fig8"]["sizes"].append(v),
    "fig8.methods[]": lambda c, v: c["fig8"]["methods"].append(v),
    "fig8.rpg_generate": lambda c, v: c["fig8"].update(rpg_generate=v),
}
# `set` overrides the workflow resolves for every experiment when it loads (an unknown key is an error there)
RESOLVED_AT_LOAD = {"train.set[]", "experiments.*.set[]"}
# fields a dry run of TARGETS puts into a command (the others are report captions)
IN_COMMANDS = {"collect.set[]", "zoos.*.set[]", "benchmarks.*.set[]", "experiments.*.label", "variants.*.label",
               "tables.*.groups.<key>", "tables.*.memory.sizes.<key>", "data.fashion_mnist_root"}


def planted(tmp: Path, n: int, variant: int) -> str:
    """A value that runs `touch INJECTED_<n>...` if a shell ever expands it."""
    mark = tmp / f"INJECTED_{n}_"  # the _ ends the number: INJECTED_1_ is not in INJECTED_10_
    if variant == 0:
        return f"a $(touch {mark})"
    return f"a`touch {mark}b`; touch {mark}c '"


def validates(cfg: dict) -> bool:
    try:
        jsonschema.Draft202012Validator(SCHEMA).validate(cfg)
    except jsonschema.ValidationError:
        return False
    return True


def dry_run(tmp: Path, cfg: dict, *targets: str) -> subprocess.CompletedProcess:
    work = tmp / f"work{len(list(tmp.glob('work*')))}"
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [BIN / "snakemake", "--snakefile", REPO / "Snakefile", "--directory", work, "-n", "-p", *targets]
    return subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True, timeout=600)


def commands(output: str) -> list[str]:
    prefix = "Shell command: "
    return [line[len(prefix):] for line in output.splitlines() if line.startswith(prefix)]


def assert_only_quoted(cmds: list[str], value: str, mark: str) -> bool:
    """Every occurrence of the planted value is inside one shell word, single-quoted (no expansion); True when
    some command carries it."""
    seen = False
    for cmd in cmds:
        if mark not in cmd:
            continue
        words = [w for w in shlex.split(cmd) if mark in w]
        assert words and all(value in w for w in words), cmd    # one argument each, never split into a command
        for word in words:
            assert shlex.quote(word) in cmd, cmd                # written single-quoted, as shlex.quote does
        seen = True
    return seen


def config_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("config ")]


def test_every_string_field_is_planted():
    """A new string field in the schema needs a planting here (so it is checked below)."""
    assert sorted(set(string_fields())) == sorted(PLANT)


def test_method_enum_is_the_registry():
    assert sorted(_resolve(SCHEMA["$defs"]["experiment"])["properties"]["method"]["enum"]) == sorted(METHODS)


@pytest.mark.parametrize("variant", [0, 1], ids=["dollar", "backtick"])
def test_planted_shell_code_never_runs(tmp_path, variant):
    fields = sorted(PLANT)
    passing = []
    for n, field in enumerate(fields):
        cfg = copy.deepcopy(MINI)
        PLANT[field](cfg, planted(tmp_path, n, variant))
        if validates(cfg):
            passing.append((n, field))
    # values the schema lets through: only free text, paths and `set` values, which the rules quote
    assert {f for _, f in passing} <= IN_COMMANDS | RESOLVED_AT_LOAD | {
        "tables.*.caption", "tables.*.mini_substitute", "tables.*.paper_substitute"} | {
        f for f in PLANT if f.startswith("data.")}, passing

    together = copy.deepcopy(MINI)
    for n, field in passing:
        if field in RESOLVED_AT_LOAD:
            cfg = copy.deepcopy(MINI)
            PLANT[field](cfg, planted(tmp_path, n, variant))
            proc = dry_run(tmp_path, cfg, *TARGETS)
            # the experiment's config is resolved when the workflow loads: one line naming the experiment
            assert proc.returncode != 0 and len(config_lines(proc)) == 1, proc.stdout + proc.stderr
            assert config_lines(proc)[0].startswith("config experiments."), proc.stderr
        else:
            PLANT[field](together, planted(tmp_path, n, variant))
    proc = dry_run(tmp_path, together, *TARGETS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cmds = commands(proc.stdout)
    assert cmds
    for n, field in passing:
        if field not in RESOLVED_AT_LOAD:
            value = planted(tmp_path, n, variant)
            seen = assert_only_quoted(cmds, value, f"INJECTED_{n}_")
            assert seen or field not in IN_COMMANDS, field
    assert not list(tmp_path.glob("INJECTED*"))
    assert not list(REPO.glob("INJECTED*"))


@pytest.mark.parametrize("field, value", [
    ("benchmarks.*.preset", "mini $(touch INJECTED)"),
    ("fig8.rpg_generate", "convnext_large:large $(touch INJECTED)"),
    ("experiments.*.preset", "x$(touch INJECTED)"),
    ("experiments.*.method", "rpg;id"),
    ("tables.*.paper", "../../../etc/passwd"),
    ("tables.*.paper", "resources/paper/../../../etc/passwd.csv"),
    ("tables.*.memory.sizes.*", "resnet18 --help"),
    ("fig8.sizes[]", "-rf"),
])
def test_shell_bound_values_are_checked_by_the_schema(field, value):
    cfg = copy.deepcopy(MINI)
    PLANT[field](cfg, value)
    assert not validates(cfg)


def test_shipped_values_still_validate():
    """The patterns admit what the shipped configs use (presets with dots/dashes included)."""
    cfg = copy.deepcopy(MINI)
    PLANT["benchmarks.*.preset"](cfg, "paper_resnet18")
    PLANT["experiments.*.preset"](cfg, "mini-rpg.v2")
    PLANT["tables.*.paper"](cfg, "resources/paper/table6.csv")
    assert validates(cfg)


# -------------------------------------------------------------------------------- one-line workflow errors
@pytest.mark.parametrize("field, value, key", [
    ("tables.*.paper", "../../../etc/passwd", "config tables.table6.paper"),
    ("tables.*.builder", "nosuchbuilder", "config tables.table6.builder"),
    ("zoos.*.recipe", "mini/nonexistent", "config zoos.vit_tiny.recipe"),
])
def test_bad_workflow_config_is_one_line(tmp_path, field, value, key):
    cfg = copy.deepcopy(MINI)
    PLANT[field](cfg, value)
    proc = dry_run(tmp_path, cfg, "results/mini/table6.csv")
    assert proc.returncode != 0
    lines = config_lines(proc)
    assert len(lines) == 1 and lines[0].startswith(key), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


# ------------------------------------------------------------------------------- documented command order
# Snakemake options that take any number of values: a target after one is read as one more value
VARIADIC = {"--forcerun", "--resources", "--configfile", "--config", "--until", "--omit-from", "--allowed-rules",
            "--set-threads"}
# options of the documented commands that take exactly one value
ONE_VALUE = {"--cores", "-c", "--jobs", "-j", "--directory", "-d", "--snakefile", "-s", "--profile",
             "--workflow-profile", "--report", "--executor", "-e"}
DOCS = [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _is_value(option: str, word: str) -> bool:
    """`word` reads as a value of `option` (not a target)."""
    if option in {"--resources", "--config", "--set-threads"}:
        return "=" in word
    if option == "--configfile":
        return word.endswith((".yaml", ".yml", ".json"))
    return re.fullmatch(r"[A-Za-z_]\w*", word) is not None  # a rule name


def swallowed_target(words: list[str]) -> str | None:
    """The target a variadic option swallows in `snakemake WORDS...`, when no target came before it."""
    option, has_target, skip = None, False, False
    for word in words:
        if word == "--":
            return None
        if skip:
            skip = False
        elif word.startswith("-"):
            option = word if word.split("=")[0] in VARIADIC and "=" not in word else None
            skip = word in ONE_VALUE
        elif option is None:
            has_target = True
        elif not has_target and not _is_value(option, word):
            return word
    return None


def documented_commands(text: str) -> list[list[str]]:
    """Argument lists of the `snakemake` commands in code spans, fenced and indented code blocks."""
    pieces, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        pieces += [line] if fenced or line.startswith("    ") else re.findall(r"`([^`]+)`", line)
    out = []
    for piece in pieces:
        for m in re.finditer(r"(?:^|[\s/])snakemake((?:\s+[^\s#&;|)]+)*)", piece):
            try:
                out.append(shlex.split(m.group(1)))
            except ValueError:
                continue
    return out


def test_swallowed_target_detection():
    assert swallowed_target(["--forcerun", "table", "results/table1.csv"]) == "results/table1.csv"
    assert swallowed_target(["--cores", "1", "--resources", "gpu=1", "results/table1.csv"]) == "results/table1.csv"
    assert swallowed_target(["--configfile", "config/paper.yaml", "results/x.csv"]) == "results/x.csv"
    assert swallowed_target(["--forcerun", "table", "--", "results/table1.csv"]) is None
    assert swallowed_target(["results/table1.csv", "--forcerun", "results/mini/runs/x/generator.safetensors"]) is None
    assert swallowed_target(["results/claims.md", "--forcerun", "claims", "--cores", "1"]) is None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_documented_targets_come_before_variadic_options(doc):
    bad = [" ".join(words) for words in documented_commands(doc.read_text())
           if swallowed_target(words) is not None]
    assert not bad, bad
