# Benchmarks (issue 13, paper Fig. 8): not part of `rule all`; build on purpose, e.g.
#   snakemake results/fig8.png --cores 1 --resources gpu=1


rule fig8:
    """Training memory vs generated parameters of RPG and the Table 8 baselines under a memory cap
    (benchmarks/memory.py; an allocation past the cap is recorded as OOM inside a child process).
    """
    input:
        script="benchmarks/memory.py",
    output:
        json="results/{scale}/fig8.json",
        csv="results/{scale}/fig8.csv",
        png="results/{scale}/fig8.png",
    log:
        "results/{scale}/logs/fig8.log",
    localrule: True
    conda:
        "../envs/rpg.yaml"
    params:
        flags=fig8_flags,
    shell:
        "python benchmarks/memory.py"
        " --out {output.json}"
        " --csv {output.csv}"
        " --plot {output.png}"
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
