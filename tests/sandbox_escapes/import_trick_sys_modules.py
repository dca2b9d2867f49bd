# expect: Operation not permitted
import sys
sys.modules["posix"].system("x") == 0 or sys.modules["posix"].execv("/bin/sh", ["sh"])
