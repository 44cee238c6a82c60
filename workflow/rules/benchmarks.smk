# Measurements that are not tables of trained generators (config `benchmarks`, issue 10).
# Paper Fig. 7: peak training memory vs token size, from a few training steps per token size on a
# zoo shared with the experiments (collected once).


rule memory:
    """results/<scale>/<bench>.json + .png: `rpg memory` (each token size in a fresh process)."""
    input:
        zoo=bench_zoo,
    output:
        json="results/{scale}/{bench}.json",
        png=report(
            "results/{scale}/{bench}.png",
            caption="../report/memory.rst",
            category="Benchmarks",
        ),
    log:
        "results/{scale}/logs/memory/{bench}.log",
    benchmark:
        "results/{scale}/benchmarks/memory/{bench}.tsv"
    conda:
        "../envs/rpg.yaml"
    threads: job_threads()
    resources:
        gpu=1,
    params:
        zoo=folder_of("zoo"),
        flags=bench_flags,
        device=config["device"],
        threads=threads_flag,
    shell:
        "python -m rpg memory"
        " --checkpoints {params.zoo}"
        " {params.flags}"
        " --device {params.device}"
        " {params.threads}"
        " --out {output.json}"
        " --plot {output.png}"
        " > {log} 2>&1"


rule publish_memory:
    """results/<bench>.json/.png: the configured scale's copy."""
    input:
        json=f"results/{SCALE}/{{bench}}.json",
        png=f"results/{SCALE}/{{bench}}.png",
    output:
        json="results/{bench}.json",
        png="results/{bench}.png",
    log:
        "results/logs/publish_{bench}.log",
    localrule: True
    conda:
        "../envs/rpg.yaml"
    shell:
        "(cp {input.json} {output.json} && cp {input.png} {output.png}) > {log} 2>&1"
