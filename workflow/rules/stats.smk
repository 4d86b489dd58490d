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


# The noise floor (stats.noise_floor): the routing dataset through the architecture with untrained
# weights, one GPU job per initialisation seed, then the model's statistics beside theirs.
if NOISE_FLOOR:

    rule untrained_routing:
        input:
            data=routing_data,
            model_info=f"{RESULTS}/model/info.json",
            weights=f"{RESULTS}/model/weights.json",
        output:
            directory(f"{RESULTS}/noise_floor/{{dataset}}/seed{{seed}}.zarr"),
        wildcard_constraints:
            seed=r"\d+",
        params:
            model=CFG["model"],
            extraction=CFG["extraction"],
            languages=LANGUAGES,
            split=ROUTING.get("split"),
            per_language=NOISE_FLOOR["items"],
        log:
            f"{LOGS}/untrained_routing/{{dataset}}/seed{{seed}}.log",
        benchmark:
            f"{BENCHMARKS}/untrained_routing/{{dataset}}/seed{{seed}}.tsv"
        threads: 2
        resources:
            **gpu_resources("untrained_routing"),
        conda:
            ENVS["gpu"]
        script:
            "../scripts/untrained_routing.py"

    rule noise_floor:
        input:
            stats=f"{RESULTS}/stats/{ROUTING['name']}.zarr",
            untrained=[f"{RESULTS}/noise_floor/{ROUTING['name']}/seed{seed}.zarr" for seed in NOISE_FLOOR["seeds"]],
        output:
            table=report(f"{RESULTS}/summary/noise_floor.csv", caption="../report/noise_floor.rst",
                         category="Routing statistics"),
            figure=report(f"{RESULTS}/summary/figures/noise_floor.png", caption="../report/noise_floor.rst",
                          category="Routing statistics"),
        params:
            # only what the statistics read: a figure setting (heatmap_layers, scores) does not rerun it
            stats={key: CFG["stats"][key] for key in ("log_base", "distribution", "divergence_input", "affinity_top_m",
                                                      "exclusive_threshold")},
            reference=CFG["reference_language"],
            targets=TARGETS,
        log:
            f"{LOGS}/noise_floor.log",
        conda:
            ENVS["analysis"]
        script:
            "../scripts/noise_floor.py"
