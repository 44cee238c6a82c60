# Stage 4: measure the original and the generated checkpoints on the zoo's test set.


rule evaluate:
    """results/<scale>/metrics/<row>.json (format rpg-eval/1)."""
    input:
        zoo=lambda wc: pinned(zoo_manifest_of(wc)),
        generated=pinned_samples,
        lm=lm_row_inputs,
    output:
        metrics="results/{scale}/metrics/{row}.json",
    log:
        "results/{scale}/logs/evaluate/{row}.log",
    benchmark:
        "results/{scale}/benchmarks/evaluate/{row}.tsv"
    conda:
        "../envs/rpg.yaml"
    threads: job_threads()
    resources:
        gpu=1,
    params:
        zoo=folder_of("zoo"),
        generated=folder_of("generated"),
        data=data_flags,
        device=config["device"],
        threads=threads_flag,
        analysis=evaluate_flags,
    shell:
        "python -m rpg evaluate"
        " --zoo {params.zoo:q}"
        " --generated {params.generated:q}"
        " --out {output.metrics}"
        " --device {params.device:q}"
        " {params.threads} {params.data} {params.analysis}"
        " > {log} 2>&1"
