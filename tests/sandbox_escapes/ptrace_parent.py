# expect: ptrace failed
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(16, os.getppid(), 0, 0) != 0:  # PTRACE_ATTACH
    raise OSError(ctypes.get_errno(), "ptrace failed")
