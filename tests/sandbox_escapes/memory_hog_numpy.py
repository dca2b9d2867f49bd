# expect: MemoryError
import numpy as np
big = np.ones((60000, 60000))
