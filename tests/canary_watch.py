"""Proof helpers for the hostile-input tests: was a canary file opened? did anyone connect?

    watch = FileWatch([canary_path, its_folder])     # inotify IN_OPEN | IN_ACCESS
    listener = loopback_listener()                   # 127.0.0.1:<free port>
    ... run hostile input ...
    assert watch.events() == b"" and not connected(listener)
"""

from __future__ import annotations

import ctypes
import os
import select
import socket


class FileWatch:
    IN_ACCESS, IN_OPEN = 0x1, 0x20

    def __init__(self, paths):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK)
        assert self.fd >= 0, "inotify is unavailable"
        for path in paths:
            assert self.libc.inotify_add_watch(self.fd, str(path).encode(), self.IN_ACCESS | self.IN_OPEN) >= 0

    def events(self) -> bytes:
        try:
            return os.read(self.fd, 65536)
        except BlockingIOError:
            return b""

    def close(self) -> None:
        os.close(self.fd)


def loopback_listener() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener


def connected(listener: socket.socket, wait: float = 0.2) -> bool:
    return bool(select.select([listener], [], [], wait)[0])
