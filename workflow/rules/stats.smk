# Statistics of the routing store (METHODS.md sections 2-4), its tables and its figures.


rule routing_stats:
    input:
        routing=f"{RESULTS}/routing/{{dataset}}.zarr",
        scores=stats_scores() or [],
    output:
        stats=directory(f"{RESULTS}/stats/{{dataset}}.zarr"),
        tables=directory(f"{RESULTS}/stats/{{dataset}}/tables"),
    params:
        stats=CFG["stats"] | {"scores": stats_scores()},
        languages=LANGUAGES,
        reference=CFG["reference_language"],
    log:
        f"{LOGS}/routing_stats/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/routing_stats/{{dataset}}.tsv"
    conda:
        ENVS["analysis"]
    script:
        "../scripts/routing_stats.py"


rule routing_figures:
    input:
        stats=f"{RESULTS}/stats/{{dataset}}.zarr",
    output:
        **figure_outputs(),
    params:
        target=TARGETS[0] if TARGETS else CFG["reference_language"],
        high_resource=CFG["stats"]["high_resource"],
        heatmap_layers=CFG["stats"]["heatmap_layers"],
    log:
        f"{LOGS}/routing_figures/{{dataset}}.log",
    conda:
        ENVS["analysis"]
    script:
        "../scripts/routing_figures.py"
