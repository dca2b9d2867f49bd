# expect: Bad file descriptor
import os
for fd in range(5, 64):
    os.write(fd, b'{"ok": true}')  # the server's request/reply pipes: closed before the job starts
