# Statistics of the routing store (METHODS.md sections 2-4), its tables and its figures.


rule routing_stats:
    input:
        routing=f"{RESULTS}/routing/{{dataset}}.zarr",
    output:
        stats=directory(f"{RESULTS}/stats/{{dataset}}.zarr"),
        tables=directory(f"{RESULTS}/stats/{{dataset}}/tables"),
    params:
        stats=CFG["stats"],
        languages=LANGUAGES,
        reference=CFG["reference_language"],
    log:
        f"{LOGS}/routing_stats/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/routing_stats/{{dataset}}.tsv"
    script:
        "../scripts/routing_stats.py"
