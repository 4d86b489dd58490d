"""Every pipeline step as a ``polyroute <step>`` command, with the arguments its rule passes.

The options are read off the step function's signature, so they cannot drift from what the rules
call: ``--name`` per parameter (``_`` spelled ``-``), mappings (model, settings, run config) as JSON
text or a .json/.yaml file, lists as several values, booleans as ``--x/--no-x``. A ``run_config`` is
validated against the schema first, as the rules' scripts do with Snakemake's ``config``::

    polyroute select_experts --help
    polyroute select_experts --method rise --target swh_Latn --settings '{"budget": 12}' \\
        --routing results/demo/routing/flores_plus.zarr --model-info results/demo/model/info.json \\
        --out /tmp/rise.json
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# step (= rule name) -> the function its script calls; the module is imported only when the step runs
STEPS: dict[str, str] = {
    "download_dataset": "polyroute.pipeline.data:download_dataset",
    "model_info": "polyroute.pipeline.model_info:model_info",
    "download_model": "polyroute.pipeline.model_info:download_model",
    "extract_routing": "polyroute.pipeline.routing:extract_routing",
    "gather_routing": "polyroute.pipeline.routing:gather_routing",
    "routing_stats": "polyroute.pipeline.stats:routing_stats",
    "routing_figures": "polyroute.pipeline.stats:routing_figures",
    "untrained_routing": "polyroute.pipeline.routing:extract_routing",
    "noise_floor": "polyroute.pipeline.noise_floor:noise_floor",
    "select_experts": "polyroute.pipeline.select:select_experts",
    "train_subnetwork": "polyroute.pipeline.train:train_subnetwork",
    "evaluate": "polyroute.pipeline.evaluate:evaluate_variant",
    "eval_scores": "polyroute.pipeline.summary:write_scores",
    "task_routing": "polyroute.pipeline.routing:extract_routing",
    "intervention_experts": "polyroute.pipeline.interventions:build_expert_set",
    "intervention_routing": "polyroute.pipeline.interventions:extract_routing_under",
    "demo_corpus": "polyroute.demo.corpus:build_corpus",
    "pretrain_demo_model": "polyroute.demo.pretrain:pretrain",
    "summarize": "polyroute.pipeline.summary:summarize",
    "intervention_report": "polyroute.pipeline.intervention_report:intervention_report",
    # model.revisions: the run's own steps on another checkpoint (workflow/rules/revisions.smk)
    "revision_weights": "polyroute.pipeline.model_info:download_model",
    "revision_extract_routing": "polyroute.pipeline.routing:extract_routing",
    "revision_gather_routing": "polyroute.pipeline.routing:gather_routing",
    "revision_routing_stats": "polyroute.pipeline.stats:routing_stats",
    "revision_evaluate": "polyroute.pipeline.evaluate:evaluate_variant",
    "revision_eval_scores": "polyroute.pipeline.summary:write_scores",
    "compare": "polyroute.pipeline.compare:compare",
}


def step_function(step: str) -> Callable[..., Any]:
    module, name = STEPS[step].split(":")
    return getattr(importlib.import_module(module), name)


def mapping_value(text: str) -> Any:
    """JSON text, or the path of a .json / .yaml file holding the value."""
    if os.path.exists(text):
        content = Path(text).read_text(encoding="utf-8")
        if text.endswith((".yaml", ".yml")):
            import yaml

            return yaml.safe_load(content)
        return json.loads(content)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON and not a file: {text!r} ({exc.msg})") from None


def _optional(value: str) -> str | None:
    return None if value in ("none", "null") else value


def _kind(hint: Any) -> tuple[str, Any]:
    """('mapping' | 'list' | 'bool' | 'scalar', element type) of a parameter's type hint."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if any(typing.get_origin(a) in (Mapping, dict) or a in (Mapping, dict) for a in args):
            return "mapping", None
        lists = [a for a in args if typing.get_origin(a) in (list, Sequence, tuple)]
        if lists:
            return _kind(lists[0])
        return ("scalar", int) if int in args and str not in args else ("scalar", str)
    if origin in (Mapping, dict) or hint in (Mapping, dict):
        return "mapping", None
    if origin in (list, Sequence, tuple):
        inner = _kind(typing.get_args(hint)[0])[1] if typing.get_args(hint) else str
        return "list", inner
    if hint is bool:
        return "bool", None
    if hint is int:
        return "scalar", int
    return "scalar", str


def add_step_arguments(parser: argparse.ArgumentParser, func: Callable[..., Any]) -> None:
    """One option per parameter of `func`, required where the parameter has no default."""
    hints = typing.get_type_hints(func)
    for name, param in inspect.signature(func).parameters.items():
        kind, element = _kind(hints.get(name, str))
        required = param.default is inspect.Parameter.empty
        default = None if required else param.default
        shown = "" if required else f" (default: {default!r})"
        flag = "--" + name.replace("_", "-")
        if kind == "bool":
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default,
                                required=required, help=f"{shown.strip()}")
        elif kind == "mapping":
            parser.add_argument(flag, dest=name, type=mapping_value, default=default, required=required,
                                metavar="JSON|FILE", help=f"JSON text or a .json/.yaml file{shown}")
        elif kind == "list":
            parser.add_argument(flag, dest=name, nargs="*", type=element, default=default, required=required,
                                help=f"one or more values{shown}")
        else:
            nullable = type(None) in typing.get_args(hints.get(name, str))
            convert = element if not nullable or element is int else _optional
            parser.add_argument(flag, dest=name, type=convert, default=default, required=required,
                                help=f"{'none = null; ' if nullable else ''}{shown.strip()}")


def run_step(step: str, args: argparse.Namespace) -> Any:
    """Call the step's function with the parsed options (a run_config validated first)."""
    func = step_function(step)
    kwargs = {name: getattr(args, name) for name in inspect.signature(func).parameters}
    if kwargs.get("run_config") is not None:
        from polyroute.config import validate

        kwargs["run_config"] = validate(kwargs["run_config"])
    if isinstance(kwargs.get("model"), Mapping):  # a model block as the config has it, defaults filled
        from polyroute.config import schema_defaults
        from polyroute.errors import UserError

        if "id" not in kwargs["model"]:
            raise UserError("--model: the model block needs an 'id' (hub id or checkpoint directory)")
        kwargs["model"] = {**schema_defaults("model"), **kwargs["model"]}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return func(**kwargs)


def describe_step(step: str) -> str:
    """The first paragraph of the step function's docstring, as one line (a sentence never cut)."""
    doc = inspect.getdoc(step_function(step)) or step
    return " ".join(doc.split("\n\n")[0].split())


def step_command(step: str) -> Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], int]]:
    """A `polyroute.cli.COMMANDS` entry's argument adder for `step`."""

    def add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
        parser.description = f"{describe_step(step)} (the rule {step}'s step, run by hand)"
        add_step_arguments(parser, step_function(step))

        def run(args: argparse.Namespace) -> int:
            run_step(step, args)
            return 0

        return run

    return add
