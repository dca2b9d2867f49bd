# expect: Operation not permitted
# Memory in anonymous files is not address space: 60 of them hold 900 MiB past RLIMIT_AS (each
# one stays under the 16 MiB file-size limit).
import os
block = b"\1" * (1 << 20)
hoard = []
for _ in range(60):
    hoard.append(os.memfd_create("hoard"))
    for _ in range(15):
        os.write(hoard[-1], block)
raise SystemError("held 900 MiB outside the memory limit")
