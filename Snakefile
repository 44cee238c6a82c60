# RPG reproduction workflow (Recurrent Diffusion for Large-Scale Parameter Generation, arXiv 2501.11587).
#
#   snakemake results/table1.csv --cores 1 --resources gpu=1                              # mini scale (CPU)
#   snakemake results/table1.csv --configfile config/paper.yaml --cores 1 --resources gpu=1  # paper scale
#
# Put the target first: --resources and --configfile take several values and swallow a target
# that follows them. Per Table row (config `architectures`) the pipeline is
#   collect -> train -> generate -> evaluate,   then one `tableN` rule per paper table.
# Snakemake decides what to run; DVC (dvc.yaml) only stores the expensive artefacts.

from snakemake.utils import min_version, validate

min_version("9.27")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"


localrules:
    all,


rule all:
    """Every configured paper table (CSV + plot) for the configured scale."""
    input:
        expand("results/{table}.{ext}", table=TABLES, ext=["csv", "png"]),
    default_target: True
