"""The fork server that runs INSIDE bubblewrap; one drawing job per forked child.

    python -I -B /opt/drawloop/sandbox_server.py     # started by renderers/sandbox.py, never by hand

Start-up (once): import numpy, matplotlib (Agg) and PIL, draw one throw-away figure so fonts are
cached, mark itself non-dumpable, say "ready". Then for each request on fd 0 (replies on fd 1, never
shared with a job):

  fork -> the child: new session; stdin /dev/null, stdout+stderr to a log in its own temp dir;
          every other fd closed; rlimits (address space, CPU, file size, open files, processes,
          no core); the seccomp filter (seccomp.py); then the drawing code runs and the child
          writes "<json status>\n<png>" to its private result pipe.
  server -> reads that pipe until EOF or the wall deadline (then SIGKILL), reaps the child,
          removes the temp dir, replies with JSON (+ the PNG bytes).

Stdlib + numpy/matplotlib/PIL only: the drawloop package is not visible in the sandbox.
"""

from __future__ import annotations

import ctypes
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

def warm_up() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy  # noqa: F401
    from PIL import Image, ImageColor, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps  # noqa: F401

    figure, axes = plt.subplots(figsize=(1, 1))
    axes.plot([0, 1], [0, 1])
    axes.set_title("warm")
    figure.savefig(io.BytesIO(), format="png")
    plt.close("all")
    ImageFont.load_default()


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
    send(replies, {"ready": True, "pid": os.getpid()})
    while True:
        try:
            request, code = receive(requests)
        except EOFError:
            return  # the host went away: leaving ends the whole sandbox (we are its only process)
        header, png = run_job(code.decode("utf-8", "replace"), request, keep=(requests, replies))
        send(replies, header, png)


def run_job(code: str, request: dict, keep: tuple[int, ...]) -> tuple[dict, bytes]:
    job_dir = tempfile.mkdtemp(dir=JOBS_DIR)
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        child(code, request, job_dir, write_end)  # never returns
    os.close(write_end)
    output, timed_out = collect(read_end, started + request["timeout"])
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(read_end)
    log = read_log(job_dir)
    shutil.rmtree(job_dir, ignore_errors=True)
    header, png = interpret(output, status, timed_out, request)
    header.update(seconds=time.monotonic() - started, log=log)
    return header, png


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


def interpret(output: bytes, status: int, timed_out: bool, request: dict) -> tuple[dict, bytes]:
    if timed_out:
        return {"ok": False, "error": f"the drawing code ran longer than {request['timeout']:g} s and was "
                                      "stopped; draw with fewer, simpler operations"}, b""
    line, _, png = output.partition(b"\n")
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == signal.SIGXCPU:
            return {"ok": False, "error": f"the drawing code used more than {request['cpu_seconds']} s of CPU "
                                          "time and was stopped"}, b""
        return {"ok": False, "error": f"the drawing code crashed the Python process "
                                      f"({signal.Signals(number).name}); it may have run out of memory "
                                      f"(limit {request['memory_mb']} MiB)"}, b""
    if not isinstance(header, dict) or "ok" not in header:
        return {"ok": False, "error": "the drawing code ended without a result (did it exit or close files "
                                      "it did not open?)"}, b""
    if header["ok"] and not png.startswith(b"\x89PNG"):
        return {"ok": False, "error": "the drawing code produced no PNG"}, b""
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

def child(code: str, request: dict, job_dir: str, result_fd: int) -> None:
    png = b""
    try:
        confine(request, job_dir, result_fd)
        result_fd = 3  # confine() moved the result pipe here
    except BaseException as exc:  # noqa: BLE001
        header = {"ok": False, "error": f"the sandbox could not confine the job: {type(exc).__name__}: {exc}"}
    else:
        try:
            header, png = draw(code, request["size"], request["memory_mb"])
        except DrawingError as exc:
            header = {"ok": False, "error": str(exc)}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        view = memoryview(json.dumps(header).encode() + b"\n" + png)
        while view:
            view = view[os.write(result_fd, view):]
    finally:
        os._exit(0)


def confine(request: dict, job_dir: str, result_fd: int) -> None:
    os.setsid()
    os.chdir(job_dir)
    log = os.open("output.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.dup2(result_fd, 3)
    os.closerange(4, 1 << 16)  # the host channel and everything else the server holds
    os.environ.update(HOME=job_dir, TMPDIR=job_dir)
    tempfile.tempdir = job_dir
    memory = request["address_space_bytes"]
    limits = {resource.RLIMIT_AS: memory, resource.RLIMIT_CPU: request["cpu_seconds"],
              resource.RLIMIT_FSIZE: 16 * 1024 * 1024, resource.RLIMIT_NOFILE: 64,
              resource.RLIMIT_NPROC: 64, resource.RLIMIT_CORE: 0}
    for kind, value in limits.items():
        hard = value + 1 if kind == resource.RLIMIT_CPU else value  # SIGXCPU first, SIGKILL a second later
        resource.setrlimit(kind, (value, hard))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from seccomp import install_filter

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
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    serve()
