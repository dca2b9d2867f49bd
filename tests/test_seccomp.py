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


def run_filtered(probes: dict[str, str], setup: str = "") -> dict[str, str]:
    """Each probe's outcome in a child that ran `setup`, then installed the filter."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child installs the filter (irreversibly) and reports each probe's outcome
        os.close(read_end)
        outcome = {}
        try:
            namespace = {"os": os}
            exec(setup, namespace)
            seccomp.install_filter()
            for name, code in probes.items():
                try:
                    exec(code, dict(namespace))
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


# Run after the filter, on a pipe and a socket made before it: the kernel's own signal-delivery paths.
SIGNAL_PATHS = {
    "F_SETOWN": "fcntl.fcntl(pipe, fcntl.F_SETOWN, os.getppid())",
    "F_SETOWN_EX": "fcntl.fcntl(pipe, 15, bytes(8))",
    "F_SETSIG": "fcntl.fcntl(pipe, 10, 9)",
    "F_SETLEASE": "fcntl.fcntl(pipe, 1024, fcntl.F_RDLCK)",
    "F_NOTIFY": "fcntl.fcntl(pipe, 1026, 0)",
    "FIOSETOWN": "fcntl.ioctl(sock, 0x8901, struct.pack('i', os.getppid()))",
    "SIOCSPGRP": "fcntl.ioctl(sock, 0x8902, struct.pack('i', os.getppid()))",
    "memfd_create": "os.memfd_create('hoard')",
    "shmget": "ctypes.CDLL(None, use_errno=True).shmget(0, 1 << 20, 0o1600) >= 0 or oserror()",
    "chmod": "os.chmod('.', 0o755)",
    "F_GETFL": "fcntl.fcntl(pipe, fcntl.F_GETFL)",
    "F_SETFL": "fcntl.fcntl(pipe, fcntl.F_SETFL, os.O_NONBLOCK)",
    "FIONREAD": "fcntl.ioctl(pipe, 0x541B, bytes(4))",
}


def test_signal_delivery_paths_anonymous_memory_and_modes_are_denied():
    setup = ("import ctypes, fcntl, socket, struct\npipe = os.pipe()[0]\npair = socket.socketpair()\n"
             "sock = pair[0].fileno()\n"
             "def oserror():\n    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))\n")
    outcome = run_filtered(SIGNAL_PATHS, setup=setup)
    denied = [name for name in SIGNAL_PATHS if not name.startswith(("F_GETFL", "F_SETFL", "FIONREAD"))]
    assert {name: outcome[name] for name in denied} == dict.fromkeys(denied, "Operation not permitted")
    assert {name: outcome[name] for name in ("F_GETFL", "F_SETFL", "FIONREAD")} == \
        dict.fromkeys(("F_GETFL", "F_SETFL", "FIONREAD"), "allowed")
