"""The seccomp filter, tested in a forked child of the test process (no bubblewrap needed)."""

from __future__ import annotations

import json
import os
import platform

import pytest

from drawloop.renderers import seccomp

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="the filter supports x86-64 only")

PROBES = {
    "socket": "import socket; socket.socket()",
    "fork": "os.fork()",
    "exec": "os.execv('/bin/true', ['true'])",
    "subprocess": "import subprocess; subprocess.run(['true'])",
    "kill_parent": "os.kill(os.getppid(), 0)",
    "kill_group": "os.kill(0, 0)",
    "kill_self": "os.kill(os.getpid(), 0)",
    "thread": "import threading; t = threading.Thread(target=len, args=('x',)); t.start(); t.join()",
    "numpy": "import numpy; numpy.ones(4).sum()",
    "file_in_tmp": "import tempfile; tempfile.TemporaryFile().write(b'x')",
}


def run_filtered(probes: dict[str, str]) -> dict[str, str]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child installs the filter (irreversibly) and reports each probe's outcome
        os.close(read_end)
        outcome = {}
        try:
            seccomp.install_filter()
            for name, code in probes.items():
                try:
                    exec(code, {"os": os})
                    outcome[name] = "allowed"
                except OSError as exc:
                    outcome[name] = os.strerror(exc.errno) if exc.errno else str(exc)
        except BaseException as exc:  # noqa: BLE001
            outcome["setup"] = repr(exc)
        os.write(write_end, json.dumps(outcome).encode())
        os._exit(0)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    return json.loads(data)


def test_sockets_processes_exec_and_foreign_signals_are_denied_the_rest_works():
    outcome = run_filtered(PROBES)
    denied = "Operation not permitted"
    assert {k: outcome[k] for k in ("socket", "fork", "exec", "subprocess", "kill_parent", "kill_group")} == \
        dict.fromkeys(("socket", "fork", "exec", "subprocess", "kill_parent", "kill_group"), denied)
    assert {k: outcome[k] for k in ("kill_self", "thread", "numpy", "file_in_tmp")} == \
        dict.fromkeys(("kill_self", "thread", "numpy", "file_in_tmp"), "allowed")


def test_the_program_checks_the_architecture_first_and_allows_by_default():
    program = seccomp.build_program(own_pid=1234)
    assert program[0] == (seccomp.LD_ABS, 0, 0, seccomp.ARCH)
    assert program[1][3] == seccomp.AUDIT_ARCH_X86_64 and program[2] == (seccomp.RET, 0, 0, seccomp.KILL_PROCESS)
    assert program[-1] == (seccomp.RET, 0, 0, seccomp.ALLOW)
    assert (seccomp.JEQ, 0, 1, 1234) in program  # kill() only to ourselves
    assert len(program) < 4096
