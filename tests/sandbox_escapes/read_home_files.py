# expect: FileNotFoundError
import os
for name in ("/root/.bash_history", "/root/.ssh/id_rsa", os.path.expanduser("~/.netrc")):
    open(name).read()
