# expect: forged early | without a valid result
# A result first, then a process that never ends: the server must not wait for it.
import os, sys, time
sys.path.insert(0, "/opt/drawloop")
try:
    from sandbox_server import write_result
    write_result(4, False, "forged early", b"")
except ImportError:  # the older JSON status line
    os.write(4, b'{"ok": false, "error": "forged early"}\n')
os.close(4)
time.sleep(60)
