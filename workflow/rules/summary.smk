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


# The interventions' part of the report: each variant's change vs base, the steering sweep with its
# collapse point, masking damage per window, routing shift per layer (against the base routing on the
# same sequences). Apart from summarize, so retraining an adapter does not redraw it.
if INTERVENTION_REPORT:

    rule intervention_report:
        input:
            evaluations=intervention_evaluations(),
            routing=f"{RESULTS}/routing/{ROUTING['name']}.zarr",
            expert_sets=[f"{RESULTS}/interventions/{name}.json" for name in INTERVENTIONS],
            shift_stores=[f"{RESULTS}/interventions/{name}.zarr" for name in INTERVENTIONS],
        output:
            changes=report(f"{RESULTS}/summary/interventions.csv", caption="../report/summary_interventions.rst",
                           category="Interventions"),
            steering=report(f"{RESULTS}/summary/steering.csv", caption="../report/summary_steering.rst",
                            category="Interventions"),
            routing_shift=report(f"{RESULTS}/summary/routing_shift.csv", caption="../report/summary_routing_shift.rst",
                                 category="Interventions"),
            sweep_figure=report(f"{RESULTS}/summary/figures/steering_sweep.png", caption="../report/steering_sweep.rst",
                                category="Interventions"),
            masking_figure=report(f"{RESULTS}/summary/figures/masking.png", caption="../report/masking.rst",
                                  category="Interventions"),
            shift_figure=report(f"{RESULTS}/summary/figures/routing_shift.png", caption="../report/routing_shift.rst",
                                category="Interventions"),
        params:
            bootstrap=EVALUATION["bootstrap"],
            seed=EVALUATION["seed"],
        log:
            f"{LOGS}/intervention_report.log",
        conda:
            ENVS["analysis"]
        script:
            "../scripts/intervention_report.py"
