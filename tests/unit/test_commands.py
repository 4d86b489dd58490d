"""`polyroute <step>`: every pipeline step runs by hand with the arguments its rule passes."""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import pytest

from polyroute.cli import main
from polyroute.models.info import ModelInfo
from polyroute.pipeline.commands import STEPS, step_function
from polyroute.routing.store import to_dataset, write_store
from polyroute.routing.synthetic import synthetic_shard

ROOT = Path(__file__).resolve().parents[2]


def _rules_with_scripts() -> dict[str, str]:
    """rule name -> its script's file name, from workflow/rules/*.smk."""
    rules = {}
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        # a rule's body: the lines indented deeper than its own `rule` line (rules sit inside `if` blocks too)
        for _, name, body in re.findall(r"^([ \t]*)rule (\w+):\n((?:\1[ \t]+.*\n|\n)*)", smk.read_text(), flags=re.M):
            script = re.search(r'"\.\./scripts/(\w+\.py)"', body)
            if script:
                rules[name] = script.group(1)
    return rules


def test_every_rule_is_a_step_and_its_script_passes_only_the_steps_parameters():
    rules = _rules_with_scripts()
    assert set(rules) == set(STEPS)
    for rule, script in rules.items():
        module, name = STEPS[rule].split(":")
        tree = ast.parse((ROOT / "workflow" / "scripts" / script).read_text())
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", None) == name]
        assert len(calls) == 1, f"{script} does not call {name}"
        imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert (module, name) in imported, f"{script} calls another {name}"
        params = list(inspect.signature(step_function(rule)).parameters)
        passed = [k.arg for k in calls[0].keywords] + params[: len(calls[0].args)]
        assert set(passed) <= set(params), (rule, passed)


def test_step_help_lists_the_functions_parameters(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["extract_routing", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in inspect.signature(step_function("extract_routing")).parameters:
        assert "--" + name.replace("_", "-") in text


def test_select_experts_by_hand_equals_the_function(tmp_path, capsys):
    from polyroute.pipeline.select import select_experts

    shard = synthetic_shard(seed=3, layers=(0, 1, 2), num_experts=8, top_k=2, seqs_per_language=6)
    write_store(to_dataset(shard, {"model": "m"}), tmp_path / "routing.zarr")
    info = ModelInfo(moe_layers=(0, 1, 2), num_experts=8, expert_params=100, router_params=8,
                       total_params=10**5, model="m")
    (tmp_path / "info.json").write_text(json.dumps(info.to_record()))
    settings = {"budget": 4, "split": [0.5, 0.25], "alpha": 2.0, "train_routers": True}
    (tmp_path / "settings.yaml").write_text("budget: 4\nsplit: [0.5, 0.25]\nalpha: 2.0\ntrain_routers: true\n")
    args = ["--method", "rise", "--target", "fra_Latn", "--routing", str(tmp_path / "routing.zarr"),
            "--model-info", str(tmp_path / "info.json")]
    assert main(["select_experts", *args, "--settings", json.dumps(settings), "--out", str(tmp_path / "a.json")]) == 0
    assert main(["select_experts", *args, "--settings", str(tmp_path / "settings.yaml"),
                 "--out", str(tmp_path / "b.json")]) == 0
    select_experts(method="rise", target="fra_Latn", settings=settings, routing=tmp_path / "routing.zarr",
                   model_info=tmp_path / "info.json", out=tmp_path / "c.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "c.json").read_bytes()
    assert (tmp_path / "b.json").read_bytes() == (tmp_path / "c.json").read_bytes()


def test_options_take_the_types_of_the_parameters(tmp_path):
    import argparse

    from polyroute.pipeline.commands import add_step_arguments

    def step(*, layers: list[int] | None, languages: list[str], name: str | None, n: int, flag: bool = False,
             settings: dict | None = None) -> None:
        """A toy step."""

    parser = argparse.ArgumentParser()
    add_step_arguments(parser, step)
    args = parser.parse_args(["--layers", "1", "3", "--languages", "a", "b", "--name", "none", "--n", "4",
                              "--flag", "--settings", '{"x": 1}'])
    assert vars(args) == {"layers": [1, 3], "languages": ["a", "b"], "name": None, "n": 4, "flag": True,
                          "settings": {"x": 1}}
    with pytest.raises(SystemExit):
        parser.parse_args(["--layers", "1", "--languages", "a", "--name", "x", "--n", "1", "--settings", "{bad"])
