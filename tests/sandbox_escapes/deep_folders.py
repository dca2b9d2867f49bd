# expect: made 1500 nested folders
# Removing the job's folder afterwards must not hit a recursion or path-length limit.
import os
for _ in range(1500):
    os.mkdir("folder-with-a-longish-name")
    os.chdir("folder-with-a-longish-name")
raise SystemError("made 1500 nested folders")
