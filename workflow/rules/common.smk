# Shared settings and input helpers. The config is validated here, before any job starts:
# a bad key, language or dataset stops the workflow with one line that names it.
import os
import re

from polyroute import config as polyroute_config

CFG = polyroute_config.validate(config)
RUN = CFG["run"]
RESULTS = f"results/{RUN}"
LOGS = f"logs/{RUN}"
BENCHMARKS = f"benchmarks/{RUN}"
SCHEMA = "workflow/schemas/config.schema.yaml"

LANGUAGES = CFG["languages"]
ROUTING = CFG["datasets"]["routing"]
TRAINING = CFG["datasets"].get("training")
TASK_ROUTING = CFG["interventions"].get("task_data")  # English in-task text (Bandarkar's task experts)
TARGETS = CFG["selection"]["targets"]
METHODS = list(CFG["selection"]["methods"])
TRAIN_METHODS = CFG["training"]["methods"]
SHARDS = list(range(CFG["extraction"]["shards"]))

# Once the model's config has been read (first job of a run), check settings against it at parse
# time, so a budget or layer window that does not fit the model fails before any job starts.
def _check_known_model():
    path = f"{RESULTS}/model/info.json"
    if not os.path.exists(path):
        return
    info = polyroute_config.read_model_info(path)
    if (info.model_id, info.revision) == (CFG["model"]["id"], CFG["model"]["revision"]):
        polyroute_config.check_against_model(CFG, info)


_check_known_model()


def _alternatives(values):
    return "|".join(re.escape(str(v)) for v in values) or "(?!)"


# Wildcards can only take configured values, so no path can leave results/ or resources/data/.
wildcard_constraints:
    dataset=_alternatives({ref["name"] for ref in (ROUTING, TRAINING, TASK_ROUTING) if ref}),
    language=_alternatives(LANGUAGES),
    target=_alternatives(TARGETS),
    method=_alternatives(METHODS),
    shard=r"\d+",


def dataset_splits(wildcards):
    """Every split of a dataset that some step reads, so one download serves them all (None = its default)."""
    splits = {ref.get("split") for ref in (ROUTING, TRAINING, TASK_ROUTING) if ref and ref["name"] == wildcards.dataset}
    return sorted(splits, key=str)


def data_file(dataset, language):
    return f"resources/data/{dataset}/{language}.parquet"


def routing_data(wildcards):
    return [data_file(wildcards.dataset, language) for language in LANGUAGES]


def routing_shards(wildcards):
    return [f"{RESULTS}/routing/shards/{wildcards.dataset}/{shard}.zarr" for shard in SHARDS]


def method_settings(wildcards):
    """A selector's settings with the run-level ones it reads, so only their change reruns it."""
    from polyroute.pipeline.select import selector_settings

    methods = CFG["selection"]["methods"]
    return selector_settings(
        wildcards.method, methods[wildcards.method], CFG["stats"], reference=CFG["reference_language"],
        rise_settings=methods.get("rise"), train_routers=CFG["training"]["train_routers"],
    )


def training_data(wildcards):
    return data_file(TRAINING["name"], wildcards.target)


def all_targets():
    targets = [f"{RESULTS}/routing/{ROUTING['name']}.zarr", f"{RESULTS}/stats/{ROUTING['name']}.zarr"]
    targets += [f"{RESULTS}/stats/{ROUTING['name']}/figures/{name}.png" for name in expected_figures()]
    targets += [f"{RESULTS}/selection/{method}/{target}.json" for method in METHODS for target in TARGETS]
    targets += [f"{RESULTS}/adapters/{method}/{target}" for method in TRAIN_METHODS for target in TARGETS]
    targets += [f"{RESULTS}/summary/{name}.csv" for name in ("language", "layer", "selection", "training")]
    return targets


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
