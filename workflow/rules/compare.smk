# Comparisons over runs and revisions (the `compare` block): every member's per-layer statistics on a
# common relative-depth axis, tables and figures in results/compare/<name>/. A member of another run
# is read where that run's own config wrote it (run that config first).
COMPARE_RESULTS = "results/compare"


def compare_stats(wildcards):
    return [member.stats for member in COMPARISONS[wildcards.comparison]]


def compare_untrained(wildcards):
    """The run's noise-floor routing stores, when the comparison asks for them and the run has a noise floor."""
    if not (CFG["compare"][wildcards.comparison]["noise_floor"] and NOISE_FLOOR):
        return []
    return [f"{RESULTS}/noise_floor/{ROUTING['name']}/seed{seed}.zarr" for seed in NOISE_FLOOR["seeds"]]


def compare_member_records(wildcards):
    return [vars(member) for member in COMPARISONS[wildcards.comparison]]


def compare_figure_outputs():
    from polyroute.plots.compare import COMPARE_FIGURES

    return {
        name: report(f"{COMPARE_RESULTS}/{{comparison}}/figures/{name}.png", caption=f"../report/compare_{name}.rst",
                     category="Comparison", subcategory="{comparison}")
        for name in COMPARE_FIGURES
    }


def compare_targets():
    return [f"{COMPARE_RESULTS}/{name}/{part}" for name in COMPARISONS for part in ("comparison.zarr", "tables")]


if COMPARISONS:

    wildcard_constraints:
        comparison=_alternatives(COMPARISONS),

    rule compare:
        input:
            stats=compare_stats,
            untrained=compare_untrained,
        output:
            store=directory(f"{COMPARE_RESULTS}/{{comparison}}/comparison.zarr"),
            tables=directory(f"{COMPARE_RESULTS}/{{comparison}}/tables"),
            **compare_figure_outputs(),
        params:
            members=compare_member_records,
            # what the untrained models' statistics read, as rule noise_floor
            stats={key: CFG["stats"][key] for key in ("log_base", "distribution", "affinity_top_m", "exclusive_threshold")},
            reference=CFG["reference_language"],
            run=RUN,
            figures=list(compare_figure_outputs()),
        log:
            f"logs/compare/{{comparison}}.log",
        conda:
            ENVS["analysis"]
        script:
            "../scripts/compare.py"
