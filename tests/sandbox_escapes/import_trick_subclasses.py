# expect: Operation not permitted
# The classic jail break: find subprocess.Popen through object.__subclasses__().
import subprocess  # noqa: F401 - makes sure the class exists
popen = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "Popen"][0]
popen(["cat", "@CANARY@"]).wait()
