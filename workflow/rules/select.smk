# Expert selection (METHODS.md section 5): one subnetwork file per method and target language.


rule select_experts:
    input:
        routing=f"{RESULTS}/routing/{ROUTING['name']}.zarr",
        model_info=f"{RESULTS}/model/info.json",
    output:
        f"{RESULTS}/selection/{{method}}/{{target}}.json",
    params:
        settings=method_settings,
    log:
        f"{LOGS}/select_experts/{{method}}/{{target}}.log",
    conda:
        ENVS["analysis"]
    script:
        "../scripts/select_experts.py"
