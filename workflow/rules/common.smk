# Shared settings and input helpers. The config is validated here, before any job starts:
# a bad key, language or dataset stops the workflow with one line that names it.
import os
import re

from polyroute import config as polyroute_config

CFG = polyroute_config.validate(config)
# Other checkpoints of the model (model.revisions, revisions.smk) and comparisons (compare.smk): read
# here, then dropped from the model block the run's own rules get, so adding one reruns none of them.
from polyroute import revisions as polyroute_revisions

REVISIONS = polyroute_revisions.revisions(CFG)
REVISION_MODELS = {label: polyroute_revisions.revision_model(CFG, label) for label in REVISIONS}
REVISION_ATTRS = {label: polyroute_revisions.revision_attrs(CFG, label) for label in REVISIONS}
COMPARISONS = {name: polyroute_revisions.compare_members(CFG, name) for name in polyroute_revisions.active_comparisons(CFG)}
CFG["model"] = polyroute_revisions.main_model(CFG["model"])
RUN = CFG["run"]
RESULTS = f"results/{RUN}"
LOGS = f"logs/{RUN}"
BENCHMARKS = f"benchmarks/{RUN}"
SCHEMA = "workflow/schemas/config.schema.yaml"

# The software environment of each kind of job (envs/, used with `--sdm conda`): a rule names its kind
# with `conda: ENVS["<kind>"]`. Paths are relative to workflow/rules/, where every rule file lives.
ENVS = {
    "data": "../../envs/data.yaml",  # downloads, model metadata, assembling stores (CPU)
    "gpu": "../../envs/gpu.yaml",  # extraction, training, evaluation (CUDA torch, DeepSpeed)
    "analysis": "../../envs/analysis.yaml",  # statistics, figures, selection, summaries (no torch)
}

LANGUAGES = CFG["languages"]
ROUTING = CFG["datasets"]["routing"]
TRAINING = CFG["datasets"].get("training")
TASK_ROUTING = CFG["interventions"].get("task_data")  # English in-task text (Bandarkar's task experts)
TARGETS = CFG["selection"]["targets"]
METHODS = list(CFG["selection"]["methods"])
TRAIN_METHODS = CFG["training"]["methods"]
SHARDS = list(range(CFG["extraction"]["shards"]))
NOISE_FLOOR = CFG["stats"]["noise_floor"]  # untrained-architecture statistics (stats.smk), or None
EVALUATION = CFG["evaluation"]
EVAL_TASKS = list(EVALUATION["tasks"])
# variant name -> the adapter directory it adds to the base model (None for base)
VARIANTS = {"base": None} | (
    {f"{method}-{target}": f"{RESULTS}/adapters/{method}/{target}" for method in TRAIN_METHODS for target in TARGETS}
    if EVALUATION["adapters"] else {}
)
# steer-<name> / mask-<name> variants of the interventions block: (experiment, strength, languages)
from polyroute.interventions.experiments import experiments as _experiments, variants as _intervention_variants

INTERVENTION_VARIANTS = {
    name: (v.experiment, v.strength, _experiments(CFG)[v.experiment].languages)
    for name, v in _intervention_variants(CFG).items()
}
VARIANTS |= {name: f"{RESULTS}/interventions/{experiment}.json" for name, (experiment, _, _) in INTERVENTION_VARIANTS.items()}
INTERVENTION_TASKS = CFG["interventions"]["tasks"]
# intervention variants are evaluated: rule intervention_report (summary.smk) compares them with base
INTERVENTION_REPORT = bool(EVAL_TASKS and INTERVENTION_VARIANTS)

# Once the model's config has been read (first job of a run), check settings against it at parse
# time, so a budget or layer window that does not fit the model fails before any job starts.
def _check_known_model():
    path = f"{RESULTS}/model/info.json"
    if not os.path.exists(path):
        return
    from polyroute.models.info import read_model_info

    info = read_model_info(path)
    if (info.model, info.revision) == (CFG["model"]["id"], CFG["model"]["revision"]):
        polyroute_config.check_against_model(CFG, info)


_check_known_model()


