# Stage 1: collect a checkpoint zoo (the generator's training data), once per `zoos` entry.


rule collect:
    """Train/fine-tune one zoo: results/<scale>/zoos/<zoo>/*.safetensors + manifest.json (written last)."""
    input:
        recipes=recipe_inputs,
        lm=lm_zoo_inputs,
    output:
        manifest="results/{scale}/zoos/{zoo}/manifest.json",
    log:
        "results/{scale}/logs/collect/{zoo}.log",
    benchmark:
        "results/{scale}/benchmarks/collect/{zoo}.tsv"
    conda:
        "../envs/rpg.yaml"
    threads: job_threads()
    resources:
        gpu=1,
    params:
        device=config["device"],
        recipe=zoo_recipe,
        digest=recipe_digest,
        folder=folder_of("manifest"),
        data=data_flags,
        lm=lm_flags,
        extra=collect_flags,
        threads=threads_flag,
    shell:
        "python -m rpg collect"
        " --zoo {params.recipe:q}"
        " --out {params.folder:q}"
        " --device {params.device:q}"
        " {params.threads} {params.data} {params.lm} {params.extra}"
        " > {log} 2>&1"
