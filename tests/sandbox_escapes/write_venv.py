# expect: Read-only file system
import numpy, os
open(os.path.join(os.path.dirname(numpy.__file__), "pwned.py"), "w").write("x")
