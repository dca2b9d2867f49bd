"""The Python drawing sandbox, host side: pre-warmed fork servers inside bubblewrap.

    from drawloop.renderers.sandbox import SandboxFailed, run_in_sandbox
    header, png = run_in_sandbox(code, size=256, timeout=10)   # header: {"ok", "error", "log", ...}

What a job can see and do (bwrap + sandbox_server.py + seccomp.py):
- namespaces: new user (uid/gid 65534, no capabilities), PID, IPC, UTS, network (no interfaces but
  a dead loopback), mount; no /proc;
- files: /usr (and the /bin, /lib symlinks), the Python installation and the virtualenv, all
  read-only; /dev bwrap's minimal one (null, zero, urandom, ...), remounted read-only, so /dev/shm
  holds nothing; /tmp a private 64 MiB tmpfs of which a job can write only its own fresh, empty
  /tmp/jobs/<dir> (the rest is read-only by mode, and chmod is denied), removed afterwards however
  deep or locked; the project, home and everything else do not exist;
- memory: a job is forked from a zygote that never held another job's code or picture; RLIMIT_AS
  (server size + memory_mb) and no memfd, SysV or POSIX IPC, so no memory outside that limit but
  its share of the 64 MiB /tmp;
- per job: CPU seconds, 16 MiB files, 64 open files, no core; a seccomp filter (no sockets,
  processes, exec, ptrace, signals to others, fcntl/ioctl signal owners or leases, chmod/chown);
  a wall timeout, after which (and after any result) the job is SIGKILLed;
- the job's stdout/stderr go to a log file, never to the reply channel; the server reads at most
  64 KiB of it, only if it is still a regular file, and parses the job's result as a fixed binary
  header with capped lengths. The host reads only JSON headers (validated) and PNG bytes from the
  server (renderers/python.py decodes and re-encodes every PNG): nothing is ever unpickled.

One server runs one job at a time; `SandboxPool` keeps one server per core, started on demand and
restarted if it dies. After each job the server says "ready" or, if anything was unexpected (the
job's folder not removable, /tmp short of space, the zygote silent), "retire": the host then starts
a fresh server before the next job, so no job can leave a broken server to the next. bwrap runs
with --die-with-parent (started from one long-lived thread), and the server also exits when its
stdin closes: a sandbox never outlives the process that started it.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_FILES = ("sandbox_server.py", "seccomp.py")
INSIDE = "/opt/drawloop"
FRAME = struct.Struct("!II")
NOBODY = "65534"
TMPFS_BYTES = 64 * 1024 * 1024
STARTUP_TIMEOUT = 120.0           # the first start builds matplotlib's font cache
READY_TIMEOUT = 30.0              # the server's clean-up after a job, before it says ready
FALLBACK_SERVER_BYTES = 2 * 1024**3
PASSED_ENVIRONMENT = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LANG")


class SandboxFailed(Exception):
    """The sandbox itself (not the drawing) failed; str() is readable."""


def bwrap_command(python: str = sys.executable) -> list[str]:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        raise SandboxFailed("bubblewrap is not installed (apt-get install bubblewrap); "
                            "Python drawings cannot run without the sandbox")
    # Run as root, bwrap maps the sandbox's 65534 to the real uid 0 outside. Not fixed here, tried on
    # this machine: bwrap started as nobody (Popen user=65534) works, but cannot reach an interpreter
    # under /root (0700), e.g. pyenv's; --ro-bind-fd resolves the fd back to that path and fails;
    # setuid-style (real uid 65534, euid 0) fails to write the uid map; --userns with a namespace
    # mapping 0->0 and 65534->65534 fails to switch gid. Run drawloop as an ordinary user to get an
    # unprivileged uid outside; inside, no capabilities, seccomp and read-only mounts still hold.
    command = [bwrap, "--unshare-all", "--uid", NOBODY, "--gid", NOBODY, "--cap-drop", "ALL", "--new-session",
               "--die-with-parent", "--hostname", "sandbox",
               # The private /dev and /tmp first: binds below may live under /tmp (a checkout or venv
               # there) and must land on top of the tmpfs, not be hidden by it.
               # /dev read-only: its tmpfs (and /dev/shm in it) is not size-capped and outlives jobs.
               "--dev", "/dev", "--remount-ro", "/dev", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]
    for path in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(path):
            command += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            command += ["--ro-bind", path, path]
    for path in ("/etc/ld.so.cache", "/etc/fonts", "/etc/localtime"):
        command += ["--ro-bind-try", path, path]
    roots = _python_roots(python)
    for path in roots:
        command += ["--ro-bind", path, path]
    # Binds under /tmp make bwrap create their parent folders in the job's writable tmpfs; make them
    # read-only too, so a checkout under /tmp is as unwritable inside as one anywhere else.
    for folder in sorted({p for root in roots if root.startswith("/tmp/") for p in _parents(root)}):
        command += ["--chmod", "0555", folder]
    for name in SERVER_FILES:
        command += ["--ro-bind", os.path.join(HERE, name), f"{INSIDE}/{name}"]
    command += ["--remount-ro", "/",  # the sandbox's own root (where /work, /opt were created): no writes
                "--chdir", "/tmp", "--clearenv",
                "--setenv", "HOME", "/tmp", "--setenv", "PATH", "/usr/bin:/bin",
                "--setenv", "MPLCONFIGDIR", "/tmp/.matplotlib", "--setenv", "MPLBACKEND", "Agg",
                "--setenv", "OPENBLAS_NUM_THREADS", "1", "--setenv", "OMP_NUM_THREADS", "1"]
    for name in PASSED_ENVIRONMENT:
        if os.environ.get(name):
            command += ["--setenv", name, os.environ[name]]
    return command + [python, "-I", "-B", f"{INSIDE}/sandbox_server.py"]


def _parents(path: str) -> list[str]:
    """/tmp/a/b/c -> [/tmp/a, /tmp/a/b] (the folders bwrap creates to mount /tmp/a/b/c)."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(2, len(parts))]


