"""The Python sandbox: the escape corpus in tests/sandbox_escapes/ is contained, each with a clear
error; jobs are isolated from the host and from each other; the server survives its jobs."""

from __future__ import annotations

import pathlib
import shutil
import threading
import time

import pytest

from canary_watch import FileWatch, connected, loopback_listener
from drawloop.renderers.python import render_python
from drawloop.renderers.sandbox import Sandbox, SandboxFailed, bwrap_command

pytestmark = pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed")

ESCAPES = sorted((pathlib.Path(__file__).parent / "sandbox_escapes").glob("*.py"))
PROJECT = pathlib.Path(__file__).resolve().parents[1]
DRAW = "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([0, 1], [0, 1])\n"


def expected_error(path: pathlib.Path) -> list[str]:
    """The error texts a job may end with ("A | B": either, e.g. where the checkout lives decides)."""
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} lacks its '# expect:' line"
    return [part.strip() for part in first.removeprefix("# expect: ").split(" | ")]


@pytest.fixture
def canary(tmp_path):
    path = tmp_path / "canary.txt"
    path.write_text("the host's secret\n")
    watch = FileWatch([path, tmp_path])
    listener = loopback_listener()
    yield {"path": path, "watch": watch, "listener": listener}
    watch.close()
    listener.close()


def test_the_escape_corpus_is_big_and_labelled():
    assert len(ESCAPES) >= 40
    for path in ESCAPES:
        expected_error(path)


def test_escape_corpus_is_contained_with_clear_errors(canary):
    port = str(canary["listener"].getsockname()[1])
    failures = []
    for path in ESCAPES:
        code = path.read_text().replace("@CANARY@", str(canary["path"])).replace("@PORT@", port)
        code = code.replace("@PROJECT@", str(PROJECT))
        result = render_python(code, size=64, timeout=3, lint=False)  # the sandbox alone, no lint
        expected = expected_error(path)
        if result.ok or not any(e in (result.error or "") for e in expected) or "Traceback" in result.error:
            failures.append(f"{path.name}: ok={result.ok} error={result.error!r}")
    assert not failures, "\n".join(failures)
    assert canary["watch"].events() == b"", "a job opened the canary file on the host"
    assert not connected(canary["listener"]), "a job connected to the host's loopback listener"
    assert not (PROJECT / "pwned").exists()
    assert render_python(DRAW, size=64).ok, "the sandbox no longer draws after the corpus"


def test_the_lint_catches_most_escapes_early_and_the_rest_still_fail(canary):
    results = [render_python(path.read_text(), size=64, timeout=3) for path in ESCAPES
               if "hog" not in path.name and "sleep" not in path.name]
    assert not any(result.ok for result in results)
    linted = [r for r in results if "not allowed in drawing code" in r.error]
    assert len(linted) >= len(results) * 0.8


def test_jobs_run_as_nobody_without_the_project_or_home():
    listing = "import os\ndef ls(path):\n    try:\n        return sorted(os.listdir(path))\n    except OSError:\n" \
              "        return 'missing'\n"
    code = listing + (f"raise SystemError(f\"uid={{os.getuid()}} gid={{os.getgid()}} root={{ls('/')}} "
                      f"project={{ls('{PROJECT}')}} home={{ls(os.path.expanduser('~root'))}}\")")
    error = render_python(code, size=64, lint=False).error
    assert "uid=65534 gid=65534" in error, error
    for private in ("pyproject.toml", "drawloop", "tests", ".git", ".bashrc", ".cache", ".ssh", "'proc'", "'home'"):
        assert private not in error, f"{private} is visible in the sandbox: {error}"


def test_job_output_never_reaches_the_result_channel():
    code = ("import sys\nprint('{\"ok\": true}')\nsys.stdout.buffer.write(b'\\x89PNG fake')\n"
            "print('to stderr', file=sys.stderr)\n" + DRAW)
    result = render_python(code, size=64, lint=False)
    assert result.ok and result.png.startswith(b"\x89PNG\r\n")
    assert any("to stderr" in w and '{"ok": true}' in w for w in result.warnings)


