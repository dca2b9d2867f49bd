# expect: produced no
import os
os.write(3, b'{"ok": true}\nnot a png at all')
os._exit(0)
