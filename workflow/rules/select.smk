# Expert selection (METHODS.md section 5): one subnetwork file per method and target language.


rule select_experts:
    input:
        routing=f"{RESULTS}/routing/{ROUTING['name']}.zarr",
        stats=f"{RESULTS}/stats/{ROUTING['name']}.zarr",
        model_info=f"{RESULTS}/model/info.json",
    output:
        f"{RESULTS}/selection/{{method}}/{{target}}.json",
    params:
        settings=method_settings,
        stats=CFG["stats"],
        model_id=CFG["model"]["id"],
    log:
        f"{LOGS}/select_experts/{{method}}/{{target}}.log",
    script:
        "../scripts/select_experts.py"
