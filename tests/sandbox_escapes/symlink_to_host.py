# expect: FileNotFoundError
import os
os.symlink("@CANARY@", "link")
open("link").read()
