# Evaluation (METHODS.md section 8): every variant (base, each trained adapter) on every configured
# task (interventions: steer-<name> / mask-<name> on `interventions.tasks`), one GPU job per (variant,
# task) writing one result file per language.


rule evaluate:
    input:
        data=eval_data,
        source=variant_source,
        model_info=f"{RESULTS}/model/info.json",
        weights=f"{RESULTS}/model/weights.json",
    output:
        directory(f"{RESULTS}/eval/{{variant}}/{{task}}"),
    params:
        model=CFG["model"],
        languages=eval_languages,
        settings=eval_settings,
        variant=variant_spec,
    log:
        f"{LOGS}/evaluate/{{variant}}/{{task}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate/{{variant}}/{{task}}.tsv"
    # One CPU thread locally (Snakemake sets OMP_NUM_THREADS from it): on a CPU run of the demo model
    # a job is mostly Python and imports, so two jobs side by side finish sooner than one with two
    # threads. The Slurm profile sets 8; a CPU run of a larger model: --set-threads evaluate=N.
    threads: 1
    resources:
        **gpu_resources("evaluate"),
    conda:
        ENVS["gpu"]
    script:
        "../scripts/evaluate.py"


# The base model's measured per-language score, for the routing statistics (stats.scores).
if EVALUATION["scores"]:

    rule eval_scores:
        input:
            f"{RESULTS}/eval/base/{EVALUATION['scores']['task']}",
        output:
            f"{RESULTS}/eval/scores.csv",
        params:
            metric=EVALUATION["scores"]["metric"],
        log:
            f"{LOGS}/eval_scores.log",
        conda:
            ENVS["analysis"]
        script:
            "../scripts/eval_scores.py"
