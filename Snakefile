# basis-nmce pipeline. Snakemake owns the graph, parallelism and GPU/cluster scheduling;
# every rule is one `basis-nmce <stage>` call with explicit inputs and outputs (no logic here).
# Run from this folder: `snakemake --cores 2` (or `make run`); Snakemake finds this file and
# its default profile, profiles/default (a link to workflow/profiles/default).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/analytic.smk"
include: "workflow/rules/basis.smk"
include: "workflow/rules/spectral.smk"
include: "workflow/rules/joint.smk"
include: "workflow/rules/nmce.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        REPORT,
