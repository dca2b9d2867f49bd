# expect: FileNotFoundError
import numpy as np
data = np.fromfile("@CANARY@", dtype=np.uint8)
