# expect: without a valid result
# Closing the result pipe and living on: the server must not wait for this process to end.
import os, time
os.close(4)
time.sleep(60)
