# Stage 3: sample new weights from a trained generator.


rule generate:
    """results/<scale>/generated/<arch>/generated_NNN.safetensors + manifest.json (written last)."""
    input:
        generator=pinned("results/{scale}/rpg/{arch}/generator.safetensors"),
    output:
        manifest="results/{scale}/generated/{arch}/manifest.json",
    params:
        device=config["device"],
        run=folder_of("generator"),
        folder=folder_of("manifest"),
        num=config["generate"]["num"],
        seed=config["generate"]["seed"],
        sampler=generate_flags,
    log:
        "results/{scale}/logs/generate/{arch}.log",
    benchmark:
        "results/{scale}/benchmarks/generate/{arch}.tsv"
    resources:
        gpu=1,
    conda:
        "../envs/rpg.yaml"
    shell:
        "python -m rpg generate"
        " --run {params.run}"
        " --num {params.num}"
        " --out {params.folder}"
        " --seed {params.seed}"
        " {params.sampler}"
        " --device {params.device}"
        " > {log} 2>&1"