def _alternatives(values):
    return "|".join(re.escape(str(v)) for v in values) or "(?!)"


# Wildcards can only take configured values, so no path can leave results/ or resources/data/.
def _eval_task(name):
    from polyroute.evaluate.tasks import get_task

    return get_task(name)


EVAL_DATASETS = {_eval_task(name).dataset for name in EVAL_TASKS}


wildcard_constraints:
    dataset=_alternatives({ref["name"] for ref in (ROUTING, TRAINING, TASK_ROUTING) if ref} | EVAL_DATASETS),
    variant=_alternatives(VARIANTS),
    task=_alternatives(EVAL_TASKS),
    language=_alternatives(LANGUAGES),
    target=_alternatives(TARGETS),
    method=_alternatives(METHODS),
    shard=r"\d+",


def dataset_splits(wildcards):
    """Every split of a dataset that some step reads, so one download serves them all (None = its default)."""
    splits = {ref.get("split") for ref in (ROUTING, TRAINING, TASK_ROUTING) if ref and ref["name"] == wildcards.dataset}
    for name in EVAL_TASKS:
        task = _eval_task(name)
        if task.dataset == wildcards.dataset:
            splits.add(task.test_split)
            if eval_settings_of(name)["num_fewshot"]:
                splits.add(task.fewshot_split or task.test_split)
    return sorted(splits, key=str)


def eval_settings_of(task):
    from polyroute.pipeline.evaluate import task_settings

    return task_settings(EVALUATION, task)


def eval_languages_of(task):
    return polyroute_config.evaluation_languages(task, EVALUATION["tasks"][task], LANGUAGES, CFG["datasets"]["local"])


def eval_languages_for(variant, task):
    """The task's languages, narrowed to an intervention's own `languages` for its variants."""
    languages = eval_languages_of(task)
    if variant in INTERVENTION_VARIANTS:
        languages = [code for code in languages if code in INTERVENTION_VARIANTS[variant][2]]
    return languages


def eval_data(wildcards):
    dataset = _eval_task(wildcards.task).dataset
    return [data_file(dataset, language) for language in eval_languages_for(wildcards.variant, wildcards.task)]


def eval_languages(wildcards):
    return eval_languages_for(wildcards.variant, wildcards.task)


def eval_settings(wildcards):
    return eval_settings_of(wildcards.task)


def variant_source(wildcards):
    """What a variant adds to the base model (an adapter directory or an intervention's expert-set
    file; nothing for base), so a retrained adapter or a changed expert set reruns its evaluation."""
    source = VARIANTS[wildcards.variant]
    return [source] if source else []


def variant_spec(wildcards):
    """The variant's kind, and the strength of an intervention variant."""
    if wildcards.variant in INTERVENTION_VARIANTS:
        return {"kind": "intervention", "strength": INTERVENTION_VARIANTS[wildcards.variant][1]}
    return {"kind": "base" if wildcards.variant == "base" else "adapter", "strength": None}


def variant_tasks(variant):
    """The tasks a variant is evaluated on: interventions only on `interventions.tasks` (null = all)."""
    if variant in INTERVENTION_VARIANTS and INTERVENTION_TASKS is not None:
        return [task for task in EVAL_TASKS if task in INTERVENTION_TASKS]
    return EVAL_TASKS


def eval_outputs():
    return [f"{RESULTS}/eval/{variant}/{task}" for variant in VARIANTS for task in variant_tasks(variant)
            if eval_languages_for(variant, task)]


def stats_scores():
    """The per-language scores file of the routing statistics: the config's, else the base model's
    measured scores when `evaluation.scores` names a task and metric, else none."""
    if CFG["stats"]["scores"]:
        return CFG["stats"]["scores"]
    return f"{RESULTS}/eval/scores.csv" if EVALUATION["scores"] else None


def data_file(dataset, language):
    return f"resources/data/{dataset}/{language}.parquet"


def routing_data(wildcards):
    return [data_file(wildcards.dataset, language) for language in LANGUAGES]


