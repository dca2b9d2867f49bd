# expect: FileNotFoundError
from matplotlib import cbook
with cbook.open_file_cm("@CANARY@") as handle:
    handle.read()
