# expect: without a valid result
import os
os.write(4, b'{"ok": true}\nnot a png at all')
os._exit(0)
