# expect: FileNotFoundError
# A plain read of a host file by absolute path.
secret = open("@CANARY@").read()
