# expect: Operation not permitted
import os
os.execv("/bin/sh", ["sh", "-c", "cat @CANARY@"])
