# Measurements that are not tables of trained generators (config `benchmarks`, `fig8`).
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
        " --checkpoints {params.zoo:q}"
        " {params.flags}"
        " --device {params.device:q}"
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


# Paper Fig. 8: Table 8 reads its study (config tables.table8.memory), so `rule all` builds it; alone:
#   snakemake results/fig8.png --cores 1 --resources gpu=1


rule fig8:
    """Training memory vs generated parameters of RPG and the Table 8 baselines under a memory cap
    (`rpg memory-study`: each method's own fit, a few steps per stage; an allocation past the cap is
    recorded as OOM inside a child process).
    """
    output:
        json="results/{scale}/fig8.json",
        csv="results/{scale}/fig8.csv",
        png=report(
            "results/{scale}/fig8.png",
            caption="../report/fig8.rst",
            category="Benchmarks",
        ),
    log:
        "results/{scale}/logs/fig8.log",
    benchmark:
        "results/{scale}/benchmarks/fig8.tsv"
    localrule: True
    conda:
        "../envs/rpg.yaml"
    params:
        flags=fig8_flags,
    shell:
        "python -m rpg memory-study"
        " --out {output.json}"
        " --csv {output.csv}"
        " --plot {output.png}"
        " {params.flags}"
        " > {log} 2>&1"


# Also Fig. 8's study: one ConvNeXt-L (198M) from an untrained RPG-Large generator in partial mode on this CPU, with its
# time and peak memory (config fig8.rpg_generate). Its own rule: ~15 min of 2-core CPU that Fig. 8 does not plot.
#   snakemake results/mini/fig8_generation.json --cores 1 --resources gpu=1


rule fig8_generation:
    """One model of fig8.rpg_generate's size from an untrained generator of its preset, partial mode (the
    recurrent pass too, carrying its state), under Fig. 8's memory cap: time and peak memory.
    """
    output:
        json="results/{scale}/fig8_generation.json",
    log:
        "results/{scale}/logs/fig8_generation.log",
    benchmark:
        "results/{scale}/benchmarks/fig8_generation.tsv"
    localrule: True
    conda:
        "../envs/rpg.yaml"
    params:
        flags=fig8_generation_flags,
    shell:
        "python -m rpg memory-study"
        " --out {output.json}"
        " {params.flags}"
        " > {log} 2>&1"


rule publish_fig8:
    """results/fig8.csv/.png: the configured scale's Fig. 8."""
    input:
        csv=f"results/{SCALE}/fig8.csv",
        png=f"results/{SCALE}/fig8.png",
    output:
        csv="results/fig8.csv",
        png="results/fig8.png",
    log:
        "results/logs/publish_fig8.log",
    localrule: True
    conda:
        "../envs/rpg.yaml"
    shell:
        "(cp {input.csv} {output.csv} && cp {input.png} {output.png}) > {log} 2>&1"
