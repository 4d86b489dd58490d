"""The real workflow through `sbatch` on a real one-node Slurm cluster, with the repo's profile.

A session fixture installs the Debian packages when missing, starts slurmctld + slurmd +
slurmdbd (accounting, so the executor's default `sacct` polling is what runs) in a tmp
directory and stops them at the end. The test copies the repository (what a clone holds) to a
tmp dir and runs, from there, exactly what a user runs on a login node:
`snakemake --profile slurm [targets]`, layered with tests/slurm/profile (faster polling only).
Every `sbatch` call goes through a logging wrapper, so the test counts the submissions: the
extraction shards go out as one job array (the profile's `slurm-array-jobs`).
It is skipped, with the reason, where Slurm cannot be started (not root, no apt, daemons fail).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CLUSTER_SH = HERE / "cluster.sh"
TEST_PROFILE = HERE / "profile"
VENV_BIN = Path(sys.executable).parent

# Debian binaries each package provides; installed only when missing.
PACKAGES = {
    "slurmctld": "/usr/sbin/slurmctld",
    "slurmd": "/usr/sbin/slurmd",
    "slurm-client": "/usr/bin/sbatch",
    "munge": "/usr/sbin/munged",
    "slurmdbd": "/usr/sbin/slurmdbd",
    "mariadb-server": "/usr/sbin/mariadbd",
}

RUN = "demo"
DATASET = "flores_plus"
ROUTING = f"results/{RUN}/routing/{DATASET}.zarr"
STATS = f"results/{RUN}/stats/{DATASET}.zarr"
SELECTION = f"results/{RUN}/selection/rise/swh_Latn.json"
TARGETS = [ROUTING, STATS, SELECTION]  # four Slurm stages: extract (GPU) -> gather -> stats, select
GPU_RULE = "extract_routing"
# GPU rules the targets need: the stats read the base model's measured scores (evaluate)
GPU_RULES = {GPU_RULE, "evaluate"}
SHARDS = 2  # extraction.shards of the demo config: one array of 2 tasks
LOCAL_RULES = {"download_dataset", "model_info", "download_model"}
REPORT = f"results/{RUN}/report.html"

# generous: the demo takes ~1 min through Slurm alone, several on a shared, loaded 2-core machine
FIRST_RUN_TIMEOUT_S = 900
RERUN_TIMEOUT_S = 300


def _free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (a leftover cluster cannot collide with ours)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _install_missing_packages() -> None:
    """apt-get install the Slurm/munge/MariaDB packages that are missing, or skip saying why."""
    missing = [pkg for pkg, binary in PACKAGES.items() if not Path(binary).exists()]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        pytest.skip(f"Slurm packages missing ({', '.join(missing)}) and no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *missing],
    ):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.skip(f"{' '.join(cmd[:2])} timed out installing {', '.join(missing)}")
        if proc.returncode != 0:
            pytest.skip(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {_tail(proc.stderr, 3)}")


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A running one-node Slurm with accounting; yields the environment that talks to it."""
    if not sys.platform.startswith("linux"):
        pytest.skip("a local Slurm cluster needs Linux")
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld/slurmd/munged needs root")
    _install_missing_packages()

    base = tmp_path_factory.mktemp("slurm")
    ctld, slurmd, dbd, db = _free_ports(4)
    env = {
        **os.environ,
        "BASE": str(base),
        "CTLD_PORT": str(ctld),
        "D_PORT": str(slurmd),
        "DBD_PORT": str(dbd),
        "DB_PORT": str(db),
    }
    started = time.monotonic()
    proc = subprocess.run(
        ["timeout", "-s", "KILL", "120", str(CLUSTER_SH), "start", "dbd"],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        subprocess.run([str(CLUSTER_SH), "stop"], env=env, capture_output=True)
        pytest.skip(f"Slurm did not start (rc {proc.returncode}): {_tail(proc.stderr, 8)}")
    print(f"slurm cluster up in {time.monotonic() - started:.1f}s under {base}")

    job_env = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "SBATCH_"))}
    job_env["SLURM_CONF"] = str(base / "slurm.conf")
    # jobs inherit this environment (sbatch --export=ALL): the venv's snakemake and python
    job_env["PATH"] = f"{VENV_BIN}{os.pathsep}{job_env.get('PATH', '')}"
    try:
        yield job_env
    finally:
        subprocess.run(["timeout", "-s", "KILL", "60", str(CLUSTER_SH), "stop"], env=env, capture_output=True)


