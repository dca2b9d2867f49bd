# expect: SIGSYS
import ctypes
ctypes.CDLL(None).syscall(0x40000000 | 41, 2, 1, 0)  # the x32 ABI number for socket: killed outright
