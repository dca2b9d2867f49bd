# expect: Read-only file system
# /dev is a tmpfs the size of host memory, outside the /tmp cap, and kept for the next job.
block = b"\1" * (1 << 20)
with open("/dev/shm/hoard", "wb") as handle:
    for _ in range(100):
        handle.write(block)
raise SystemError("held 100 MiB in /dev/shm")
