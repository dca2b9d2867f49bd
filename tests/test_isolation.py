"""Worker isolation: a crash, a timeout, a CPU hog or a memory bomb fails one call, never the pool."""

from __future__ import annotations

import os
import threading
import time

import pytest

from drawloop.renderers import isolation
from drawloop.renderers.isolation import WorkerFailed, WorkerPool


@pytest.fixture
def pool():
    pool = WorkerPool(size=1, memory_mb=512, cpu_seconds=1)
    yield pool
    pool.close()


def test_calls_return_values(pool):
    assert pool.call("operator:add", 2, 3, timeout=30) == 5


def test_native_crash_fails_one_call_and_the_next_call_works(pool):
    first = pool.call("os:getpid", timeout=30)
    with pytest.raises(WorkerFailed, match=r"crashed \(SIGSEGV\)"):
        pool.call("ctypes:string_at", 0, timeout=30)
    second = pool.call("os:getpid", timeout=30)
    assert second != first  # a fresh worker replaced the dead one


def test_memory_bomb_is_stopped_by_the_address_space_limit(pool):
    with pytest.raises(WorkerFailed, match=r"ran out of memory \(limit 512 MiB\)"):
        pool.call("builtins:bytearray", 2 * 1024**3, timeout=30)
    assert pool.call("operator:mul", 6, 7, timeout=30) == 42


def test_cpu_hog_is_stopped_by_the_cpu_limit(pool):
    with pytest.raises(WorkerFailed, match="used more than 1 s of CPU time"):
        pool.call("builtins:sum", range(10**12), timeout=60)
    assert pool.call("operator:add", 1, 1, timeout=30) == 2


def test_wall_timeout_kills_the_worker_and_what_it_started(pool, tmp_path):
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(WorkerFailed, match=r"timed out after 0.5 s"):
        pool.call("os:system", f"sleep 60 & echo $! > {pid_file}; wait", timeout=0.5)
    assert time.monotonic() - started < 5
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the worker's own child outlived the timeout"
    assert pool.call("operator:add", 1, 2, timeout=30) == 3


def test_errors_inside_the_call_are_reported_and_the_worker_is_kept(pool):
    pid = pool.call("os:getpid", timeout=30)
    with pytest.raises(WorkerFailed, match="failed: ZeroDivisionError"):
        pool.call("operator:truediv", 1, 0, timeout=30)
    assert pool.call("os:getpid", timeout=30) == pid


def test_concurrent_callers_share_the_workers_safely():
    pool = WorkerPool(size=2)
    results = {}

    def work(i):
        results[i] = pool.call("operator:add", i, 1000, timeout=30)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.close()
    assert results == {i: i + 1000 for i in range(16)}


def test_workers_are_recycled_after_many_calls(pool, monkeypatch):
    monkeypatch.setattr(isolation, "MAX_CALLS_PER_WORKER", 3)
    pids = [pool.call("os:getpid", timeout=30) for _ in range(6)]
    assert len(set(pids[:3])) == 1 and len(set(pids[3:])) == 1 and pids[0] != pids[3]


def test_closed_pool_fails_cleanly():
    pool = WorkerPool(size=1)
    pool.close()
    with pytest.raises(WorkerFailed, match="closed"):
        pool.call("os:getpid", timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_cpu_budget_is_per_call_not_per_worker_lifetime(pool):
    """A worker that has used more CPU in total than one call's budget keeps working."""
    for _ in range(5):  # a quarter to half a second of CPU each
        assert pool.call("builtins:sum", range(2 * 10**7), timeout=60) > 0
    assert pool.call("resource:getrusage", 0, timeout=30).ru_utime > 1  # it used > 1 s (the budget) overall
