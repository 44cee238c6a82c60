# Stage 2: train one RPG generator on a zoo.


rule train:
    """results/<scale>/rpg/<arch>/: config.json, tokenizer files, log.jsonl, train_state.pt (resume),
    and generator.safetensors, written last. With gpus > 1 the same CLI runs under torchrun."""
    input:
        zoo=pinned("results/{scale}/zoos/{arch}/manifest.json"),
    output:
        generator="results/{scale}/rpg/{arch}/generator.safetensors",
    params:
        device=config["device"],
        launch=train_launcher,
        zoo=folder_of("zoo"),
        run=folder_of("generator"),
        preset=train_preset,
        extra=train_flags,
    log:
        "results/{scale}/logs/train/{arch}.log",
    benchmark:
        "results/{scale}/benchmarks/train/{arch}.tsv"
    resources:
        gpu=train_gpus,
    conda:
        "../envs/rpg.yaml"
    shell:
        "{params.launch} train"
        " --checkpoints {params.zoo}"
        " --out {params.run}"
        " --preset {params.preset}"
        " {params.extra}"
        " --device {params.device}"
        " --restart-on-change"
        " > {log} 2>&1"
