# expect: FileNotFoundError
import numpy as np
rows = np.loadtxt("@CANARY@", dtype=str)
