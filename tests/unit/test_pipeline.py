"""The workflow steps' own logic (what the rules' scripts call), outside Snakemake."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from polyroute.pipeline.data import download_dataset, read_split, record_texts
from polyroute.pipeline.select import selector_settings
from polyroute.pipeline.train import loop_settings

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "demo"


def test_download_keeps_every_requested_split(tmp_path: Path) -> None:
    out = download_dataset("flores_plus", "swh_Latn", tmp_path / "swh.parquet", splits=["dev", "devtest"], local_dir=DEMO)
    table = pd.read_parquet(out)
    assert table.groupby("split").size().to_dict() == {"dev": 100, "devtest": 50}
    dev = read_split([out], "dev", "flores_plus")
    assert len(dev) == 100 and set(dev["split"]) == {"dev"}
    assert read_split([out], None, "flores_plus").equals(dev)  # None = the dataset's default split


def test_download_rejects_a_bad_split_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no split 'validation'"):
        download_dataset("flores_plus", "swh_Latn", tmp_path / "x.parquet", splits=["validation"], local_dir=DEMO)
    assert not (tmp_path / "x.parquet").exists()


def test_record_texts_per_kind() -> None:
    mc = pd.DataFrame({"context": ["P"], "question": ["Q?"]})
    assert record_texts(mc, "belebele") == ["P\nQ?"]
    assert record_texts(pd.DataFrame({"text": ["a", "b"]}), "flores_plus") == ["a", "b"]
    assert record_texts(pd.DataFrame({"good": ["g"], "bad": ["b"]}), "multiblimp") == ["g"]
    assert record_texts(pd.DataFrame({"question": ["2+2?"]}), "mgsm") == ["2+2?"]


def test_selector_settings_take_the_run_level_keys_they_read() -> None:
    run = {"reference_language": "eng_Latn", "training": {"train_routers": False},
           "stats": {"affinity_top_m": 7, "exclusive_threshold": 0.5, "language_gap": 0.02, "shared_top": 3,
                     "high_resource": ["eng_Latn"], "log_base": "e"},
           "selection": {"methods": {"rise": {"budget": 12, "split": [0.5, 0.25], "alpha": 10.0},
                                     "chen-shared": {"layers": None}, "random": {"seed": 3},
                                     "last-layer": {"n": 2}, "full": {}}}}
    chen = selector_settings("chen-shared", run)
    assert chen == {"train_routers": False, "affinity_top_m": 7, "exclusive_threshold": 0.5, "layers": None}
    run["training"]["train_routers"] = True
    assert selector_settings("random", run) == {"train_routers": True, "budget": 12, "split": [0.5, 0.25], "seed": 3}
    last = selector_settings("last-layer", run)
    assert last["reference_language"] == "eng_Latn" and last["high_resource"] == ["eng_Latn"] and last["n"] == 2
    assert "shared" not in last  # not given: the schema's default applies (filled by validate in the workflow)
    assert selector_settings("full", run) == {}
    del run["selection"]["methods"]["rise"]  # random without rise: the schema's rise defaults apply in select()
    assert selector_settings("random", run) == {"train_routers": True, "seed": 3}


def test_selector_settings_of_the_default_config_are_accepted_by_every_selector() -> None:
    import yaml

    from polyroute.config import validate
    from polyroute.select.selectors import REGISTRY, _resolve

    data = validate(yaml.safe_load((ROOT / "config.yaml").read_text()))
    for method in data["selection"]["methods"]:
        settings = selector_settings(method, data)
        assert set(settings) == set(REGISTRY[method].settings) - {"languages"}, method
        assert _resolve(method, settings) == {**REGISTRY[method].defaults, **settings}


def test_loop_settings_map_config_names_and_are_accepted() -> None:
    from polyroute.config import validate
    from polyroute.train.settings import TrainSettings
    import yaml

    data = validate(yaml.safe_load((ROOT / "config.yaml").read_text()))
    settings = loop_settings(data["training"], data["model"])
    assert settings["checkpoint_every"] == data["training"]["checkpoint_every"]
    assert "gpus" not in settings and "methods" not in settings and "train_routers" not in settings
    TrainSettings.from_dict(settings)  # every key known, every value valid


def test_library_training_defaults_are_the_config_schema_defaults() -> None:
    # the library's defaults (used by `python -m polyroute.train` and the Python API) come from the
    # schema, so the same run behaves alike inside and outside the workflow
    import dataclasses

    from polyroute.config import schema_defaults
    from polyroute.train.settings import TrainSettings

    mapped = loop_settings(schema_defaults("training"), schema_defaults("model"))
    library = {f.name: f.default for f in dataclasses.fields(TrainSettings)}
    shared = sorted(set(mapped) & set(library))
    assert len(shared) >= 12, shared
    assert {key: mapped[key] for key in shared} == {key: library[key] for key in shared}
