"""The store writer's background thread: order kept, failures raised in the caller, nothing written after one."""

from __future__ import annotations

import threading
import time

import pytest

from polyroute.routing.background import BackgroundWork


def test_work_runs_in_order_off_the_calling_thread():
    done, threads = [], set()

    def record(i):
        time.sleep(0.001 * (i % 3))
        done.append(i)
        threads.add(threading.current_thread().name)

    with BackgroundWork(depth=2) as work:
        for i in range(20):
            work.submit(record, i)
        work.close()
    assert done == list(range(20))
    assert threads == {"polyroute-writer"}


def test_busy_time_counts_the_threads_cpu_not_its_waiting():
    def spin(seconds):
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    with BackgroundWork(depth=1) as work:
        work.submit(spin, 0.05)
        work.submit(time.sleep, 0.2)  # waiting costs no CPU
        work.close()
    assert 0.05 <= work.busy_s < 0.15


def test_a_failure_in_the_thread_reaches_the_caller_and_stops_later_work():
    done = []

    def step(i):
        if i == 2:
            raise OSError("disk full")
        done.append(i)

    with pytest.raises(OSError, match="disk full"):
        with BackgroundWork(depth=1) as work:
            for i in range(50):
                work.submit(step, i)
                time.sleep(0.002)
    assert done == [0, 1]  # nothing after the failure ran


def test_a_failure_in_the_caller_abandons_queued_work_and_joins():
    started, release = threading.Event(), threading.Event()
    done = []

    def slow(i):
        started.set()
        release.wait(5)
        done.append(i)

    work = BackgroundWork(depth=1)
    with pytest.raises(RuntimeError, match="forward failed"):
        with work:
            work.submit(slow, 0)
            started.wait(5)
            work.submit(slow, 1)  # queued behind the running item
            threading.Timer(0.05, release.set).start()
            raise RuntimeError("forward failed")
    assert done == [0]  # the running item finished; the queued one never ran
    assert not work._thread.is_alive()


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth must be >= 1"):
        BackgroundWork(depth=0)
