# Routing interventions (METHODS.md section 7): each experiment's expert set as JSON, and the routing
# dataset routed again under it (the routing shift). Evaluation variants steer-<name> / mask-<name>
# are built by the evaluate rule from these files (polyroute.interventions.experiments.variants).


# only when some experiment needs it (bandarkar-task)
if TASK_ROUTING:

    rule task_routing:
        input:
            data=data_file(TASK_ROUTING["name"], CFG["reference_language"]),
            model_info=f"{RESULTS}/model/info.json",
            weights=f"{RESULTS}/model/weights.json",
        output:
            directory(f"{RESULTS}/interventions/task/{TASK_ROUTING['name']}.zarr"),
        params:
            model=CFG["model"],
            extraction=CFG["extraction"],
            languages=[CFG["reference_language"]],
            split=TASK_ROUTING.get("split"),
        log:
            f"{LOGS}/task_routing.log",
        benchmark:
            f"{BENCHMARKS}/task_routing.tsv"
        threads: 1  # a short GPU job; one CPU thread as in rule evaluate
        resources:
            **gpu_resources("task_routing"),
        conda:
            ENVS["gpu"]
        script:
            "../scripts/task_routing.py"


rule intervention_experts:
    input:
        unpack(intervention_inputs),
    output:
        f"{RESULTS}/interventions/{{intervention}}.json",
    params:
        settings=intervention_settings,
    log:
        f"{LOGS}/intervention_experts/{{intervention}}.log",
    conda:
        ENVS["gpu"]
    script:
        "../scripts/intervention_experts.py"


rule intervention_routing:
    input:
        data=[data_file(ROUTING["name"], language) for language in LANGUAGES],
        expert_set=f"{RESULTS}/interventions/{{intervention}}.json",
        model_info=f"{RESULTS}/model/info.json",
        weights=f"{RESULTS}/model/weights.json",
    output:
        directory(f"{RESULTS}/interventions/{{intervention}}.zarr"),
    params:
        model=CFG["model"],
        extraction=CFG["extraction"],
        languages=LANGUAGES,
        split=ROUTING.get("split"),
        per_language=CFG["interventions"]["shift_items"],
    log:
        f"{LOGS}/intervention_routing/{{intervention}}.log",
    benchmark:
        f"{BENCHMARKS}/intervention_routing/{{intervention}}.tsv"
    threads: 1  # a short GPU job; one CPU thread as in rule evaluate
    resources:
        **gpu_resources("intervention_routing"),
    conda:
        ENVS["gpu"]
    script:
        "../scripts/intervention_routing.py"
