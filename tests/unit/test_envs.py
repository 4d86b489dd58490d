"""envs/: every rule of the workflow names a conda environment that exists, pins what pyproject.toml
pins (one source of truth), holds what its rule's script imports, and `snakemake --lint` passes.

conda is not installed here, so the environments are never built; these checks read the files,
the workflow's own rules (through the Snakemake API, so rules added later are checked too) and
the installed packages' metadata.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow  # each check that parses the workflow takes ~15 s on 2 shared cores

REPO = Path(__file__).resolve().parents[2]
ENVS = REPO / "envs"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# Jobs import snakemake from the submitting environment (Snakemake puts its own search path on the
# script's sys.path), so no env needs the workflow engine.
ENGINE = {"snakemake", "snakemake-executor-plugin-slurm"}

# Each rule's software, as the workflow declares it (rules without a job, like `all`, have none).
_RULES = r"""
import json
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), snakefile=Path("Snakefile"))
    rules = {
        rule.name: {
            "job": not (rule.norun or rule.is_run),
            "conda": None if rule.conda_env is None else str(rule.conda_env),
            "script": rule.script,
            "basedir": str(rule.basedir.get_path_or_uri(secret_free=True)),
        }
        for rule in workflow._workflow.rules
    }
print("RULES" + json.dumps(rules))
"""


@cache
def _rules() -> dict[str, dict]:
    proc = subprocess.run([sys.executable, "-c", _RULES], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RULES"))
    return json.loads(line.removeprefix("RULES"))


def _pyproject_pins() -> dict[str, str]:
    pins = {}
    for spec in PYPROJECT["dependencies"]:
        req = Requirement(spec)
        (pin,) = req.specifier  # pyproject pins every dependency exactly
        assert pin.operator == "==", spec
        pins[canonicalize_name(req.name)] = pin.version
    return pins


def _env(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _env_pins(path: Path) -> dict[str, str]:
    """name -> version of the env's pip packages (every one pinned with ==)."""
    deps = _env(path)["dependencies"]
    (pip,) = [d["pip"] for d in deps if isinstance(d, dict)]
    pins = {}
    for spec in pip:
        req = Requirement(spec)
        assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", f"{path.name}: {spec} unpinned"
        pins[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    return pins


def _env_files() -> list[Path]:
    return sorted(ENVS.glob("*.yaml"))


def _rule_env(info: dict) -> Path:
    return (Path(info["basedir"]) / info["conda"]).resolve()


@cache
def _requires(dist: str) -> frozenset[str]:
    """The installed distribution's unconditional requirements (markers evaluated, no extras)."""
    try:
        reqs = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return frozenset()
    out = set()
    for spec in reqs:
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.add(canonicalize_name(req.name))
    return frozenset(out)


def _installed_by(packages: set[str]) -> set[str]:
    """Everything pip installs for these packages: them and their requirements, transitively."""
    seen, todo = set(), list(packages)
    while todo:
        dist = todo.pop()
        if dist not in seen:
            seen.add(dist)
            todo += _requires(dist)
    return seen


def _imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of every module a file imports, at any depth (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return names


def _library_file(module: str) -> tuple[Path, str] | None:
    """(file, package) of a polyroute module, or None when the name is not a module (a function, ...)."""
    path = REPO / "src" / Path(*module.split("."))
    if (path / "__init__.py").exists():
        return path / "__init__.py", module
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py"), module.rpartition(".")[0]
    return None


def _third_party_imports(script: Path) -> set[str]:
    """Distributions a rule's script can import: its imports and those of every polyroute module
    they reach, followed through the library's files (so over-, never under-estimated)."""
    top_level_to_dists = metadata.packages_distributions()
    dists, seen = set(), set()
    todo = list(_imported_modules(script, ""))
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        top = module.partition(".")[0]
        if top != "polyroute":
            dists |= {canonicalize_name(d) for d in top_level_to_dists.get(top, [])}
            continue
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
            found = _library_file(".".join(parts[:depth]))
            if found:
                todo += _imported_modules(*found)
    return dists - {"polyroute"}


def test_every_rule_with_a_job_names_an_env_in_envs() -> None:
    rules = _rules()
    jobs = {name: info for name, info in rules.items() if info["job"]}
    assert {"extract_routing", "routing_stats", "select_experts"} <= set(jobs), sorted(rules)
    for name, info in jobs.items():
        assert info["conda"], f"rule {name} has no conda: line (conda: ENVS[<kind>], workflow/rules/common.smk)"
        path = _rule_env(info)
        assert path.exists(), f"rule {name}: conda env {path} does not exist"
        assert path.parent == ENVS and path.suffix == ".yaml", f"rule {name}: env {path} is not in envs/"
    used = {_rule_env(info) for info in jobs.values()}
    assert used == set(_env_files()), f"envs/ files no rule uses: {set(_env_files()) - used}"


def test_every_pin_equals_pyprojects() -> None:
    pins = _pyproject_pins()
    requires_python = SpecifierSet(PYPROJECT["requires-python"])
    for path in _env_files():
        env = _env(path)
        assert "name" not in env and "prefix" not in env, f"{path.name}: Snakemake names and places the env"
        conda = [d for d in env["dependencies"] if isinstance(d, str)]
        python = [d for d in conda if d.startswith("python=")]
        assert len(python) == 1 and set(conda) == {python[0], "pip"}, f"{path.name}: conda gives only python and pip"
        assert python[0].removeprefix("python=") + ".0" in requires_python, f"{path.name}: {python[0]}"
        for name, version in _env_pins(path).items():
            assert name in pins, f"{path.name}: {name} is not a dependency in pyproject.toml"
            assert version == pins[name], f"{path.name}: {name}=={version}, pyproject.toml has =={pins[name]}"


def test_envs_install_pyprojects_versions_of_what_they_pull_in() -> None:
    # a package pyproject pins that an env's packages pull in must be pinned there too, or pip would
    # resolve it freely (e.g. tokenizers under transformers)
    pins = _pyproject_pins()
    for path in _env_files():
        env = set(_env_pins(path))
        missing = (_installed_by(env) & set(pins)) - env
        assert not missing, f"{path.name} pulls in {sorted(missing)} unpinned"


def test_gpu_env_holds_every_runtime_dependency() -> None:
    # GPU jobs (extraction, training, evaluation, interventions) may run any part of the library
    assert set(_env_pins(ENVS / "gpu.yaml")) == set(_pyproject_pins()) - ENGINE


def test_analysis_env_has_no_torch() -> None:
    assert not {"torch", "deepspeed", "accelerate"} & _installed_by(set(_env_pins(ENVS / "analysis.yaml")))


def test_each_rules_env_holds_what_its_script_imports() -> None:
    for name, info in _rules().items():
        if not (info["job"] and info["script"]):
            continue
        script = Path(info["basedir"]) / info["script"]
        have = _installed_by(set(_env_pins(_rule_env(info))))
        missing = _third_party_imports(script) - have
        assert not missing, f"rule {name} ({_rule_env(info).name}) can import {sorted(missing)}, not in its env"


def test_third_party_imports_follow_the_library(tmp_path: Path) -> None:
    # the import walk is what makes the check above fail: a lazy import two modules down is found
    script = tmp_path / "script.py"
    script.write_text("from polyroute.pipeline.routing import gather_routing\n")
    assert "torch" in _third_party_imports(script)  # extraction's lazy `from polyroute.models import ...`
    script.write_text("import polyroute.stats\n")
    assert "torch" not in _third_party_imports(script) and "xarray" in _third_party_imports(script)


def test_apptainer_def_is_generated_from_the_envs() -> None:
    # envs/apptainer.def is Snakemake's `--containerize apptainer` of the current envs ...
    proc = subprocess.run(
        [sys.executable, str(ENVS / "containerize.py")], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == (ENVS / "apptainer.def").read_text(), (
        "envs/apptainer.def is stale: .venv/bin/python envs/containerize.py > envs/apptainer.def"
    )
    # ... whose env prefixes are the content hashes Snakemake looks up in a `containerized:` image
    # (md5 of the file: no pin or post-deploy files change it)
    assert not list(ENVS.glob("*.pin.txt")) and not list(ENVS.glob("*.post-deploy.sh"))
    text = (ENVS / "apptainer.def").read_text()
    for path in _env_files():
        digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
        assert f"envs/{path.name} /conda-envs/{digest}/environment.yaml" in text, path.name
    assert re.search(r'^containerized: "polyroute\.sif"$', (REPO / "Snakefile").read_text(), re.M)


def test_snakemake_lint_passes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-4000:]
