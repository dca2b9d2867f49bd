"""The fork server that runs INSIDE bubblewrap; one drawing job per forked child.

(One file on purpose, ~560 lines: it is the script copied into the sandbox, where the drawloop package
is not importable; only seccomp.py goes in beside it, so anything split out would be one more file to ship.)

    python -I -B /opt/drawloop/sandbox_server.py     # started by renderers/sandbox.py, never by hand

Start-up (once): import numpy, matplotlib (Agg) and PIL and draw throw-away figures so fonts and
caches are ready, gc.freeze(), mark itself non-dumpable, say "ready", read the limits, make all of
/tmp but /tmp/jobs read-only by mode (jobs cannot chmod), fork the zygote, say "ready" again.
Requests arrive on fd 0, replies leave on fd 1; no job ever holds either.

  zygote -> forked before any job's data exists in the server: every job is forked from it, so a
            job's memory never holds an earlier job's code or picture. It forks on request (the
            pipes come over a socket), reports the pid, then the exit status.
  spare  -> forked ahead of time: new session; stdin /dev/null, stdout+stderr to a log in its own
            fresh, empty, 0700 folder; every other fd closed; rlimits (address space, CPU, file
            size, open files, processes, no core); the seccomp filter (seccomp.py). Then it waits
            on its job pipe.
  job    -> the server hands the spare the code; it runs, writes a fixed binary result header,
            the error text and the PNG to its result pipe and exits. The server reads until EOF,
            a size cap or the wall deadline, always SIGKILLs the child (a job may live on after
            its result), reads at most MAX_LOG_BYTES of the log (a regular file it opened
            itself), replies with JSON (+ PNG bytes), then reaps, removes the job's folder and
            checks that /tmp has all its space back. Anything unexpected: it replies "retire"
            instead of "ready" and the host replaces it.

Stdlib + numpy/matplotlib/PIL only: the drawloop package is not visible in the sandbox.
"""

from __future__ import annotations

import ctypes
import fcntl
import io
import json
import os
import resource
import select
import signal
import socket
import stat
import struct
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seccomp import install_filter  # noqa: E402 - a sibling file in the sandbox, not a package

FRAME = struct.Struct("!II")     # header length, payload length
RESULT = struct.Struct("!BII")   # a job's result: ok, error length, PNG length (no parsing of job JSON)
PID = struct.Struct("!i")        # the zygote's reports: a pid, then that child's wait status
MAX_RESULT_BYTES = 32 * 1024 * 1024
MAX_ERROR_BYTES = 4096
MAX_LOG_BYTES = 64 * 1024        # read from the log's end; the reply keeps the last MAX_LOG_CHARS
MAX_LOG_CHARS = 600
EXIT_GRACE = 0.5                 # after EOF without a result: time for the child to end by itself
STATUS_TIMEOUT = 10.0            # a SIGKILLed child is reaped in milliseconds; longer means trouble
DRAWING = "<drawing>"
JOBS_DIR = "/tmp/jobs"


# --- framing (the host side in sandbox.py speaks the same) ---------------------------------------

def send(fd: int, header: dict, payload: bytes = b"") -> None:
    data = json.dumps(header).encode()
    view = memoryview(FRAME.pack(len(data), len(payload)) + data + payload)
    while view:
        view = view[os.write(fd, view):]


def receive(fd: int) -> tuple[dict, bytes]:
    head_len, payload_len = FRAME.unpack(read_exactly(fd, FRAME.size))
    header = json.loads(read_exactly(fd, head_len))
    return header, read_exactly(fd, payload_len)