def _python_roots(python: str) -> list[str]:
    """The interpreter's installation and the virtualenv, as real paths, outside /usr."""
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix),
             os.path.dirname(os.path.dirname(os.path.realpath(python)))}
    if os.path.islink(python):
        roots.add(os.path.dirname(os.path.dirname(python)))  # the venv's bin/python symlink itself
    kept = sorted(r for r in roots if not r.startswith("/usr"))
    return [r for r in kept if not any(r != o and r.startswith(o + "/") for o in kept)]


class Sandbox:
    """One bubblewrap sandbox with one fork server in it; restarted when it dies."""

    def __init__(self, memory_mb: int = 512, cpu_seconds: int = 10):
        self.memory_mb, self.cpu_seconds = memory_mb, cpu_seconds
        self.process: subprocess.Popen | None = None
        self.address_space = 0
        self.starts = self.retired = 0

    def run(self, code: str, size: int, timeout: float) -> tuple[dict, bytes]:
        self._make_ready()
        request = {"size": size, "timeout": timeout}
        try:
            _send(self.process.stdin.fileno(), request, code.encode("utf-8", "replace"))
            header, png = _receive(self.process.stdout.fileno(), time.monotonic() + timeout + 15)
            return _job_header(header), png
        except (OSError, EOFError, TimeoutError, ValueError) as exc:
            self.stop()
            raise SandboxFailed(f"the Python sandbox stopped responding ({type(exc).__name__}); "
                                "it has been restarted") from None

    def _make_ready(self) -> None:
        """A server that has said "ready" since its last job; one that retired, died or stays silent
        (a job may have broken it) is replaced, on this job's clock, before this job reaches it."""
        if self.process is not None and self.process.poll() is None:
            try:
                header, _ = _receive(self.process.stdout.fileno(), time.monotonic() + READY_TIMEOUT)
                if header.get("ready") is True:
                    return
            except (OSError, EOFError, TimeoutError, ValueError):
                pass
            self.retired += 1
        self.start()
        try:
            header, _ = _receive(self.process.stdout.fileno(), time.monotonic() + STARTUP_TIMEOUT)
        except (OSError, EOFError, TimeoutError, ValueError) as exc:
            header = {"retire": type(exc).__name__}
        if header.get("ready") is not True:
            reason = str(header.get("retire", "not ready"))[:300]
            self.stop()
            raise SandboxFailed(f"the Python sandbox could not start: {reason}")

    def start(self) -> None:
        self.stop()
        self._log = tempfile.TemporaryFile()
        self.process = _spawn(bwrap_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=self._log, start_new_session=True, bufsize=0)
        try:
            _receive(self.process.stdout.fileno(), time.monotonic() + STARTUP_TIMEOUT)
        except (OSError, EOFError, TimeoutError, ValueError):
            reason = self._stderr_tail()
            self.stop()
            raise SandboxFailed(f"the Python sandbox could not start: {reason or 'no output'}") from None
        self.starts += 1
        server_bytes = _server_address_space(self.process.pid) or FALLBACK_SERVER_BYTES
        self.address_space = server_bytes + self.memory_mb * 1024 * 1024
        _send(self.process.stdin.fileno(), {"cpu_seconds": self.cpu_seconds, "memory_mb": self.memory_mb,
                                            "address_space_bytes": self.address_space})

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.kill()  # --die-with-parent: the sandbox's processes die with bwrap
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            pipe.close()
        self.process = None

    def _stderr_tail(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace").strip()[-500:]


class SandboxPool:
    """Up to `size` sandboxes, each running one job at a time."""

    def __init__(self, size: int | None = None, memory_mb: int = 512, cpu_seconds: int = 10):
        from drawloop.renderers.isolation import usable_cores

        self.size = size or usable_cores()
        self._idle: queue.LifoQueue = queue.LifoQueue()
        for _ in range(self.size):
            self._idle.put(Sandbox(memory_mb, cpu_seconds))

    def run(self, code: str, size: int, timeout: float) -> tuple[dict, bytes]:
        sandbox = self._idle.get()
        try:
            return sandbox.run(code, size, timeout)
        finally:
            self._idle.put(sandbox)

    def prestart(self, count: int = 1) -> None:
        """Start `count` servers now (a start takes a second or two) instead of on first use."""
        taken = [self._idle.get() for _ in range(min(count, self.size))]
        try:
            for sandbox in taken:
                if sandbox.process is None:
                    sandbox.start()
        finally:
            for sandbox in taken:
                self._idle.put(sandbox)

    def close(self) -> None:
        for _ in range(self.size):
            self._idle.get().stop()


def _spawn(*args, **kwargs) -> subprocess.Popen:
    """Popen from one long-lived thread. bwrap's --die-with-parent fires when the *thread* that
    started it ends, so a sandbox started from a short-lived worker thread would die with it."""
    global _SPAWNER, _SPAWNER_PID
    with _LOCK:
        if _SPAWNER is None or _SPAWNER_PID != os.getpid():
            _SPAWNER, _SPAWNER_PID = queue.Queue(), os.getpid()
            threading.Thread(target=_spawner_loop, args=(_SPAWNER,), name="sandbox-spawner", daemon=True).start()
        requests = _SPAWNER
    done: queue.Queue = queue.Queue(maxsize=1)
    requests.put((args, kwargs, done))
    outcome = done.get()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _spawner_loop(requests: queue.Queue) -> None:
    while True:
        args, kwargs, done = requests.get()
        try:
            done.put(subprocess.Popen(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            done.put(exc)


_SPAWNER: queue.Queue | None = None
_SPAWNER_PID = 0
_POOL: SandboxPool | None = None
_POOL_PID = 0
_LOCK = threading.Lock()


def get_sandbox_pool() -> SandboxPool:
    global _POOL, _POOL_PID
    with _LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL, _POOL_PID = SandboxPool(), os.getpid()
        return _POOL


def run_in_sandbox(code: str, size: int = 256, timeout: float = 10.0) -> tuple[dict, bytes]:
    return get_sandbox_pool().run(code, size, timeout)


@atexit.register
def _close_pool() -> None:
    if _POOL is not None and _POOL_PID == os.getpid():
        _POOL.close()


# --- framing (JSON header + raw bytes; sandbox_server.py speaks the same) -------------------------

def _send(fd: int, header: dict, payload: bytes = b"") -> None:
    data = json.dumps(header).encode()
    view = memoryview(FRAME.pack(len(data), len(payload)) + data + payload)
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int, deadline: float) -> tuple[dict, bytes]:
    head_len, payload_len = FRAME.unpack(_read_exactly(fd, FRAME.size, deadline))
    if head_len > 1 << 20 or payload_len > 64 << 20:
        raise ValueError("oversized reply")
    try:
        header = json.loads(_read_exactly(fd, head_len, deadline))
    except RecursionError:  # nested too deeply: not what the server writes
        raise ValueError("malformed reply") from None
    if not isinstance(header, dict):
        raise ValueError("malformed reply")
    return header, _read_exactly(fd, payload_len, deadline)


def _job_header(header: dict) -> dict:
    """A job's reply with the types renderers/python.py relies on, or ValueError."""
    ok, error, log, seconds = (header.get(k) for k in ("ok", "error", "log", "seconds"))
    if not isinstance(ok, bool) or not isinstance(error, (str, type(None))) or not isinstance(log, str) \
            or not isinstance(seconds, (int, float)):
        raise ValueError("malformed reply")
    return {"ok": ok, "error": error, "log": log, "seconds": float(seconds)}


def _read_exactly(fd: int, n: int, deadline: float) -> bytes:
    chunks = []
    while n:
        wait = deadline - time.monotonic()
        if wait <= 0 or not select.select([fd], [], [], wait)[0]:
            raise TimeoutError
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _server_address_space(bwrap_pid: int) -> int | None:
    """VmSize of the Python server, read from the host's /proc (the sandbox has none)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    frontier = [bwrap_pid]
    while frontier:
        pid = frontier.pop()
        frontier += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if fields.get("Name", "").strip().startswith("python") and "VmSize" in fields:
            return int(fields["VmSize"].split()[0]) * 1024
    return None
