# expect: was stopped
import time
time.sleep(3600)
