# Comparisons over runs and revisions (the `compare` block): every member's per-layer statistics on a
# common relative-depth axis, tables and figures in results/compare/<name>/. A member of another run
# is read where that run's own config wrote it (run that config first).
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
            stats={key: CFG["stats"][key] for key in ("log_base", "distribution", "divergence_input", "affinity_top_m",
                                                     "exclusive_threshold")},
            reference=CFG["reference_language"],
            run=RUN,
            figures=list(compare_figure_outputs()),
        log:
            f"logs/compare/{{comparison}}.log",
        conda:
            ENVS["analysis"]
        script:
            "../scripts/compare.py"