def read_exactly(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


# --- the server ----------------------------------------------------------------------------------

WARM_UP_DRAWING = """
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, ImageDraw, ImageFilter
fig, ax = plt.subplots()
ax.add_patch(plt.Circle((0.5, 0.5), 0.3, color="red"))
ax.add_patch(plt.Rectangle((0.1, 0.1), 0.2, 0.1, color="gray"))
ax.add_patch(plt.Polygon([[0, 0], [1, 0], [0.5, 1]], closed=True, alpha=0.3))
t = np.linspace(0, 2 * np.pi, 50)
ax.plot(np.cos(t), np.sin(t), linewidth=2)
ax.fill_between(t, np.sin(t), alpha=0.5)
ax.scatter([0.2, 0.4], [0.6, 0.8], s=40)
ax.imshow(np.random.rand(4, 4), extent=(0, 1, 0, 1))
ax.text(0.5, 0.5, "warm", fontsize=12, ha="center")
ax.set_title("warm"); ax.set_xlim(0, 1); ax.set_ylim(0, 1); ax.set_aspect("equal"); ax.axis("off")
picture = Image.new("RGB", (64, 64), "white")
ImageDraw.Draw(picture).ellipse((8, 8, 56, 56), fill="red", outline="black")
picture.filter(ImageFilter.GaussianBlur(2))
"""


def warm_up() -> None:
    """Import and exercise what drawings use, once, so every forked job finds it ready; then
    gc.freeze() so a job's garbage collector never touches (and copies) the server's objects."""
    import gc

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import ImageFont

    for size in (256, 128):
        draw(WARM_UP_DRAWING, size, 0)
        plt.close("all")
    ImageFont.load_default()
    gc.collect()
    gc.freeze()


def serve() -> None:
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    os.makedirs(JOBS_DIR, exist_ok=True)
    os.makedirs(os.environ.get("MPLCONFIGDIR", "/tmp/.matplotlib"), exist_ok=True)
    warm_up()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: jobs cannot open our /proc/<pid>/mem or ptrace us
    send(replies, {"ready": True})
    try:
        limits, _ = receive(requests)  # cpu_seconds, memory_mb, address_space_bytes
        lock_down("/tmp")
        zygote, free = Zygote(limits), free_space("/tmp")
        while True:
            spare = Spare(zygote)
            send(replies, {"ready": True})
            request, code = receive(requests)
            header, png = spare.run(request, code, limits)
            send(replies, header, png)
            del request, code, header, png
            problem = spare.finish(free)   # reap and clean up after replying: off the caller's clock
            if problem:
                send(replies, {"retire": problem})
                return
    except EOFError:
        return  # the host went away: leaving ends the whole sandbox (we are its init's only child)
    except Exception as exc:  # noqa: BLE001 - whatever a job did to us, the host starts a fresh server
        send(replies, {"retire": f"{type(exc).__name__}: {exc}"[:300]})


def lock_down(root: str) -> None:
    """Make every file under `root` but the jobs folder read-only by mode. Jobs run as our own uid,
    so mode bits are all that keeps them out of the server's files, and seccomp forbids chmod."""
    # Only this tmpfs: a checkout or virtualenv that lives under the host's /tmp is bind-mounted
    # read-only into it (another device), and is unwritable already; chmod there fails (EROFS).
    device = os.lstat(root).st_dev
    locked = []
    for folder, folders, files in os.walk(root):
        folders[:] = [name for name in folders if os.lstat(os.path.join(folder, name)).st_dev == device]
        for path in (os.path.join(folder, name) for name in files):
            if not os.path.islink(path) and os.lstat(path).st_dev == device:  # a link's mode means nothing
                os.chmod(path, 0o444)
        if folder != JOBS_DIR:
            locked.append(folder)
    for folder in reversed(locked):   # deepest first, so each folder is still writable while we work in it
        os.chmod(folder, 0o555)
    os.chmod(JOBS_DIR, 0o555)


def free_space(path: str) -> tuple[int, int]:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize, info.f_favail


class Zygote:
    """A pristine copy of the warm server that forks the jobs, so that no job inherits memory that
    once held another job's code, picture or messages. It is the jobs' parent: it reaps them and
    reports their wait status."""

    def __init__(self, limits: dict):
        self.socket, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.pid = os.fork()
        if self.pid == 0:
            self.socket.close()
            try:
                zygote_loop(theirs, limits)
            finally:
                os._exit(0)
        theirs.close()

    def fork(self, job_dir: str, job_fd: int, result_fd: int) -> int:
        socket.send_fds(self.socket, [job_dir.encode()], [job_fd, result_fd])
        return self.report(time.monotonic() + STATUS_TIMEOUT)

    def report(self, deadline: float) -> int:
        data = b""
        while len(data) < PID.size:
            if not select.select([self.socket], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("the zygote did not report")
            chunk = self.socket.recv(PID.size - len(data))
            if not chunk:
                raise EOFError("the zygote is gone")
            data += chunk
        return PID.unpack(data)[0]


def zygote_loop(channel: socket.socket, limits: dict) -> None:
    while True:
        message, fds, _, _ = socket.recv_fds(channel, 4096, 2)
        if not message or len(fds) != 2:
            return
        pid = os.fork()
        if pid == 0:
            channel.close()
            child(limits, message.decode(), *fds)  # never returns
        for fd in fds:
            os.close(fd)
        channel.sendall(PID.pack(pid))
        channel.sendall(PID.pack(os.waitpid(pid, 0)[1]))


class Spare:
    """A child forked and confined ahead of time, waiting on a pipe for its one drawing, so the fork,
    the limits and the seccomp filter are not on the request's clock."""

    def __init__(self, zygote: Zygote):
        self.zygote, self.status = zygote, None
        self.job_dir = make_job_dir()
        job_read, self.job_write = os.pipe()
        self.result_read, result_write = os.pipe()
        try:
            self.pid = zygote.fork(self.job_dir, job_read, result_write)
        finally:
            os.close(job_read)
            os.close(result_write)

    def run(self, request: dict, code: bytes, limits: dict):
        started = time.monotonic()
        try:
            send(self.job_write, request, code)
        except OSError:
            pass  # the child died while waiting; collect() sees EOF and the status says why
        os.close(self.job_write)
        output, timed_out = collect(self.result_read, started + request["timeout"])
        result = None if timed_out else parse_result(output)
        if result is None:  # only a failure needs to know how the child ended
            self.status = self.end(grace=0 if timed_out else EXIT_GRACE)
        header, png = interpret(result, self.status, timed_out, request, limits)
        header.update(seconds=time.monotonic() - started, log=read_log(self.job_dir))
        return header, png

    def end(self, grace: float = 0.0) -> int:
        """The child's wait status: after `grace` seconds for it to end by itself (a crash says why),
        SIGKILLed, always (a job may have closed its pipe or sent its result and lived on)."""
        if grace:
            try:
                return self.zygote.report(time.monotonic() + grace)
            except TimeoutError:
                pass
        # it cannot be reaped (nor its pid reused) before the zygote reports
        os.kill(self.pid, signal.SIGKILL)
        return self.zygote.report(time.monotonic() + STATUS_TIMEOUT)

    def finish(self, free: tuple[int, int]) -> str | None:
        """Reap, remove the job's folder, and say what is wrong if the job left a trace."""
        if self.status is None:
            self.status = self.end()
        os.close(self.result_read)
        remove_tree(self.job_dir)
        if os.listdir(JOBS_DIR):
            return "a job's folder could not be removed"
        if free_space("/tmp") < free:
            return "/tmp did not get all its space back after a job"
        return None


def make_job_dir() -> str:
    os.chmod(JOBS_DIR, 0o755)  # writable only while we create or remove a job's folder in it
    try:
        return tempfile.mkdtemp(dir=JOBS_DIR)
    finally:
        os.chmod(JOBS_DIR, 0o555)


def remove_tree(path: str) -> None:
    """Remove a job's folder however deep or locked it is: iteratively (no recursion limit), through
    directory fds (no path-length limit), making each folder usable first (a job may have made it
    0000 with umask). The job is dead, so nothing changes the tree meanwhile."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    os.chmod(path, 0o700)
    fd, names = os.open(path, flags), []
    try:
        while True:
            folder = clear_folder(fd)
            if folder is not None:  # down into a folder that is not empty
                os.chmod(folder, 0o700, dir_fd=fd)
                inner = os.open(folder, flags, dir_fd=fd)
                os.close(fd)
                fd = inner
                names.append(folder)
            elif names:             # this one is empty now: up, and remove it
                outer = os.open("..", flags, dir_fd=fd)
                os.close(fd)
                fd = outer
                os.rmdir(names.pop(), dir_fd=fd)
            else:
                break
    finally:
        os.close(fd)
    os.chmod(JOBS_DIR, 0o755)
    try:
        os.rmdir(path)
    finally:
        os.chmod(JOBS_DIR, 0o555)


def clear_folder(fd: int) -> str | None:
    """Unlink the files and empty folders in the open folder `fd`; the name of a folder left."""
    left = None
    with os.scandir(fd) as entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.name, dir_fd=fd)
                continue
            try:
                os.rmdir(entry.name, dir_fd=fd)
            except OSError:
                left = left or entry.name
    return left


def collect(fd: int, deadline: float) -> tuple[bytes, bool]:
    chunks, total = [], 0
    while True:
        wait = deadline - time.monotonic()
        if wait <= 0 or not select.select([fd], [], [], wait)[0]:
            return b"".join(chunks), True
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks), False
        total += len(chunk)
        if total > MAX_RESULT_BYTES:
            return b"", False  # not a valid result
        chunks.append(chunk)


def parse_result(output: bytes) -> tuple[bool, str, bytes] | None:
    """(ok, error, png) from a job's result bytes, or None unless they are exactly one well-formed
    result: a RESULT header whose lengths are within bounds and add up, and a PNG if it is ok."""
    if len(output) < RESULT.size:
        return None
    ok, error_len, png_len = RESULT.unpack_from(output)
    if ok not in (0, 1) or error_len > MAX_ERROR_BYTES or RESULT.size + error_len + png_len != len(output):
        return None
    png = output[RESULT.size + error_len:]
    if ok and not png.startswith(b"\x89PNG"):
        return None
    error = output[RESULT.size:RESULT.size + error_len].decode("utf-8", "replace")
    return bool(ok), error, png if ok else b""


def interpret(result, status: int | None, timed_out: bool, request: dict, limits: dict):
    if timed_out:
        return {"ok": False, "error": f"the drawing code ran longer than {request['timeout']:g} s and was "
                                      "stopped; draw with fewer, simpler operations"}, b""
    if status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) != signal.SIGKILL:
        number = os.WTERMSIG(status)
        if number == signal.SIGXCPU:
            return {"ok": False, "error": f"the drawing code used more than {limits['cpu_seconds']} s of CPU "
                                          "time and was stopped"}, b""
        return {"ok": False, "error": f"the drawing code crashed the Python process "
                                      f"({signal.Signals(number).name}); it may have run out of memory "
                                      f"(limit {limits['memory_mb']} MiB)"}, b""
    if result is None:
        return {"ok": False, "error": "the drawing code ended without a valid result (did it exit early, or "
                                      "write to files it did not open?)"}, b""
    ok, error, png = result
    return {"ok": ok, "error": None if ok else error}, png


def read_log(job_dir: str) -> str:
    """The end of the job's log: at most MAX_LOG_BYTES, only from a regular file we open ourselves
    without following links or waiting (a job may have swapped it for a FIFO or /dev/zero)."""
    try:
        fd = os.open(os.path.join(job_dir, "output.log"), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return ""
        data = os.pread(fd, MAX_LOG_BYTES, max(0, info.st_size - MAX_LOG_BYTES))
        return data.decode("utf-8", "replace")[-MAX_LOG_CHARS:]
    except OSError:
        return ""
    finally:
        os.close(fd)


# --- the child: limits, seccomp, the drawing ------------------------------------------------------

def child(limits: dict, job_dir: str, job_fd: int, result_fd: int) -> None:
    png = b""
    try:
        confine(limits, job_dir, job_fd, result_fd)
        request, code = receive(3)  # confine() moved the job pipe to fd 3...
        result_fd = 4               # ...and the result pipe to fd 4
    except BaseException as exc:  # noqa: BLE001
        header = {"ok": False, "error": f"the sandbox could not start the job: {type(exc).__name__}: {exc}"}
    else:
        try:
            header, png = draw(code.decode("utf-8", "replace"), request["size"], limits["memory_mb"])
        except DrawingError as exc:
            header = {"ok": False, "error": str(exc)}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        write_result(result_fd, bool(header["ok"]), header.get("error") or "", png)
        os.close(result_fd)  # EOF now: the server replies while this process is still being torn down
    finally:
        os._exit(0)


def write_result(fd: int, ok: bool, error: str, png: bytes) -> None:
    """The result as parse_result() reads it: RESULT header, error text (truncated), PNG."""
    message = error.encode("utf-8", "replace")[:MAX_ERROR_BYTES]
    view = memoryview(RESULT.pack(ok, len(message), len(png)) + message + png)
    while view:
        view = view[os.write(fd, view):]


def confine(limits: dict, job_dir: str, job_fd: int, result_fd: int) -> None:
    os.setsid()
    os.chdir(job_dir)
    log = os.open("output.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((devnull, 0), (log, 1), (log, 2)):
        os.dup2(source, target)
    job_fd, result_fd = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (job_fd, result_fd))  # out of the way
    os.dup2(job_fd, 3)
    os.dup2(result_fd, 4)
    os.closerange(5, 1 << 16)  # the host channel and everything else the server holds
    os.environ.update(HOME=job_dir, TMPDIR=job_dir)
    tempfile.tempdir = job_dir
    memory = limits["address_space_bytes"]
    rlimits = {resource.RLIMIT_AS: memory, resource.RLIMIT_CPU: limits["cpu_seconds"],
               resource.RLIMIT_FSIZE: 16 * 1024 * 1024, resource.RLIMIT_NOFILE: 64,
               resource.RLIMIT_NPROC: 64, resource.RLIMIT_CORE: 0}
    for kind, value in rlimits.items():
        hard = value + 1 if kind == resource.RLIMIT_CPU else value  # SIGXCPU first, SIGKILL a second later
        resource.setrlimit(kind, (value, hard))
    install_filter()


class DrawingError(Exception):
    """A message for the drawer about its code."""


def draw(code: str, size: int, memory_mb: int) -> tuple[dict, bytes]:
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.figsize": (size / 100, size / 100), "figure.dpi": 100})
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(code, DRAWING, "exec"), namespace)
    except SystemExit:
        pass  # a script may end with sys.exit(); what it drew still counts
    except MemoryError:
        raise DrawingError(f"MemoryError: the drawing code needed more than {memory_mb} MiB") from None
    except BaseException as exc:  # noqa: BLE001
        raise DrawingError(describe(exc)) from None
    try:
        return {"ok": True}, capture(namespace.get("image"), size)
    except DrawingError:
        raise
    except MemoryError:
        raise DrawingError(f"MemoryError: saving the drawing needed more than {memory_mb} MiB") from None
    except BaseException as exc:  # noqa: BLE001 - e.g. a figure left in a broken state
        raise DrawingError(f"could not save the drawing: {describe(exc)}") from None


def describe(exc: BaseException) -> str:
    """'line 3: ValueError: ...' pointing into the drawing, not into matplotlib's internals."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == DRAWING]
    where = f"line {frames[-1].lineno}: " if frames else ""
    if isinstance(exc, SyntaxError):
        where = f"line {exc.lineno}: "
    message = f"{where}{type(exc).__name__}: {exc}"
    hint = ERRNO_HINTS.get(getattr(exc, "errno", None))
    if isinstance(exc, ImportError):
        hint = ERRNO_HINTS[2]
    elif type(exc).__name__ in ("gaierror", "herror"):
        hint = SANDBOX_HINT
    return (f"{message} ({hint})" if hint else message)[:800]


SANDBOX_HINT = ("the drawing sandbox has no network, no other programs and no files outside its temporary "
                "folder: draw with matplotlib or PIL only")
ERRNO_HINTS = {1: SANDBOX_HINT, 13: SANDBOX_HINT, 30: SANDBOX_HINT, 38: SANDBOX_HINT,
               2: "only numpy, matplotlib, PIL and the standard library are available, and no files",
               27: "files in the sandbox are limited to 16 MiB", 24: "at most 64 files can be open",
               28: "the sandbox's temporary folder is full"}


def capture(image, size: int) -> bytes:
    from PIL import Image

    if image is not None and not isinstance(image, Image.Image):
        raise DrawingError(f"`image` must be a PIL Image, got {type(image).__name__}")
    if image is None:
        image = figure_image(size)
    return to_png(letterbox(image, size))


def figure_image(size: int):
    import matplotlib.pyplot as plt
    from PIL import Image

    if not plt.get_fignums():
        raise DrawingError("the code drew nothing: draw on a matplotlib figure (it is captured "
                           "automatically) or assign a PIL Image to a variable named `image`")
    figure = plt.gcf()
    width, height = figure.get_size_inches()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=size / max(width, height, 1e-3))  # the figure's own facecolor
    buffer.seek(0)
    return Image.open(buffer)


def letterbox(image, size: int):
    from PIL import Image

    image = image.convert("RGBA")
    if image.size != (size, size):
        scale = size / max(image.size)
        fitted = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(fitted, Image.LANCZOS)
    canvas = Image.new("RGBA", (size, size), "white")
    canvas.alpha_composite(image, ((size - image.width) // 2, (size - image.height) // 2))
    return canvas.convert("RGB")


def to_png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    serve()
