# expect: without a valid result
import os
os._exit(3)
