# expect: FileNotFoundError
environment = open("/proc/1/environ", "rb").read()
