"""The fork server that runs INSIDE bubblewrap; one drawing job per forked child.

    python -I -B /opt/drawloop/sandbox_server.py     # started by renderers/sandbox.py, never by hand

Start-up (once): import numpy, matplotlib (Agg) and PIL and draw throw-away figures so fonts and
caches are ready, gc.freeze(), mark itself non-dumpable, say "ready", read the limits. Requests
arrive on fd 0, replies leave on fd 1; no job ever holds either.

  spare  -> forked ahead of time: new session; stdin /dev/null, stdout+stderr to a log in its own
            temp dir; every other fd closed; rlimits (address space, CPU, file size, open files,
            processes, no core); the seccomp filter (seccomp.py). Then it waits on its job pipe.
  job    -> the server hands the spare the code; it runs, writes "<json status>\n<png>" to its
            result pipe and exits. The server reads until EOF or the wall deadline (then SIGKILL),
            replies with JSON (+ PNG bytes), and only then reaps the child, removes its temp dir
            and forks the next spare.

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
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seccomp import install_filter  # noqa: E402 - a sibling file in the sandbox, not a package

FRAME = struct.Struct("!II")     # header length, payload length
MAX_RESULT_BYTES = 32 * 1024 * 1024
MAX_LOG_CHARS = 600
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
        spare = Spare(limits)
        while True:
            request, code = receive(requests)
            header, png, finished = spare.run(request, code)
            send(replies, header, png)
            finished()   # reap and clean up after replying: off the caller's clock
            spare = Spare(limits)
    except EOFError:
        return  # the host went away: leaving ends the whole sandbox (we are its init's only child)


class Spare:
    """A child forked and confined ahead of time, waiting on a pipe for its one drawing, so the fork,
    the limits and the seccomp filter are not on the request's clock."""

    def __init__(self, limits: dict):
        self.limits = limits
        self.job_dir = tempfile.mkdtemp(dir=JOBS_DIR)
        job_read, self.job_write = os.pipe()
        self.result_read, result_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.job_write)
            os.close(self.result_read)
            child(limits, self.job_dir, job_read, result_write)  # never returns
        os.close(job_read)
        os.close(result_write)

    def run(self, request: dict, code: bytes):
        started = time.monotonic()
        try:
            send(self.job_write, request, code)
        except OSError:
            pass  # the child died while waiting; collect() sees EOF and the status says why
        os.close(self.job_write)
        output, timed_out = collect(self.result_read, started + request["timeout"])
        if timed_out:
            os.kill(self.pid, signal.SIGKILL)
        status = None
        if timed_out or not complete(output):
            status = os.waitpid(self.pid, 0)[1]  # only a failure needs to know how the child ended
        header, png = interpret(output, status, timed_out, request, self.limits)
        header.update(seconds=time.monotonic() - started, log=read_log(self.job_dir))
        return header, png, lambda: self.clean_up(status is None)

    def clean_up(self, reap: bool) -> None:
        if reap:
            os.waitpid(self.pid, 0)
        os.close(self.result_read)
        shutil.rmtree(self.job_dir, ignore_errors=True)


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
            return b"", True
        chunks.append(chunk)


def complete(output: bytes) -> bool:
    """A whole result: a JSON status line, and a PNG after it if the status says ok."""
    line, newline, png = output.partition(b"\n")
    try:
        header = json.loads(line)
    except ValueError:
        return False
    return bool(newline) and isinstance(header, dict) and (not header.get("ok") or png.startswith(b"\x89PNG"))


def interpret(output: bytes, status: int | None, timed_out: bool, request: dict, limits: dict):
    if timed_out:
        return {"ok": False, "error": f"the drawing code ran longer than {request['timeout']:g} s and was "
                                      "stopped; draw with fewer, simpler operations"}, b""
    if status is not None and os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == signal.SIGXCPU:
            return {"ok": False, "error": f"the drawing code used more than {limits['cpu_seconds']} s of CPU "
                                          "time and was stopped"}, b""
        return {"ok": False, "error": f"the drawing code crashed the Python process "
                                      f"({signal.Signals(number).name}); it may have run out of memory "
                                      f"(limit {limits['memory_mb']} MiB)"}, b""
    if not complete(output):
        return {"ok": False, "error": "the drawing code ended without a valid result (did it exit early, or "
                                      "write to files it did not open?)"}, b""
    line, _, png = output.partition(b"\n")
    header = json.loads(line)
    return {"ok": bool(header["ok"]), "error": header.get("error")}, png if header["ok"] else b""


def read_log(job_dir: str) -> str:
    try:
        with open(os.path.join(job_dir, "output.log"), "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - MAX_LOG_CHARS))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


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
        view = memoryview(json.dumps(header).encode() + b"\n" + png)
        while view:
            view = view[os.write(result_fd, view):]
        os.close(result_fd)  # EOF now: the server replies while this process is still being torn down
    finally:
        os._exit(0)


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
