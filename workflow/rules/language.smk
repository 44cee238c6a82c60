# Language-model zoos (paper Tab. 3, DoRA adapters): the offline artefacts they need, built once per scale
# (helpers in language_common.smk).
#   rpg lm model: a model shipped as GGUF in a pip package -> results/<scale>/lm/models/<id>/ (HF folder)
#   rpg lm task:  a local lm-eval task from shipped text  -> results/<scale>/lm/tasks/<id>/ (JSONL + YAML)


rule lm_model:
    """A shipped GGUF model converted once to a Hugging Face folder (fp32 safetensors + tokenizer)."""
    output:
        weights="results/{scale}/lm/models/{lm_model}/model.safetensors",
    log:
        "results/{scale}/logs/lm_model/{lm_model}.log",
    conda:
        "../envs/rpg.yaml"
    threads: job_threads()
    params:
        folder=folder_of("weights"),
        threads=threads_flag,
    shell:
        "python -m rpg lm model --name {wildcards.lm_model} --out {params.folder} {params.threads} > {log} 2>&1"


rule lm_task:
    """A local lm-eval task (train.jsonl, test.jsonl, <task>.yaml) built from text shipped in a package."""
    output:
        yaml="results/{scale}/lm/tasks/{lm_task}/{lm_task}.yaml",
    log:
        "results/{scale}/logs/lm_task/{lm_task}.log",
    localrule: True
    conda:
        "../envs/rpg.yaml"
    params:
        folder=folder_of("yaml"),
    shell:
        "python -m rpg lm task --name {wildcards.lm_task} --out {params.folder} > {log} 2>&1"
