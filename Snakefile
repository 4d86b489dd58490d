# polyroute: language routing in Mixture-of-Experts LLMs (see README.md and shared DESIGN.md).
#   snakemake --cores 2                                   # the embedded demo
#   snakemake --profile slurm --configfile configs/qwen3-30b-a3b.yaml
from snakemake.utils import min_version

min_version("9.27")


configfile: "config.yaml"

# The image of all envs/ (`apptainer build polyroute.sif envs/apptainer.def`), used only with
# `--sdm conda apptainer`; without it jobs run in the active environment or `--sdm conda`'s envs.
containerized: "polyroute.sif"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/routing.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/interventions.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/revisions.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/demo.smk"  # corpus and pretrained demo model: shipped, rebuilt on demand


rule all:
    input:
        all_targets(),
        intervention_targets(),
        revision_targets(),
        compare_targets(),
    default_target: True