def routing_shards(wildcards):
    return [f"{RESULTS}/routing/shards/{wildcards.dataset}/{shard}.zarr" for shard in SHARDS]


def method_settings(wildcards):
    """A selector's settings with the run-level ones it reads, so only their change reruns it."""
    from polyroute.pipeline.select import selector_settings

    return selector_settings(wildcards.method, CFG)


def training_data(wildcards):
    return data_file(TRAINING["name"], wildcards.target)


def all_targets():
    targets = [f"{RESULTS}/routing/{ROUTING['name']}.zarr", f"{RESULTS}/stats/{ROUTING['name']}.zarr"]
    targets += [f"{RESULTS}/stats/{ROUTING['name']}/figures/{name}.png" for name in expected_figures()]
    targets += [f"{RESULTS}/selection/{method}/{target}.json" for method in METHODS for target in TARGETS]
    targets += [f"{RESULTS}/adapters/{method}/{target}" for method in TRAIN_METHODS for target in TARGETS]
    targets += eval_outputs()
    targets += [f"{RESULTS}/summary/{name}.csv" for name in SUMMARY_TABLES]
    if NOISE_FLOOR:
        targets += [f"{RESULTS}/summary/noise_floor.csv", f"{RESULTS}/summary/figures/noise_floor.png"]
    return targets


SUMMARY_TABLES = ["language", "layer", "selection", "training"] + (["evaluation", "gains"] if EVAL_TASKS else [])


def evaluation_summary_outputs():
    """The evaluation tables and the gains figure of `summarize`, when any task is evaluated."""
    if not EVAL_TASKS:
        return {}
    return {
        "evaluation": report(f"{RESULTS}/summary/evaluation.csv", caption="../report/summary_evaluation.rst",
                             category="Evaluation"),
        "gains": report(f"{RESULTS}/summary/gains.csv", caption="../report/summary_gains.rst", category="Evaluation"),
        "gains_figure": report(f"{RESULTS}/summary/figures/gains.png", caption="../report/gains.rst",
                               category="Evaluation"),
    }


def expected_figures():
    """The figures the settings allow: per-token ones need per-token output, the isolation figure a
    high-resource list, the parallel divergence a parallel-text routing dataset."""
    from polyroute.data import get_spec
    from polyroute.data.records import PARALLEL_TEXT
    from polyroute.plots import FIGURES

    skip = set()
    if not CFG["extraction"]["per_token"]:
        skip |= {"consistency", "vocabulary"}
    if not CFG["stats"]["high_resource"]:
        skip.add("isolation")
    if get_spec(ROUTING["name"]).kind != PARALLEL_TEXT:
        skip.add("divergence_parallel")
    return [name for name in FIGURES if name not in skip]


def figure_outputs():
    """One report item per figure, each with its own caption from workflow/report/."""
    return {
        name: report(
            f"{RESULTS}/stats/{{dataset}}/figures/{name}.png",
            caption=f"../report/{name}.rst",
            category="Routing statistics",
        )
        for name in expected_figures()
    }


# Interventions (workflow/rules/interventions.smk): the experiments and their inputs.
from polyroute.pipeline.interventions import experiment_settings

INTERVENTIONS = _experiments(CFG)


wildcard_constraints:
    intervention=_alternatives(INTERVENTIONS),


def intervention_inputs(wildcards):
    """The stores an experiment's recipe reads: the routing store, plus the English task routing for Bandarkar."""
    inputs = {"routing": f"{RESULTS}/routing/{ROUTING['name']}.zarr", "model_info": f"{RESULTS}/model/info.json"}
    if INTERVENTIONS[wildcards.intervention].experts == "bandarkar-task":
        inputs["task_routing"] = f"{RESULTS}/interventions/task/{TASK_ROUTING['name']}.zarr"
    return inputs


def intervention_settings(wildcards):
    return experiment_settings(INTERVENTIONS[wildcards.intervention], CFG["stats"])


