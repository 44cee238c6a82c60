# Stage 2: train one generator per `experiments` entry (sampling variants reuse it, never retrain).


rule train:
    """results/<scale>/runs/<exp>/: config.json, tokenizer files, log.jsonl, train_state.pt (resume),
    and generator.safetensors, written last. With gpus > 1 the same CLI runs under torchrun.
    The output is the generator alone, so an interrupted job resumes from train_state.pt; a finished
    run that Snakemake reruns starts over (fresh_start; config/README.md, "Retraining on purpose").
    """
    input:
        zoo=pinned_zoo,
    output:
        generator="results/{scale}/runs/{exp}/generator.safetensors",
    log:
        "results/{scale}/logs/train/{exp}.log",
    benchmark:
        "results/{scale}/benchmarks/train/{exp}.tsv"
    conda:
        "../envs/rpg.yaml"
    threads: job_threads()
    resources:
        gpu=train_gpus,
    params:
        fresh=fresh_start,
        launch=train_launcher,
        method=train_method,
        zoo=folder_of("zoo"),
        run=folder_of("generator"),
        preset=train_preset,
        extra=train_flags,
        config=train_config,
        device=config["device"],
        threads=threads_flag,
    shell:
        "{params.fresh}{params.launch} train"
        " --method {params.method:q}"
        " --checkpoints {params.zoo:q}"
        " --out {params.run:q}"
        " --preset {params.preset:q}"
        " {params.extra}"
        " --device {params.device:q}"
        " {params.threads}"
        " --restart-on-change"
        " > {log} 2>&1"
