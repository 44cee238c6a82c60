# Stage 3: sample new weights from a trained generator, once per experiment or sampling variant.


rule generate:
    """results/<scale>/generated/<row>/ (one subfolder per condition where there are several)
    + manifest.json, swapped in whole. A variant samples its generator experiment's run folder.
    """
    input:
        generator=pinned_generator,
    output:
        manifest="results/{scale}/generated/{row}/manifest.json",
    log:
        "results/{scale}/logs/generate/{row}.log",
    benchmark:
        "results/{scale}/benchmarks/generate/{row}.tsv"
    conda:
        "../envs/rpg.yaml"
    threads: job_threads()
    resources:
        gpu=1,
    params:
        run=folder_of("generator"),
        folder=folder_of("manifest"),
        num=sample_param("num"),
        seed=sample_param("seed"),
        sampler=sample_flags,
        device=config["device"],
        threads=threads_flag,
    shell:
        "python -m rpg generate"
        " --run {params.run:q}"
        " --num {params.num:q}"
        " --out {params.folder:q}"
        " --seed {params.seed:q}"
        " {params.sampler}"
        " --device {params.device:q}"
        " {params.threads}"
        " > {log} 2>&1"
