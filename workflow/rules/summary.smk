# The run's key numbers as CSV (results/<run>/summary/), shown in the HTML report
# (`snakemake --report results/<run>/report.html`, which `make run` builds last).


rule summarize:
    input:
        stats=f"{RESULTS}/stats/{ROUTING['name']}.zarr",
        selections=[f"{RESULTS}/selection/{method}/{target}.json" for method in METHODS for target in TARGETS],
        adapters=[f"{RESULTS}/adapters/{method}/{target}" for method in TRAIN_METHODS for target in TARGETS],
        evaluations=eval_outputs(),
    output:
        language=report(f"{RESULTS}/summary/language.csv", caption="../report/summary_language.rst", category="Summary"),
        layer=report(f"{RESULTS}/summary/layer.csv", caption="../report/summary_layer.rst", category="Summary"),
        selection=report(f"{RESULTS}/summary/selection.csv", caption="../report/summary_selection.rst", category="Summary"),
        training=report(f"{RESULTS}/summary/training.csv", caption="../report/summary_training.rst", category="Summary"),
        **evaluation_summary_outputs(),
    params:
        bootstrap=EVALUATION["bootstrap"],
        seed=EVALUATION["seed"],
    log:
        f"{LOGS}/summarize.log",
    conda:
        ENVS["analysis"]
    script:
        "../scripts/summarize.py"
