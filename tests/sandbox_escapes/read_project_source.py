# expect: FileNotFoundError
text = open("@PROJECT@/pyproject.toml").read()
