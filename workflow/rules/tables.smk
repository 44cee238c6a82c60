# Stage 5: assemble the paper tables. One rule per table; its rows come from config `tables.<name>`.
# To add a table: a `tables.tableN` config entry + a `rule tableN` here (rule all picks it up).
# Table rules are cheap CPU work: `localrule` keeps them on the submitting machine under SLURM.


rule table1:
    """Paper Table 1 (original vs generated accuracy, seven architectures) for the configured scale."""
    input:
        metrics=table_metrics("table1"),
        paper=paper_numbers("table1"),
    output:
        csv=report("results/{scale}/table1.csv", caption="../report/table1.rst", category="Tables"),
        png=report("results/{scale}/table1.png", caption="../report/table1.rst", category="Tables"),
    params:
        labels=table_labels("table1"),
    log:
        "results/{scale}/logs/table1.log",
    localrule: True
    conda:
        "../envs/rpg.yaml"
    shell:
        "python -m rpg table table1"
        " --scale {wildcards.scale}"
        " --metrics {input.metrics}"
        " --labels {params.labels:q}"
        " --paper {input.paper}"
        " --out {output.csv}"
        " --plot {output.png}"
        " > {log} 2>&1"


rule publish_table:
    """results/<table>.csv/.png: the configured scale's table, where the user's command expects it.
    (results/<scale>/<table>.csv keeps every scale's own copy, so scales never overwrite each other.)"""
    input:
        csv=f"results/{SCALE}/{{table}}.csv",
        png=f"results/{SCALE}/{{table}}.png",
    output:
        csv="results/{table}.csv",
        png="results/{table}.png",
    log:
        "results/logs/publish_{table}.log",
    localrule: True
    conda:
        "../envs/rpg.yaml"
    shell:
        "(cp {input.csv} {output.csv} && cp {input.png} {output.png}) > {log} 2>&1"
