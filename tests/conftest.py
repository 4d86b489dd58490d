"""Suite-wide hooks: the real-Slurm tests report their outcome at the end of every run.

CI keeps only the tail of the log; this puts whether the Slurm tests ran (and how long the
cluster's jobs took) or were skipped (and why) right above the final count.
"""

from __future__ import annotations

import pytest

_SLURM_TESTS: set[str] = set()
_SLURM_REPORTS: list[pytest.TestReport] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _SLURM_TESTS.update(item.nodeid for item in items if item.get_closest_marker("slurm"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid in _SLURM_TESTS and (report.when == "call" or report.outcome != "passed"):
        _SLURM_REPORTS.append(report)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _SLURM_REPORTS:
        return
    terminalreporter.section("real Slurm")
    for report in _SLURM_REPORTS:
        detail = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            detail = report.longrepr[2]  # (path, line, reason)
        elif report.passed:
            detail = " ".join(line for line in report.capstdout.splitlines() if line.strip())
        terminalreporter.write_line(f"{report.outcome.upper()} {report.nodeid} ({report.when}) {detail}".rstrip())