def test_each_job_gets_a_fresh_temp_dir_that_is_removed_afterwards():
    write = "import os\nopen('left-behind.txt', 'w').write('x')\nprint(os.getcwd())\n" + DRAW
    first = render_python(write, size=64, lint=False)
    assert first.ok and "/tmp/jobs/" in first.warnings[0]
    look = ("import os\nraise SystemError(f\"jobs={len(os.listdir('/tmp/jobs'))} "
            "cwd={os.listdir('.')}\")")
    error = render_python(look, size=64, lint=False).error
    assert "cwd=['output.log']" in error and "left-behind" not in error  # output.log: this job's print()s
    assert "jobs=1" in error  # only this job's own folder: the previous one was removed


def test_cpu_limit_stops_a_cpu_hog_before_the_wall_timeout():
    sandbox = Sandbox(cpu_seconds=1)
    try:
        header, png = sandbox.run("while True:\n    pass\n", size=64, timeout=30)
        assert not header["ok"] and "more than 1 s of CPU time" in header["error"]
        assert header["seconds"] < 15
        assert sandbox.run(DRAW, size=64, timeout=10)[0]["ok"]
    finally:
        sandbox.stop()


def test_a_dead_sandbox_fails_one_job_and_is_restarted():
    sandbox = Sandbox()
    try:
        assert sandbox.run(DRAW, size=64, timeout=10)[0]["ok"]
        killer = threading.Timer(0.5, lambda: sandbox.process.kill())
        killer.start()
        with pytest.raises(SandboxFailed, match="stopped responding"):
            sandbox.run("import time\ntime.sleep(5)\n", size=64, timeout=10)
        killer.join()
        started = time.monotonic()
        assert sandbox.run(DRAW, size=64, timeout=10)[0]["ok"]
        assert sandbox.starts == 2 and time.monotonic() - started < 60
    finally:
        sandbox.stop()


def test_the_bwrap_command_hides_the_project_and_drops_privileges():
    command = bwrap_command()
    assert command[:8] == [shutil.which("bwrap"), "--unshare-all", "--uid", "65534", "--gid", "65534",
                           "--cap-drop", "ALL"]
    binds = {command[i + 1] for i, arg in enumerate(command) if arg in ("--ro-bind", "--bind")}
    assert str(PROJECT) not in binds and "/" not in binds and "/root" not in binds
    assert "--bind" not in command  # nothing from the host is writable
    assert "--share-net" not in command and "--proc" not in command


def test_an_interpreter_under_tmp_is_visible_inside_the_sandbox(tmp_path):
    """A checkout (and its .venv) under /tmp: the private /tmp must not hide the bound interpreter."""
    import os
    import subprocess
    import sys

    assert str(tmp_path).startswith("/tmp/")
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    python = tmp_path / "venv" / "bin" / "python"
    os.symlink(sys.executable, python)
    command = bwrap_command(str(python))
    assert command[-3:-1] == ["-I", "-B"]
    probe = command[:-3] + ["-I", "-c", "print('inside')"]
    done = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "inside"
    # the folders bwrap made to mount it are not writable by the job either
    write = command[:-3] + ["-I", "-c", f"open({str(tmp_path / 'pwned')!r}, 'w')"]
    denied = subprocess.run(write, capture_output=True, text=True, timeout=60)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr


# --- one job cannot break the next ----------------------------------------------------------------

