# Routing extraction: model checks first, then one GPU job per shard, then one labelled store.
# model_info reads only the model's config.json (no weights) and checks the run's settings against
# it (budgets, layer windows); it depends on `model` alone so other edits never rerun extraction.
# download_model fetches a hub model's weights on the login node (compute nodes need no internet).


rule model_info:
    output:
        f"{RESULTS}/model/info.json",
    params:
        model=CFG["model"],
    log:
        f"{LOGS}/model_info.log",
    localrule: True
    conda:
        ENVS["data"]
    script:
        "../scripts/model_info.py"


rule download_model:
    output:
        f"{RESULTS}/model/weights.json",
    params:
        model=CFG["model"],
    log:
        f"{LOGS}/download_model.log",
    localrule: True
    conda:
        ENVS["data"]
    script:
        "../scripts/download_model.py"


rule extract_routing:
    input:
        data=routing_data,
        model_info=f"{RESULTS}/model/info.json",
        weights=f"{RESULTS}/model/weights.json",
    output:
        temp(directory(f"{RESULTS}/routing/shards/{{dataset}}/{{shard}}.zarr")),
    params:
        model=CFG["model"],
        extraction=CFG["extraction"],
        languages=LANGUAGES,
        split=ROUTING.get("split"),
        shards=len(SHARDS),
    log:
        f"{LOGS}/extract_routing/{{dataset}}/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/extract_routing/{{dataset}}/{{shard}}.tsv"
    threads: 2
    resources:
        **gpu_resources("extract_routing"),
    conda:
        ENVS["gpu"]
    script:
        "../scripts/extract_routing.py"


rule gather_routing:
    input:
        shards=routing_shards,
        model_info=f"{RESULTS}/model/info.json",
    output:
        directory(f"{RESULTS}/routing/{{dataset}}.zarr"),
    params:
        languages=LANGUAGES,
    log:
        f"{LOGS}/gather_routing/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/gather_routing/{{dataset}}.tsv"
    conda:
        ENVS["data"]
    script:
        "../scripts/gather_routing.py"
