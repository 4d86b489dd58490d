"""log_to: one job's whole output, its subprocesses' included, ends up in its log file."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from polyroute.logs import log_to


def test_python_and_child_process_output_go_to_the_log(tmp_path, capfd):
    log = tmp_path / "logs" / "step.log"
    with log_to(log) as logger:
        logger.info("from logging")
        print("from print")
        print("from stderr", file=sys.stderr)
        subprocess.run(["sh", "-c", "echo child-out; echo child-err >&2"], check=True)
    print("after the block")
    text = log.read_text()
    for line in ("from logging", "from print", "from stderr", "child-out", "child-err"):
        assert line in text, line
    assert "after the block" not in text
    out, err = capfd.readouterr()
    assert "after the block" in out and "child-out" not in out + err


def test_a_failing_step_logs_its_traceback_and_restores_the_console(tmp_path, capfd):
    log = tmp_path / "step.log"
    with pytest.raises(ValueError, match="bad input"), log_to(log):
        raise ValueError("bad input")
    assert "step failed" in log.read_text() and "ValueError: bad input" in log.read_text()
    print("console again")
    assert "console again" in capfd.readouterr().out
    assert not any(isinstance(h, logging.StreamHandler) and getattr(h.stream, "name", "") == str(log)
                   for h in logging.getLogger().handlers)