def _copy_checkout(dest: Path) -> Path:
    """Copy what a clone of the repo holds (tracked + untracked-but-not-ignored files)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if listed.returncode == 0:
        for rel in filter(None, listed.stdout.split("\0")):
            src = REPO / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
    else:  # not a git checkout (e.g. an unpacked sdist)
        ignore = shutil.ignore_patterns(".venv", ".git", "results", "logs", "benchmarks", ".snakemake", "__pycache__")
        shutil.copytree(REPO, dest, ignore=ignore, dirs_exist_ok=True)
    return dest


def _snakemake(workdir: Path, env: dict[str, str], args: list[str], timeout_s: int) -> str:
    """Run the user's command from `workdir`, killed hard on timeout (on TERM it would wait for jobs)."""
    cmd = [
        "timeout", "-s", "KILL", str(timeout_s),
        sys.executable, "-m", "snakemake",
        "--profile", "slurm", "--profile", str(TEST_PROFILE),
        *args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"snakemake {' '.join(args)} failed (rc {proc.returncode}):\n{_tail(out, 60)}"
    return out


def _job_stats(out: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table (rule -> job count) of a run, without the `total` row."""
    block = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal\s+\d+", out, re.S)
    assert block, f"no job summary in:\n{_tail(out, 40)}"
    return {rule: int(n) for rule, n in (line.split() for line in block.group(1).splitlines())}


def _sbatch_wrapper(bindir: Path, log: Path) -> None:
    """An `sbatch` first on PATH that logs each call (job id, then the arguments) and runs the real one."""
    bindir.mkdir()
    wrapper = bindir / "sbatch"
    wrapper.write_text(
        "#!/bin/sh\n"
        'out=$(/usr/bin/sbatch "$@"); rc=$?\n'
        'printf "%s\\t%s\\n" "$out" "$*" >> "$POLYROUTE_SBATCH_LOG"\n'
        'printf "%s\\n" "$out"; exit $rc\n'
    )
    wrapper.chmod(0o755)
    log.touch()


def _sbatch_calls(log: Path) -> list[dict]:
    """One record per sbatch call: Slurm job id, rule, and the array's task range ('' for one job)."""
    calls = []
    for line in log.read_text().splitlines():
        out, _, args = line.partition("\t")
        rule = re.search(r"/rule_(\w+)/", args)
        array = re.search(r"--array=(\d+-\d+)", args)
        calls.append({"jobid": out.split(";")[0], "rule": rule and rule.group(1), "array": array.group(1) if array else ""})
    return calls


def _slurm_jobs(calls: list[dict]) -> dict[str, str]:
    """Slurm job id (`<id>_<task>` for array tasks) -> rule, for every job of these calls."""
    jobs = {}
    for call in calls:
        if call["array"]:
            first, last = map(int, call["array"].split("-"))
            jobs |= {f"{call['jobid']}_{task}": call["rule"] for task in range(first, last + 1)}
        else:
            jobs[call["jobid"]] = call["rule"]
    return jobs


def _sacct(env: dict[str, str], jobids: list[str]) -> dict[str, dict[str, str]]:
    """Accounting records (State, AllocTRES) of the given jobs, as slurmdbd has them."""
    proc = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(jobids), "-o", "JobID,State,AllocTRES"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = (line.split("|") for line in proc.stdout.splitlines() if line)
    return {jobid: {"state": state, "tres": tres} for jobid, state, tres in rows}


def _check_routing_store(path: Path, languages: list[str]) -> None:
    """The gathered store is complete: every language, and `sum_i count == k * T_g` per layer."""
    import numpy as np
    import xarray as xr

    with xr.open_zarr(path) as ds:
        for name in ("count", "gate_sum", "prob_sum", "tokens"):
            assert name in ds, f"routing store lacks {name}"
        assert sorted(ds["language"].values) == sorted(languages)
        tokens = ds["tokens"].values
        assert (tokens > 0).all()
        top_k = int(ds.attrs["top_k"])
        per_layer = ds["count"].sum("expert").transpose("language", "layer").values
        np.testing.assert_array_equal(per_layer, np.broadcast_to(top_k * tokens[:, None], per_layer.shape))


def test_demo_routing_through_slurm(slurm_cluster: dict[str, str], tmp_path: Path) -> None:
    sbatch_log = tmp_path / "sbatch.log"
    _sbatch_wrapper(tmp_path / "bin", sbatch_log)
    env = {**slurm_cluster, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{slurm_cluster['PATH']}"}
    env["POLYROUTE_SBATCH_LOG"] = str(sbatch_log)
    work = _copy_checkout(tmp_path / "polyroute")
    languages = _load_languages(work)

    # 1. First run: every Slurm job of the targets, the GPU rule with the profile's request, the
    # shards as one job array; the report is written by the same command.
    t0 = time.monotonic()
    out = _snakemake(work, env, ["--report", REPORT, "--report-after-run", *TARGETS], FIRST_RUN_TIMEOUT_S)
    first_s = time.monotonic() - t0
    calls = _sbatch_calls(sbatch_log)
    slurm_jobs = sum(n for rule, n in _job_stats(out).items() if rule not in LOCAL_RULES)
    extract_calls = [call for call in calls if call["rule"] == GPU_RULE]
    assert [call["array"] for call in extract_calls] == [f"1-{SHARDS}"], calls  # one sbatch for all shards
    assert len(calls) == slurm_jobs - (SHARDS - 1), calls
    jobs = _slurm_jobs(calls)
    assert len(jobs) == slurm_jobs
    acct = _sacct(env, sorted({call["jobid"] for call in calls}))
    assert set(acct) == set(jobs), (acct, jobs)
    assert {row["state"] for row in acct.values()} == {"COMPLETED"}, acct
    for jobid, rule in jobs.items():
        tres = acct[jobid]["tres"]
        if rule in GPU_RULES:  # the rules' own requests (polyroute.sizing) reached Slurm, for every task
            assert "gres/gpu=1" in tres and "cpu=8" in tres, f"{rule} job {jobid}: {tres}"
        else:
            assert "gres/gpu" not in tres, f"CPU rule {rule} got a GPU: {tres}"

    _check_routing_store(work / ROUTING, languages)
    assert (work / STATS / ".complete").exists(), "stats store has no completion marker"
    assert not list((work / f"results/{RUN}/routing/shards").rglob("*.zarr")), "temp shards left behind"
    selection = json.loads((work / SELECTION).read_text())
    assert selection["method"] == "rise" and selection["target"] == "swh_Latn" and selection["experts"]
    _check_offline_report(work / REPORT)

    # 2. Second run: nothing to do, nothing submitted.
    out = _snakemake(work, env, TARGETS, RERUN_TIMEOUT_S)
    assert "Nothing to be done" in out, _tail(out, 30)
    assert len(_sbatch_calls(sbatch_log)) == len(calls)

    # 3. --forcerun reruns that rule (and what depends on it: nothing among the targets),
    # through Slurm, leaving everything upstream alone.
    routing_mtime, selection_mtime = _mtime(work / ROUTING), _mtime(work / SELECTION)
    stats_mtime = _mtime(work / STATS)
    t0 = time.monotonic()
    out = _snakemake(work, env, ["--forcerun", "select_experts", "--", *TARGETS], RERUN_TIMEOUT_S)
    force_s = time.monotonic() - t0
    assert _job_stats(out) == {"select_experts": 1}
    assert [call["rule"] for call in _sbatch_calls(sbatch_log)[len(calls) :]] == ["select_experts"]
    assert _mtime(work / SELECTION) > selection_mtime and _mtime(work / ROUTING) == routing_mtime
    assert _mtime(work / STATS) == stats_mtime
    # ...and forcing a rule with dependants schedules them (dry run: the shards it reads are temp,
    # so their producer comes back too), while the local data and model steps stay done.
    out = _snakemake(work, env, ["-n", "--forcerun", "gather_routing", "--", *TARGETS], RERUN_TIMEOUT_S)
    planned = _job_stats(out)
    assert {"gather_routing", "routing_stats", "select_experts"} <= set(planned)
    assert not LOCAL_RULES & set(planned), planned
    print(
        f"first run {first_s:.0f}s: {slurm_jobs} Slurm jobs in {len(calls)} sbatch calls "
        f"({SHARDS} {GPU_RULE} shards in one array); forcerun {force_s:.0f}s"
    )


def _check_offline_report(path: Path) -> None:
    """The report is one self-contained HTML file: no script or stylesheet fetched from the network."""
    html = path.read_text()
    assert "<html" in html and GPU_RULE in html, f"{path} is not the run's report"
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", html), "report loads a remote script"
    assert not re.search(r"<link[^>]+href=[\"']?(https?:)?//", html), "report loads a remote stylesheet"


def _mtime(path: Path) -> int:
    """Modification time of a file, or of a Zarr store's root metadata."""
    return (path / "zarr.json" if path.is_dir() else path).stat().st_mtime_ns


def _load_languages(work: Path) -> list[str]:
    import yaml

    return list(yaml.safe_load((work / "config.yaml").read_text())["languages"])
