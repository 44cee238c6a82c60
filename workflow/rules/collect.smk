# Stage 1: collect a checkpoint zoo (the generator's training data) for one Table row.


rule collect:
    """Train/fine-tune one zoo: results/<scale>/zoos/<arch>/*.safetensors + manifest.json (written last)."""
    output:
        manifest="results/{scale}/zoos/{arch}/manifest.json",
    params:
        device=config["device"],
        zoo=zoo_name,
        folder=folder_of("manifest"),
        data=data_flags,
        extra=collect_flags,
    log:
        "results/{scale}/logs/collect/{arch}.log",
    benchmark:
        "results/{scale}/benchmarks/collect/{arch}.tsv"
    resources:
        gpu=1,
    conda:
        "../envs/rpg.yaml"
    shell:
        "python -m rpg collect"
        " --zoo {params.zoo}"
        " --out {params.folder}"
        " --device {params.device}"
        " {params.data} {params.extra}"
        " > {log} 2>&1"
