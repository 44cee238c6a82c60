"""Language-model adapters (paper Tab. 3): DoRA zoos with peft, scored with lm-eval, all offline.

`config` (the recipe dataclasses; light), `models` (GGUF conversion, base model, peft DoRA), `tasks` (local lm-eval
tasks from shipped text), `collect` (the adapter zoo), `scoring` (lm-eval), `domain` (the domain seam's class,
LanguageModelDomain, registered in rpg.domains.DOMAINS). The artefact commands are `rpg lm` (rpg.cli.lm).
"""
