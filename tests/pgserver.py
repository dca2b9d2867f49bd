"""A throwaway PostgreSQL server for the tests and bench/checkpoint.py.

    with TempPostgres() as pg:
        pg.url          # postgresql://drawloop@127.0.0.1:PORT/drawloop, trust auth, loopback only

initdb into a fresh folder under /tmp, pg_ctl start on a free 127.0.0.1 port with the unix socket
in that folder (never /var/run/postgresql), stopped and removed at the end. Postgres refuses to run
as root, so as root both run as the `postgres` user (Debian's package makes it) or else `nobody`,
through runuser, and the folder belongs to that user. The binaries come from $DRAWLOOP_PG_BIN,
`pg_config --bindir`, or the newest /usr/lib/postgresql/*/bin (Debian keeps them off PATH).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bindir() -> Path | None:
    candidates = [os.environ.get("DRAWLOOP_PG_BIN")]
    if shutil.which("pg_config"):
        try:
            candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False,
                                             timeout=10).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).parent))
    for folder in filter(None, candidates):
        if all((Path(folder) / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def _run_as() -> tuple[list[str], str | None]:
    """The command prefix and user that run the server: as root, a user Postgres accepts."""
    if os.geteuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"], user
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists to run Postgres as")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TempPostgres:
    def __init__(self, fsync: bool = False, database: str = "drawloop"):
        self.bindir = find_bindir()
        if self.bindir is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install "
                                    "postgresql (make system does), or set DRAWLOOP_PG_BIN")
        self.fsync, self.database = fsync, database
        self.folder: Path | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql://drawloop@127.0.0.1:{self.port}/{self.database}"

    @property
    def log(self) -> str:
        path = self.folder / "server.log" if self.folder else None
        return path.read_text(errors="replace")[-3000:] if path and path.exists() else ""

    def _tool(self, name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, str(self.bindir / name), *args], capture_output=True, text=True,
                              timeout=timeout, cwd="/", check=False)

    def start(self) -> TempPostgres:
        self.prefix, user = _run_as()
        # /tmp, not pytest's tmp_path: that is private to root, and the server's user must get in.
        self.folder = Path(tempfile.mkdtemp(prefix="drawloop-pg-", dir="/tmp"))
        if user:
            shutil.chown(self.folder, user, user)
        data = self.folder / "data"
        done = self._tool("initdb", "-D", str(data), "-U", "drawloop", "--auth=trust", "-E", "UTF8",
                          "--locale=C.UTF-8", "--no-sync")
        if done.returncode:
            self.stop()
            raise RuntimeError(f"initdb failed: {done.stderr[-2000:]}")
        for _ in range(3):   # the port is free when picked; another process may take it before Postgres does
            self.port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync={'on' if self.fsync else 'off'}"
                       " -c max_connections=200")
            done = self._tool("pg_ctl", "-D", str(data), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                              "-o", options, "start")
            if done.returncode == 0:
                break
        else:
            log = self.log
            self.stop()
            raise RuntimeError(f"pg_ctl start failed: {done.stderr[-1000:]}\n{log}")
        import psycopg

        for attempt in range(50):
            try:
                with psycopg.connect(f"postgresql://drawloop@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{self.database}"')
                break
            except psycopg.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.folder is None:
            return
        if (self.folder / "data" / "postmaster.pid").exists():
            self._tool("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
