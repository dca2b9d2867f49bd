"""A small seccomp-BPF filter, installed with ctypes/prctl: no sockets, no new processes or
programs, no ptrace, no signals to anyone but ourselves (neither sent, nor asked of the kernel via
fcntl/ioctl owners), no memory outside the address space (memfd, SysV and POSIX IPC), no file
modes or owners changed.

    from seccomp import install_filter        # standalone: the Python sandbox imports it by path
    install_filter()                          # this process, forever; children inherit it

Blocked system calls fail with EPERM (clone3 with ENOSYS, so libc falls back to clone, whose flags
we can inspect: threads are allowed, processes are not). Any other architecture than x86-64, or
the x32 ABI, kills the process: the filter fails closed. Stdlib only, so it runs inside bubblewrap
where the drawloop package is not visible.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
CLONE_THREAD = 0x00010000

# x86-64 numbers (arch/x86/entry/syscalls/syscall_64.tbl)
DENIED = {
    # network
    "socket": 41, "connect": 42, "accept": 43, "bind": 49, "listen": 50, "socketpair": 53, "accept4": 288,
    # new processes and programs
    "fork": 57, "vfork": 58, "execve": 59, "execveat": 322,
    # other processes' memory and signals
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "rt_sigqueueinfo": 129,
    "rt_tgsigqueueinfo": 297, "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438,
    "process_madvise": 440, "move_pages": 279, "migrate_pages": 256,
    # namespaces, mounts, kernel interfaces a drawing never needs
    "mount": 165, "umount2": 166, "unshare": 272, "setns": 308, "chroot": 161, "pivot_root": 155,
    "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "keyctl": 250, "add_key": 248,
    "request_key": 249, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "personality": 135, "init_module": 175,
    "finit_module": 313, "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320, "reboot": 169,
    "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179,
    # memory that RLIMIT_AS does not count (anonymous files, SysV/POSIX IPC that outlives the job)
    "memfd_create": 319, "memfd_secret": 447, "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67,
    "semget": 64, "semop": 65, "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70,
    "msgctl": 71, "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243,
    "mq_notify": 244, "mq_getsetattr": 245,
    # modes and owners: the server locks what a job must not write with mode bits (same uid inside)
    "chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "chown": 92, "fchown": 93, "lchown": 94,
    "fchownat": 260,
}
# (system call, its command argument's values to deny): the kernel sends signals to a file's owner
# (F_SETOWN/F_SETSIG, FIOSETOWN, leases, dnotify) without the permission check kill() gets from us.
DENIED_COMMANDS = {
    72: (8, 10, 15, 1024, 1026),  # fcntl: F_SETOWN, F_SETSIG, F_SETOWN_EX, F_SETLEASE, F_NOTIFY
    16: (0x8901, 0x8902),         # ioctl: FIOSETOWN, SIOCSPGRP
}
SIGNAL_SELF_ONLY = {"kill": 62, "tkill": 200, "tgkill": 234}  # first argument must be our own pid
CLONE, CLONE3 = 56, 435

# classic BPF opcodes and seccomp return values
LD_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
ALLOW, KILL_PROCESS, ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
NR, ARCH, ARG0, ARG1 = 0, 4, 16, 24  # offsets in struct seccomp_data (ARGn: low 32 bits, little endian)
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2


class SeccompUnavailable(RuntimeError):
    pass


def build_program(own_pid: int) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions."""
    deny, allow = ERRNO | errno.EPERM, ALLOW
    program = [(LD_ABS, 0, 0, ARCH), (JEQ, 1, 0, AUDIT_ARCH_X86_64), (RET, 0, 0, KILL_PROCESS),
               (LD_ABS, 0, 0, NR), (JGE, 0, 1, X32_SYSCALL_BIT), (RET, 0, 0, KILL_PROCESS)]
    for number in sorted(DENIED.values()):
        program += [(JEQ, 0, 1, number), (RET, 0, 0, deny)]
    for number, commands in DENIED_COMMANDS.items():
        # if nr == number: load arg1 (both take an unsigned int command); deny the listed ones
        block = [(LD_ABS, 0, 0, ARG1)]
        for command in commands:
            block += [(JEQ, 0, 1, command), (RET, 0, 0, deny)]
        program += [(JEQ, 0, len(block) + 1, number)] + block + [(RET, 0, 0, allow)]
    for number in SIGNAL_SELF_ONLY.values():
        # if nr == number: load arg0; return allow if it is our pid, else deny
        program += [(JEQ, 0, 4, number), (LD_ABS, 0, 0, ARG0), (JEQ, 0, 1, own_pid),
                    (RET, 0, 0, allow), (RET, 0, 0, deny)]
    program += [(JEQ, 0, 1, CLONE3), (RET, 0, 0, ERRNO | errno.ENOSYS),
                (JEQ, 0, 4, CLONE), (LD_ABS, 0, 0, ARG0), (JSET, 0, 1, CLONE_THREAD),
                (RET, 0, 0, allow), (RET, 0, 0, deny),
                (RET, 0, 0, allow)]
    return program


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_filter() -> None:
    """Install the filter on this process (irreversible). Raises SeccompUnavailable if it cannot."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise SeccompUnavailable(f"the seccomp filter supports x86-64 only, not {platform.machine()}")
    program = build_program(os.getpid())
    blob = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(blob, len(blob))
    fprog = _SockFprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        raise SeccompUnavailable(f"prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        raise SeccompUnavailable(f"prctl(SECCOMP) failed: {os.strerror(ctypes.get_errno())}")
