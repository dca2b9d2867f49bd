# expect: Invalid argument
import os
os.setuid(0)
