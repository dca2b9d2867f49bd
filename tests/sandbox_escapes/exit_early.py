# expect: without a result
import os
os._exit(3)
