# expect: log swapped for a FIFO
# Opening a FIFO for reading blocks until a writer comes: the server must not wait for one.
import os
os.unlink("output.log")
os.mkfifo("output.log")
raise SystemError("log swapped for a FIFO")
