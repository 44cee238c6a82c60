# RPG reproduction workflow (Recurrent Diffusion for Large-Scale Parameter Generation, arXiv 2501.11587).
#
#   snakemake results/table1.csv --cores 1 --resources gpu=1                              # mini scale (CPU)
#   snakemake results/table1.csv --configfile config/paper.yaml --cores 1 --resources gpu=1  # paper scale
#
# Put the target first: --resources and --configfile take several values and swallow a target
# that follows them. Three kinds of config entries (config/README.md):
#   zoos        -> collect   (results/<scale>/zoos/<zoo>/)
#   experiments -> train     (results/<scale>/runs/<exp>/), then generate + evaluate
#   variants    -> generate + evaluate with another sampling of an experiment's run (never retrains)
#   tables      -> one generic `table` rule (results/<scale>/<table>.csv/.png, results/<table>.*)
# Snakemake decides what to run; DVC (dvc.yaml) only stores the expensive artefacts.

from snakemake.utils import min_version

min_version("9.27")


configfile: "config/config.yaml"


# common.smk first: it validates the config (one line naming the key on error) and defines the
# shared lookups; language_common.smk and params.smk hold the input/param functions of the rules.
include: "workflow/rules/common.smk"


report: "workflow/report/workflow.rst"


include: "workflow/rules/language_common.smk"
include: "workflow/rules/params.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/benchmarks.smk"
include: "workflow/rules/language.smk"


localrules:
    all,


# Every configured table and figure (CSV + plot) for the configured scale, and the claims report.
rule all:
    default_target: True
    input:
        expand("results/{table}.{ext}", table=TABLES, ext=["csv", "png"]),
        expand("results/{bench}.{ext}", bench=BENCHMARKS, ext=["json", "png"]),
        expand("results/{fig}.{ext}", fig=FIGURES, ext=["csv", "png"]),
        [f"results/{SCALE}/fig8_generation.json"]
        if config.get("fig8", {}).get("rpg_generate")
        else [],
        expand("results/claims.{ext}", ext=["csv", "md"] if CLAIM_TABLES else []),
