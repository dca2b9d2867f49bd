# expect: was stopped
while True:
    pass
