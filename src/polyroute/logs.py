"""Logging for workflow steps: one log file per job, readable in Slurm logs."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None) -> Iterator[logging.Logger]:
    """Send logging, warnings and stderr (tqdm, tracebacks) of the block to `path` (and keep stderr
    when no path is given), so every job leaves its whole story in logs/<run>/<rule>/."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if path is None:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
        try:
            yield logging.getLogger("polyroute")
        finally:
            root.removeHandler(handler)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", buffering=1) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
        logging.captureWarnings(True)
        old_stderr = sys.stderr
        sys.stderr = stream
        try:
            yield logging.getLogger("polyroute")
        except BaseException:
            logging.getLogger("polyroute").exception("step failed")
            raise
        finally:
            sys.stderr = old_stderr
            root.removeHandler(handler)
