"""Logging for workflow steps: one log file per job, readable in Slurm logs."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from polyroute.errors import UserError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def _descriptors_to(stream) -> Iterator[None]:
    """Point file descriptors 1 and 2 at `stream` for the block, so what child processes and C code
    print (compilers started by DeepSpeed's JIT, the deepspeed launcher's ranks) lands in the log too."""
    for s in (sys.stdout, sys.stderr):
        s.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        yield
    finally:
        stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None) -> Iterator[logging.Logger]:
    """Send logging, warnings, stdout and stderr (tqdm, tracebacks, subprocesses) of the block to
    `path` (and keep the console when no path is given), so every job leaves its whole story in
    logs/<run>/<rule>/.

    A `UserError` (bad input the user can fix) ends the job with one line, in the log and on the
    console, and exit status 1; any other exception is a bug: its traceback goes to the log and it
    propagates."""
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
    with open(path, "a", encoding="utf-8", buffering=1) as stream, _descriptors_to(stream):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
        logging.captureWarnings(True)
        old_streams = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = stream
        failed = None
        try:
            yield logging.getLogger("polyroute")
        except UserError as exc:
            failed = " ".join(str(exc).split())
            logging.getLogger("polyroute").error("error: %s", failed)
        except BaseException:
            logging.getLogger("polyroute").exception("step failed")
            raise
        finally:
            sys.stdout, sys.stderr = old_streams
            logging.captureWarnings(False)
            root.removeHandler(handler)
    if failed is not None:
        raise SystemExit(f"error: {failed} (log: {path})")
