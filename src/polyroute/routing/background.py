"""One background thread that runs submitted work in order, so store writes overlap the model's forward passes.

The extraction's main thread drives the device; writing a window (assembling its blocks, compressing
and writing Zarr chunks, which releases the GIL) happens here meanwhile. The queue is bounded, so
host memory holds at most `depth` windows waiting besides the one being written. A failure in the
thread is raised in the caller at its next `submit` or at `close`; leaving the context with an error
abandons the queued work and waits for the thread, so the caller's cleanup (removing the store's
temporary folder) never races a write.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["BackgroundWork"]

_STOP = object()


class BackgroundWork:
    """`with BackgroundWork(depth) as work: work.submit(fn, *args)`; `close()` waits and re-raises."""

    def __init__(self, depth: int = 1, name: str = "polyroute-writer") -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.busy_s = 0.0  # CPU seconds the thread spent working: what it took off the caller's path

    def __enter__(self) -> BackgroundWork:
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abandon.set()
        self._stop_and_join()
        if exc_type is None:
            self._raise_pending()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None or self._abandon.is_set():
                continue  # drain without working: the caller is failing or stopping
            fn, args = item
            start = time.thread_time()
            try:
                fn(*args)
            except BaseException as err:  # noqa: BLE001 - handed to the caller, which re-raises it
                self._error = err
            self.busy_s += time.thread_time() - start

    def _stop_and_join(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(*args)`; blocks while `depth` items wait. Raises the thread's failure, if any."""
        self._raise_pending()
        self._queue.put((fn, args))

    def close(self) -> None:
        """Wait for every submitted item; raise the thread's failure, if any."""
        self._stop_and_join()
        self._raise_pending()
