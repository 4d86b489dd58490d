"""The demo run every workflow test reads: one session-scoped run, so the golden-value tests
(test_golden.py) and the rerun tests (test_demo_workflow.py) cost CI a single demo run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# The run's config edits (smaller training and evaluation so the suite stays quick); the golden
# values of test_golden.py are measured under exactly these.
FIXTURE_EDITS = {"training": {"epochs": 1}, "evaluation": {"limit": 3}}


# The whole demo run takes ~13 min on 2 idle cores (134 jobs); the limit only stops a hung run.
def run_snakemake(workdir: Path, *args: str, timeout: int = 2700) -> subprocess.CompletedProcess:
    env = dict(os.environ, DS_ACCELERATOR="cpu", TORCH_EXTENSIONS_DIR=str(ROOT / ".torch_extensions"))
    return subprocess.run(
        ["timeout", "-s", "KILL", str(timeout), SNAKEMAKE, "--cores", "2", *args],
        cwd=workdir, env=env, capture_output=True, text=True,
    )


@pytest.fixture(scope="session")
def snakemake() -> Callable[..., subprocess.CompletedProcess]:
    return run_snakemake


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """A copy of the workflow whose demo run (with FIXTURE_EDITS) has finished."""
    work = tmp_path_factory.mktemp("demo")
    for name in ("Snakefile", "config.yaml", "workflow", "resources", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    config = yaml.safe_load((work / "config.yaml").read_text())
    for block, edits in FIXTURE_EDITS.items():
        config[block].update(edits)
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = run_snakemake(work)
    assert done.returncode == 0, done.stderr[-6000:]
    return work