def intervention_evaluations():
    """The evaluations the interventions report compares: every steer-/mask- variant's, and the base
    model's on the same tasks (not the adapters', so retraining one leaves the report alone)."""
    variants = list(INTERVENTION_VARIANTS)
    tasks = {task for variant in variants for task in variant_tasks(variant)}
    return [f"{RESULTS}/eval/{variant}/{task}" for variant in ["base", *variants] for task in variant_tasks(variant)
            if task in tasks and eval_languages_for(variant, task)]


def intervention_targets():
    targets = [f"{RESULTS}/interventions/{name}{ext}" for name in INTERVENTIONS for ext in (".json", ".zarr")]
    if INTERVENTION_REPORT:
        targets += [f"{RESULTS}/summary/{name}.csv" for name in ("interventions", "steering", "routing_shift")]
        targets += [f"{RESULTS}/summary/figures/{name}.png" for name in ("steering_sweep", "masking", "routing_shift")]
    return targets


# Slurm requests of the GPU rules (gpu, mem_mb, runtime) from the model's size and each job's work, as
# `polyroute plan` prints them (polyroute.sizing). A job whose data are not downloaded yet is sized when
# it is ready to run. slurm/config.yaml leaves these three to the rules.
from polyroute.sizing.resources import rule_resources as _rule_resources


def gpu_resources(rule):
    return _rule_resources(CFG, rule, f"{RESULTS}/model/info.json", f"{RESULTS}/model/weights.json")


# Revisions of the model (workflow/rules/revisions.smk): their model blocks, attrs and inputs.
def revision_model(wildcards):
    return REVISION_MODELS[wildcards.revision]


def revision_attrs(wildcards):
    return REVISION_ATTRS[wildcards.revision]


def revision_shards(wildcards):
    return [f"{RESULTS}/revisions/{wildcards.revision}/routing/shards/{wildcards.dataset}/{shard}.zarr" for shard in SHARDS]


def revision_scores_file(label):
    """A revision's own measured per-language scores, when it is evaluated and `evaluation.scores` is set."""
    return f"{RESULTS}/revisions/{label}/eval/scores.csv" if REVISIONS[label].evaluate and EVALUATION["scores"] else None


def revision_scores(wildcards):
    return [path] if (path := revision_scores_file(wildcards.revision)) else []


def revision_stats_settings(wildcards):
    return CFG["stats"] | {"scores": revision_scores_file(wildcards.revision)}


def revision_targets():
    """Each revision's routing and statistics stores, and its evaluations when it asks for them."""
    targets = []
    for label, revision in REVISIONS.items():
        base = f"{RESULTS}/revisions/{label}"
        targets += [f"{base}/routing/{ROUTING['name']}.zarr", f"{base}/stats/{ROUTING['name']}.zarr"]
        if revision.evaluate:
            targets += [f"{base}/eval/base/{task}" for task in EVAL_TASKS if eval_languages_for("base", task)]
    return targets


# Comparisons (workflow/rules/compare.smk): each one's inputs and outputs.
COMPARE_RESULTS = "results/compare"


def compare_stats(wildcards):
    return [member.stats for member in COMPARISONS[wildcards.comparison]]


def compare_untrained(wildcards):
    """The run's noise-floor routing stores, when the comparison asks for them and the run has a noise floor."""
    if not (CFG["compare"][wildcards.comparison].get("noise_floor") and NOISE_FLOOR):
        return []
    return [f"{RESULTS}/noise_floor/{ROUTING['name']}/seed{seed}.zarr" for seed in NOISE_FLOOR["seeds"]]


def compare_member_records(wildcards):
    """name -> what the compare step reads of each member, in the comparison's order."""
    return {member.name: vars(member) for member in COMPARISONS[wildcards.comparison]}


def compare_figure_outputs():
    from polyroute.plots.compare import COMPARE_FIGURES

    return {
        name: report(f"{COMPARE_RESULTS}/{{comparison}}/figures/{name}.png", caption=f"../report/compare_{name}.rst",
                     category="Comparison", subcategory="{comparison}")
        for name in COMPARE_FIGURES
    }


def compare_targets():
    return [f"{COMPARE_RESULTS}/{name}/{part}" for name in COMPARISONS for part in ("comparison.zarr", "tables")]
