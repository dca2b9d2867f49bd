# expect: Operation not permitted
import subprocess
subprocess.run(["cat", "@CANARY@"], check=True)
