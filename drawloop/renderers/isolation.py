"""Pre-started, resource-limited worker processes: run a function where a crash cannot hurt us.

    from drawloop.renderers.isolation import WorkerFailed, get_pool
    pool = get_pool()                                   # one per process, one worker per core
    try:
        result = pool.call("drawloop.renderers.svg:render_guarded", code, 256, "resvg", timeout=10)
    except WorkerFailed as failure:
        print(failure)                                  # "timed out after 10 s", "crashed (SIGSEGV)"...

Each worker is a fresh interpreter (`python -I isolation.py`), started once and reused: that keeps
per-render overhead to one pipe round trip instead of an interpreter start. Workers run with an
address-space limit (RLIMIT_AS, inherited by the resvg processes they start), a per-call CPU limit
(RLIMIT_CPU, SIGXCPU), no core dumps, in their own session so a wall timeout kills the worker and
anything it started. A worker that times out, crashes or runs out of memory is replaced; the call
fails with a readable reason and the pool carries on. Thread-safe: each call borrows one worker.

Workers import `drawloop` sub-modules without running `drawloop/__init__.py` (a stub package), so
they start fast whatever the public API imports.
"""

from __future__ import annotations

import atexit
import importlib
import math
import os
import pickle
import queue
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import types

DEFAULT_MEMORY_MB = 1024
DEFAULT_CPU_SECONDS = 10
STARTUP_TIMEOUT = 60.0
MAX_CALLS_PER_WORKER = 5000          # recycle now and then: bounds leaks in native engines
WARM_IMPORTS = ("drawloop.renderers.svg", "cairosvg")
_HEADER = struct.Struct("!Q")


class WorkerFailed(Exception):
    """The call could not complete; str() says why, in words a drawer can act on. `kind` is one of
    "timeout", "crash", "memory", "cpu", "error", "unavailable"."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


class _Worker:
    def __init__(self, memory_mb: int, cpu_seconds: int):
        command = [sys.executable, "-I", os.path.abspath(__file__), str(memory_mb), str(cpu_seconds)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, start_new_session=True, bufsize=0)
        self.calls = 0
        try:  # wait for its imports, so a call's timeout measures the call, not the start
            _receive(self.process.stdout.fileno(), deadline=time.monotonic() + STARTUP_TIMEOUT)
        except (TimeoutError, EOFError, OSError):
            self.kill()
            raise

    def call(self, target: str, args: tuple, timeout: float):
        _send(self.process.stdin.fileno(), (target, args))
        self.calls += 1
        status, value = _receive(self.process.stdout.fileno(), deadline=time.monotonic() + timeout)
        return status, value

    def exit_reason(self, cpu_seconds: int, memory_mb: int) -> tuple[str, str]:
        code = self.process.wait()
        if code >= 0:
            return f"exited unexpectedly (code {code})", "crash"
        if -code == signal.SIGXCPU:
            return f"used more than {cpu_seconds} s of CPU time", "cpu"
        if -code == signal.SIGKILL:
            return f"was killed (SIGKILL), probably out of memory (limit {memory_mb} MiB)", "memory"
        return f"crashed ({_signal_name(-code)})", "crash"

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the worker and any resvg it started
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            pipe.close()


class WorkerPool:
    def __init__(self, size: int | None = None, memory_mb: int = DEFAULT_MEMORY_MB,
                 cpu_seconds: int = DEFAULT_CPU_SECONDS):
        self.size = size or usable_cores()
        self.memory_mb, self.cpu_seconds = memory_mb, cpu_seconds
        self._slots: queue.LifoQueue = queue.LifoQueue()  # LIFO: the warmest worker goes first
        for _ in range(self.size):
            self._slots.put(None)  # started lazily, on first use
        self._closed = False

    def call(self, target: str, *args, timeout: float = 30.0):
        """Run `module:function(*args)` in a worker; its return value, or WorkerFailed."""
        if self._closed:
            raise WorkerFailed("could not run: the worker pool is closed", "unavailable")
        worker = self._slots.get()
        if worker is None:
            try:
                worker = _Worker(self.memory_mb, self.cpu_seconds)
            except (TimeoutError, EOFError, OSError) as exc:
                self._slots.put(None)
                raise WorkerFailed(f"could not start a worker process ({type(exc).__name__})", "unavailable") from None
        try:
            status, value = worker.call(target, args, timeout)
            if status == "memory":  # it survived, but a fresh worker is cheaper than doubt
                worker = self._discard(worker)
        except TimeoutError:
            worker = self._discard(worker)
            raise WorkerFailed(f"timed out after {timeout:g} s", "timeout") from None
        except (EOFError, OSError):
            reason, kind = worker.exit_reason(self.cpu_seconds, self.memory_mb)
            worker = self._discard(worker)
            raise WorkerFailed(reason, kind) from None
        finally:
            if worker is not None and worker.calls >= MAX_CALLS_PER_WORKER:
                worker = self._discard(worker)
            self._slots.put(worker)
        if status == "ok":
            return value
        if status == "memory":
            raise WorkerFailed(f"ran out of memory (limit {self.memory_mb} MiB)", "memory")
        raise WorkerFailed(f"failed: {value}")

    @staticmethod
    def _discard(worker: "_Worker | None") -> None:
        if worker is not None:
            worker.kill()
        return None

    def close(self) -> None:
        self._closed = True
        for _ in range(self.size):
            worker = self._slots.get()
            if worker:
                worker.kill()


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


_POOL: WorkerPool | None = None
_POOL_PID = 0
_POOL_LOCK = threading.Lock()


def get_pool() -> WorkerPool:
    """The process-wide pool (recreated after a fork: pipes must not be shared between processes)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL, _POOL_PID = WorkerPool(), os.getpid()
        return _POOL


@atexit.register
def _close_pool() -> None:
    if _POOL is not None and _POOL_PID == os.getpid():
        _POOL.close()


# --- framing: 8-byte length + pickle, both directions --------------------------------------------

def _send(fd: int, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int, deadline: float | None = None):
    (length,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    return pickle.loads(_read_exactly(fd, length, deadline))


def _read_exactly(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, remaining = [], n
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# --- the worker side -----------------------------------------------------------------------------

def _serve(memory_mb: int, cpu_seconds: int) -> None:
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # stray prints from engines must never corrupt the reply channel
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name in WARM_IMPORTS:
        importlib.import_module(name)
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _send(replies, "ready")
    while True:
        try:
            target, args = _receive(requests)
        except EOFError:
            return
        _set_cpu_budget(cpu_seconds)
        _send(replies, _run(target, args))


def _set_cpu_budget(seconds: int) -> None:
    """RLIMIT_CPU counts the worker's whole life, so move the soft limit to `seconds` past what it
    has used so far. Only the soft limit moves: raising a hard limit needs privileges."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(used.ru_utime + used.ru_stime) + seconds  # ceil: never less than `seconds` left
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _run(target: str, args: tuple):
    try:
        module, _, function = target.partition(":")
        return "ok", getattr(importlib.import_module(module), function)(*args)
    except MemoryError:
        return "memory", ""
    except Exception as exc:
        return "error", f"{type(exc).__name__}: {exc}"[:500]


def _stub_package() -> None:
    """Import drawloop.renderers.* without executing drawloop/__init__.py (and all it imports)."""
    package = types.ModuleType("drawloop")
    package.__path__ = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    sys.modules["drawloop"] = package


if __name__ == "__main__":
    _stub_package()
    _serve(int(sys.argv[1]), int(sys.argv[2]))
