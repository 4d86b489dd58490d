# Data: one parquet of normalised records per dataset and language. Runs on the login node
# (localrule): compute nodes without internet never need the hub.


rule download_dataset:
    output:
        data_file("{dataset}", "{language}"),
    params:
        splits=dataset_splits,
        local_dir=CFG["datasets"]["local"],
        max_items=CFG["datasets"]["max_items"],
    log:
        f"{LOGS}/download_dataset/{{dataset}}/{{language}}.log",
    localrule: True
    cache: True
    conda:
        ENVS["data"]
    script:
        "../scripts/download_dataset.py"
