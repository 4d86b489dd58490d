"""Other checkpoints of the run's model (`model.revisions`) and comparisons over runs and revisions
(`compare`): what the workflow needs to route each revision on its own and to find every member's
statistics store.

A revision is a hub revision of `model.id` (`revision:`, e.g. OLMoE's ``stage1-step5000-tokens21B``)
or a local checkpoint folder (`path:`), labelled; `step` and `tokens` place it in training. Its
results live under ``results/<run>/revisions/<label>/`` with the layout of the run's own
(``routing/<dataset>.zarr``, ``stats/<dataset>.zarr``, ``eval/base/<task>/``), so adding a revision
adds jobs and reruns nothing: the model block the main model's rules see has no revision in it
(`main_model`).

A comparison member is ``<run>`` (that run's model) or ``<run>/<label>`` (one of its revisions): the
statistics store of another run is read where that run's own config wrote it. A comparison is made by
the runs it includes (`active_comparisons`), so one comparison file serves as an overlay on any of its
members' configs, and a config whose run is no member (a real model's, over the demo's default) skips it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Revision", "Member", "main_model", "revisions", "revision_model", "revision_attrs", "revision_config",
           "compare_members", "active_comparisons", "check_config", "REVISION_KEYS"]

# keys of the model block that describe other checkpoints or this one's place in training, not how
# to load this one: the main model's rules never see them
REVISION_KEYS = ("revisions", "step", "tokens")


@dataclass(frozen=True)
class Revision:
    label: str
    revision: str | None  # hub revision of model.id
    path: str | None  # local checkpoint folder
    step: int | None
    tokens: float | None
    evaluate: bool


@dataclass(frozen=True)
class Member:
    """One member of a comparison: its name, run and revision label ("" = the run's model), the
    statistics store it reads and, where this config knows them, its training step and tokens."""

    name: str
    run: str
    revision: str
    stats: str
    step: int | None
    tokens: float | None


def main_model(model: Mapping[str, Any]) -> dict[str, Any]:
    """The model block without the revision keys: what loading the run's own model depends on."""
    return {key: value for key, value in model.items() if key not in REVISION_KEYS}


def revisions(cfg: Mapping[str, Any]) -> dict[str, Revision]:
    """The configured revisions by label (a validated config)."""
    return {
        entry["label"]: Revision(entry["label"], entry.get("revision"), entry.get("path"), entry.get("step"),
                                 entry.get("tokens"), bool(entry.get("evaluate", False)))
        for entry in cfg["model"].get("revisions") or []
    }


def revision_model(cfg: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The model block that loads revision `label`: the run's, with its hub revision or folder."""
    revision = revisions(cfg)[label]
    model = main_model(cfg["model"])
    if revision.path is not None:
        return model | {"id": revision.path, "revision": None}
    return model | {"revision": revision.revision}


def revision_attrs(cfg: Mapping[str, Any], label: str) -> dict[str, Any]:
    """Provenance attributes of a revision's stores: its label and, when known, step and tokens."""
    revision = revisions(cfg)[label]
    attrs: dict[str, Any] = {"revision_label": label}
    if revision.step is not None:
        attrs["training_step"] = int(revision.step)
    if revision.tokens is not None:
        attrs["training_tokens"] = float(revision.tokens)
    return attrs


def revision_config(cfg: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The run config with the revision's model block in place of the run's (for its provenance hash)."""
    return {**cfg, "model": revision_model(cfg, label)}


def _parse_member(member: str) -> tuple[str, str]:
    """``<run>`` -> (run, ""); ``<run>/<label>`` -> (run, label)."""
    run, _, label = member.partition("/")
    return run, label


def active_comparisons(cfg: Mapping[str, Any]) -> list[str]:
    """The comparisons this run makes: those with a member of this run."""
    return [name for name, comparison in cfg["compare"].items()
            if any(_parse_member(member)[0] == cfg["run"] for member in comparison["members"])]


def compare_members(cfg: Mapping[str, Any], name: str, results_root: str = "results") -> list[Member]:
    """The members of comparison `name`, each with the statistics store it reads."""
    dataset = cfg["datasets"]["routing"]["name"]
    own = revisions(cfg)
    members = []
    for spec in cfg["compare"][name]["members"]:
        run, label = _parse_member(spec)
        base = f"{results_root}/{run}" + (f"/revisions/{label}" if label else "")
        step = tokens = None
        if run == cfg["run"]:
            source = own[label] if label else None
            step = source.step if source else cfg["model"].get("step")
            tokens = source.tokens if source else cfg["model"].get("tokens")
        members.append(Member(spec, run, label, f"{base}/stats/{dataset}.zarr", step, tokens))
    return members


def check_config(data: Mapping[str, Any]) -> None:
    """What the schema cannot say about revisions and comparisons: one ValueError line naming the key."""
    labels = []
    for i, entry in enumerate(data["model"].get("revisions") or []):
        key = f"model.revisions.{i}"
        if ("revision" in entry) == ("path" in entry):
            raise ValueError(f"config error: '{key}' needs exactly one of 'revision' (a hub revision of model.id) "
                             "or 'path' (a local checkpoint folder)")
        if entry["label"] in labels:
            raise ValueError(f"config error: '{key}.label' = {entry['label']!r} is used twice")
        labels.append(entry["label"])
    for name, comparison in (data.get("compare") or {}).items():
        key = f"compare.{name}"
        for spec in comparison["members"]:
            run, label = _parse_member(spec)
            if run == data["run"] and label and label not in labels:
                raise ValueError(f"config error: '{key}.members' has {spec!r}, but {label!r} is not a label of "
                                 f"'model.revisions' ({', '.join(labels) or 'none'})")
