# expect: syscall failed
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
if libc.syscall(41, 2, 1, 0) < 0:  # socket(AF_INET, SOCK_STREAM, 0), bypassing Python's socket module
    raise OSError(ctypes.get_errno(), "syscall failed")