NEXT_JOB_ATTACKS = {
    "fifo_log": "import os\nos.unlink('output.log')\nos.mkfifo('output.log')\n",
    "dev_zero_log": "import os\nos.unlink('output.log')\nos.symlink('/dev/zero', 'output.log')\n",
    "closed_result_pipe": "import os, time\nos.close(4)\ntime.sleep(60)\n",
    "early_result_then_hang": "import os, time\nos.write(4, b'{\"ok\": false, \"error\": \"x\"}\\n' + bytes(9))\n"
                              "os.close(4)\ntime.sleep(60)\n",
    "nested_json_result": "import os\nos.write(4, b'[' * 200000 + b'\\n')\nos._exit(0)\n",
    "deep_folders": "import os\nfor _ in range(1500):\n    os.mkdir('folder-with-a-longish-name')\n"
                    "    os.chdir('folder-with-a-longish-name')\n",
    "locked_folders": "import os\nos.makedirs('a/b/c')\nopen('a/b/c/f', 'w').close()\nos.umask(0o777)\n"
                      "os.mkdir('a/b/c/d')\nfor path in ('a/b/c', 'a/b', 'a'):\n    try:\n"
                      "        os.chmod(path, 0)\n    except OSError:\n        pass\n",
    "fill_tmp": "import os\nfor name in ('/tmp/junk', '/tmp/.matplotlib/junk', '/tmp/jobs/junk', 'junk'):\n"
                "    for index in range(4):\n        try:\n"
                "            open(f'{name}{index}', 'wb').write(b'x' * (15 << 20))\n"
                "        except OSError:\n            pass\n",
    "dev_shm": "open('/dev/shm/junk', 'wb').write(b'x' * (15 << 20))\n",
}
# The innocent next job: a fresh empty folder, the whole of /tmp's space, nothing left by anyone else.
# A checkout or virtualenv under the host's /tmp is bind-mounted read-only at its own path, so its
# top folder is in the job's /tmp too: expected, not left over from the attack.
VICTIM = ("import os, sys\nassert os.listdir('.') == ['output.log'], os.listdir('.')\n"
          "assert os.listdir('/tmp/jobs') == [os.path.basename(os.getcwd())], os.listdir('/tmp/jobs')\n"
          "mounted = {p.split('/')[2] for p in (sys.prefix, sys.base_prefix, sys.executable) if p.startswith('/tmp/')}\n"
          "foreign = set(os.listdir('/tmp')) - {'jobs', '.matplotlib', '.cache'} - mounted\n"
          "assert not foreign, foreign\n"
          "assert not os.path.exists('/dev/shm/junk')\n"
          "for index in range(3):\n    open(f'space{index}', 'wb').write(b'x' * (14 << 20))\n" + DRAW)


@pytest.mark.parametrize("attack", sorted(NEXT_JOB_ATTACKS))
def test_a_job_cannot_hang_or_break_the_server_for_the_next_job(attack):
    sandbox = Sandbox()
    try:
        started = time.monotonic()
        header, _ = sandbox.run(NEXT_JOB_ATTACKS[attack], size=64, timeout=3)
        assert time.monotonic() - started < 10, "the attack held the server past its own timeout"
        started = time.monotonic()
        header, png = sandbox.run(VICTIM, size=64, timeout=10)
        assert header["ok"], header["error"]
        assert time.monotonic() - started < 10
    finally:
        sandbox.stop()


def test_the_next_job_cannot_read_the_previous_jobs_code_in_memory():
    # the secret is A+B in the first job; the second carries A and B apart and looks for them joined
    part_a, part_b = "c0ffee-secret-first-half-", "second-half-7e1d9"
    first = f"SECRET = {part_a + part_b!r}\n# {'padding ' * 2000}\n" + DRAW
    look = (f"import ctypes, os\nA, B = {part_a.encode()!r}, {part_b.encode()!r}\n"
            "libc = ctypes.CDLL(None)\nlibc.sbrk.restype = ctypes.c_void_p\nlibc.sbrk.argtypes = [ctypes.c_long]\n"
            "libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]\n"
            "page = ctypes.create_string_buffer(1)\ntop = libc.sbrk(0) & ~4095\nbottom = top\n"
            "while libc.mincore(bottom - 4096, 4096, page) == 0:  # ENOMEM where nothing is mapped\n"
            "    bottom -= 4096\n"
            "memory = ctypes.string_at(bottom, top - bottom)\nfound, at = 0, memory.find(A)\n"
            "while at >= 0:\n    found += memory[at + len(A):at + len(A) + len(B)] == B\n"
            "    at = memory.find(A, at + 1)\n"
            "raise SystemError(f'found={found} scanned {(top - bottom) >> 20} MiB')\n")
    sandbox = Sandbox()
    try:
        assert sandbox.run(first, size=64, timeout=10)[0]["ok"]
        error = sandbox.run(look, size=64, timeout=10)[0]["error"]
        assert "found=0 " in error and " 0 MiB" not in error, error
    finally:
        sandbox.stop()


def test_dev_is_read_only_and_minimal():
    code = ("import os\nnames = sorted(os.listdir('/dev'))\ntry:\n    open('/dev/x', 'w')\n    writable = True\n"
            "except OSError:\n    writable = False\nopen('/dev/null', 'w').write('fine')\n"
            "raise SystemError(f'writable={writable} names={names}')\n")
    error = render_python(code, size=64, lint=False).error
    assert "writable=False" in error, error
    assert "'null'" in error and "'mem'" not in error and "'kmsg'" not in error
