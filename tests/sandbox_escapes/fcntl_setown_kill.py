# expect: Operation not permitted
# F_SETOWN + F_SETSIG: the kernel delivers SIGKILL to the fork server when the pipe is readable,
# a signal that seccomp's kill() rule never sees.
import fcntl, os, signal
F_SETSIG = 10
for target in (os.getppid(), 1, 2, 3):
    read_end, write_end = os.pipe()
    fcntl.fcntl(read_end, fcntl.F_SETOWN, target)
    fcntl.fcntl(read_end, F_SETSIG, signal.SIGKILL)
    fcntl.fcntl(read_end, fcntl.F_SETFL, os.O_ASYNC | os.O_NONBLOCK)
    os.write(write_end, b"x")
raise SystemError("signals sent")
