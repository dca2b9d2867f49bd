# expect: FileNotFoundError
shadow = open("/etc/shadow").read()
