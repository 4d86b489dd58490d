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

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


# The default demo run takes 7.3 min on 2 idle cores (154 jobs; DeepSpeed's op already compiled, its
# first compile adds ~30 s); the limit only stops a hung run.
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
    """A copy of the workflow whose demo run, with the default config unchanged, has finished: the
    golden run of test_golden.py is what `make run` computes. POLYROUTE_DEMO_DIR names a finished copy
    to reuse instead (iterating on these tests without a 10-minute run each time; CI never sets it)."""
    reuse = os.environ.get("POLYROUTE_DEMO_DIR")
    if reuse:
        return Path(reuse)
    work = tmp_path_factory.mktemp("demo")
    for name in ("Snakefile", "config.yaml", "workflow", "resources", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    done = run_snakemake(work)
    assert done.returncode == 0, done.stderr[-6000:]
    return work
