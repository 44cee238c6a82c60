# Stage 4: measure the original and the generated checkpoints on the zoo's test set.


rule evaluate:
    """results/<scale>/metrics/<arch>.json (format rpg-eval/1)."""
    input:
        zoo=pinned("results/{scale}/zoos/{arch}/manifest.json"),
        generated=pinned("results/{scale}/generated/{arch}/manifest.json"),
    output:
        metrics="results/{scale}/metrics/{arch}.json",
    params:
        device=config["device"],
        zoo=folder_of("zoo"),
        generated=folder_of("generated"),
        data=data_flags,
    log:
        "results/{scale}/logs/evaluate/{arch}.log",
    benchmark:
        "results/{scale}/benchmarks/evaluate/{arch}.tsv"
    resources:
        gpu=1,
    conda:
        "../envs/rpg.yaml"
    shell:
        "python -m rpg evaluate"
        " --zoo {params.zoo}"
        " --generated {params.generated}"
        " --out {output.metrics}"
        " --device {params.device}"
        " {params.data}"
        " > {log} 2>&1"
