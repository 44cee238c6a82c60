# Stage 5: assemble tables and figures. One generic rule: `tables.<id>` in the config names the
# builder (`rpg table BUILDER`, registered in rpg/tables), the rows, their groups and the paper's
# numbers. Adding a table = a config entry (+ a registered builder when no existing one fits);
# `rule all` picks it up. Table rules are cheap CPU work: `localrule` keeps them on the submitting
# machine under SLURM.


rule table:
    """results/<scale>/<table>.csv + .png from the rows' evaluation JSON files, their generators' run
    folders (training cost, generator size and settings), zoos and generated sets (the builders that
    draw parameters read them; every file a table reads is an input)."""
    input:
        metrics=table_metrics,
        runs=table_runs,
        zoos=table_zoos,
        generated=table_generated,
        paper=table_paper,
        memory=table_memory,
    output:
        csv=report(
            "results/{scale}/{table}.csv",
            caption="../report/table.rst",
            category="Tables",
        ),
        png=report(
            "results/{scale}/{table}.png",
            caption="../report/table.rst",
            category="Tables",
        ),
    log:
        "results/{scale}/logs/table/{table}.log",
    localrule: True
    conda:
        "../envs/rpg.yaml"
    params:
        builder=table_builder,
        labels=table_labels,
        groups=groups_flag,
        paper=paper_flag,
        runs=folders_flag("runs", "runs"),
        zoos=folders_flag("zoos", "zoos"),
        generated=folders_flag("generated", "generated"),
        memory=memory_flag,
    shell:
        "python -m rpg table {params.builder:q}"
        " --scale {wildcards.scale}"
        " --metrics {input.metrics}"
        " --labels {params.labels:q}"
        " {params.groups}"
        " {params.runs}"
        " {params.zoos}"
        " {params.generated}"
        " {params.paper}"
        " {params.memory}"
        " --out {output.csv}"
        " --plot {output.png}"
        " > {log} 2>&1"


rule publish_table:
    """results/<table>.csv/.png: the configured scale's table, where the user's command expects it.
    (results/<scale>/<table>.csv keeps every scale's own copy, so scales never overwrite each other.)
    """
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


rule claims:
    """results/claims.csv + .md: which of the paper's claims hold, judged by `rpg claims` (rules stated in
    rpg/tables/claims.py and in the report) from the published tables of the configured scale. A claim
    whose table is not configured is reported as not built (inconclusive). The outputs are committed, so
    alone it needs `--forcerun claims` in a fresh clone (rule all builds it through the tables).
    """
    input:
        tables=expand("results/{table}.csv", table=CLAIM_TABLES),
    output:
        csv=report(
            "results/claims.csv",
            caption="../report/claims.rst",
            category="Claims",
        ),
        md="results/claims.md",
    log:
        "results/logs/claims.log",
    localrule: True
    conda:
        "../envs/rpg.yaml"
    params:
        scale=SCALE,
        expect=claims_expect,
    shell:
        "python -m rpg claims --tables {input.tables} --scale {params.scale:q} {params.expect}"
        " --out {output.csv} --md {output.md}"
        " > {log} 2>&1"
