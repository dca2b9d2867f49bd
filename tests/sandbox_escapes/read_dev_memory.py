# expect: FileNotFoundError
memory = open("/dev/mem", "rb").read(16)
