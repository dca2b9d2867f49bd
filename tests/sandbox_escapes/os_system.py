# expect: os.system failed
import os
status = os.system("cat @CANARY@ > /tmp/stolen")
assert status == 0, f"os.system failed with {status}"
