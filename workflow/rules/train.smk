# Subnetwork training (METHODS.md section 6): only the selected experts change; the artifact is a
# delta on the frozen base. One GPU job per (method, target); `training.gpus` processes through the
# deepspeed launcher inside the job's allocation.


rule train_subnetwork:
    input:
        selection=f"{RESULTS}/selection/{{method}}/{{target}}.json",
        data=training_data,
        model_info=f"{RESULTS}/model/info.json",
        weights=f"{RESULTS}/model/weights.json",
    output:
        directory(f"{RESULTS}/adapters/{{method}}/{{target}}"),
    params:
        model=CFG["model"],
        training={k: v for k, v in CFG["training"].items() if k != "methods"},
        split=TRAINING.get("split") if TRAINING else None,
        dataset=TRAINING["name"] if TRAINING else None,
    log:
        f"{LOGS}/train_subnetwork/{{method}}/{{target}}.log",
    benchmark:
        f"{BENCHMARKS}/train_subnetwork/{{method}}/{{target}}.tsv"
    threads: 2
    resources:
        **gpu_resources("train_subnetwork"),  # gpu = training.gpus: the deepspeed launcher's processes
    conda:
        ENVS["gpu"]
    script:
        "../scripts/train_subnetwork.py"
