# Other checkpoints of the model (model.revisions; Khandelwal's training dynamics): each is routed,
# its statistics computed and, when its `evaluate` is true, the base model evaluated, on its own under
# results/<run>/revisions/<label>/, by the scripts of the run's own steps. The run's own rules never
# see the revisions (common.smk), so adding one adds its jobs and reruns nothing else.
if REVISIONS:

    wildcard_constraints:
        revision=_alternatives(REVISIONS),

    rule revision_weights:
        output:
            f"{RESULTS}/revisions/{{revision}}/model/weights.json",
        params:
            model=revision_model,
        log:
            f"{LOGS}/revisions/{{revision}}/download_model.log",
        localrule: True
        conda:
            ENVS["data"]
        script:
            "../scripts/download_model.py"

    rule revision_extract_routing:
        input:
            data=routing_data,
            model_info=f"{RESULTS}/model/info.json",
            weights=f"{RESULTS}/revisions/{{revision}}/model/weights.json",
        output:
            temp(directory(f"{RESULTS}/revisions/{{revision}}/routing/shards/{{dataset}}/{{shard}}.zarr")),
        params:
            model=revision_model,
            attrs=revision_attrs,
            extraction=CFG["extraction"],
            languages=LANGUAGES,
            split=ROUTING.get("split"),
            shards=len(SHARDS),
        log:
            f"{LOGS}/revisions/{{revision}}/extract_routing/{{dataset}}/{{shard}}.log",
        benchmark:
            f"{BENCHMARKS}/revisions/{{revision}}/extract_routing/{{dataset}}/{{shard}}.tsv"
        threads: 2
        resources:
            **gpu_resources("extract_routing"),  # a revision has the main model's architecture and size
        conda:
            ENVS["gpu"]
        script:
            "../scripts/extract_routing.py"

    rule revision_gather_routing:
        input:
            shards=revision_shards,
            model_info=f"{RESULTS}/model/info.json",
        output:
            directory(f"{RESULTS}/revisions/{{revision}}/routing/{{dataset}}.zarr"),
        params:
            languages=LANGUAGES,
        log:
            f"{LOGS}/revisions/{{revision}}/gather_routing/{{dataset}}.log",
        conda:
            ENVS["data"]
        script:
            "../scripts/gather_routing.py"

    rule revision_routing_stats:
        input:
            routing=f"{RESULTS}/revisions/{{revision}}/routing/{{dataset}}.zarr",
            scores=revision_scores,
        output:
            stats=directory(f"{RESULTS}/revisions/{{revision}}/stats/{{dataset}}.zarr"),
            tables=directory(f"{RESULTS}/revisions/{{revision}}/stats/{{dataset}}/tables"),
        params:
            stats=revision_stats_settings,
            languages=LANGUAGES,
            reference=CFG["reference_language"],
        log:
            f"{LOGS}/revisions/{{revision}}/routing_stats/{{dataset}}.log",
        benchmark:
            f"{BENCHMARKS}/revisions/{{revision}}/routing_stats/{{dataset}}.tsv"
        conda:
            ENVS["analysis"]
        script:
            "../scripts/routing_stats.py"

    rule revision_evaluate:
        input:
            data=eval_data,
            source=[],
            model_info=f"{RESULTS}/model/info.json",
            weights=f"{RESULTS}/revisions/{{revision}}/model/weights.json",
        output:
            directory(f"{RESULTS}/revisions/{{revision}}/eval/{{variant}}/{{task}}"),
        wildcard_constraints:
            variant="base",
        params:
            model=revision_model,
            languages=eval_languages,
            settings=eval_settings,
            variant={"kind": "base", "strength": None},
        log:
            f"{LOGS}/revisions/{{revision}}/evaluate/{{variant}}/{{task}}.log",
        benchmark:
            f"{BENCHMARKS}/revisions/{{revision}}/evaluate/{{variant}}/{{task}}.tsv"
        threads: 1
        resources:
            **gpu_resources("evaluate"),
        conda:
            ENVS["gpu"]
        script:
            "../scripts/evaluate.py"

    if EVALUATION["scores"]:

        rule revision_eval_scores:
            input:
                f"{RESULTS}/revisions/{{revision}}/eval/base/{EVALUATION['scores']['task']}",
            output:
                f"{RESULTS}/revisions/{{revision}}/eval/scores.csv",
            params:
                metric=EVALUATION["scores"]["metric"],
            log:
                f"{LOGS}/revisions/{{revision}}/eval_scores.log",
            conda:
                ENVS["analysis"]
            script:
                "../scripts/eval_scores.py"
