# expect: Read-only file system | Permission denied
open("@PROJECT@/pwned", "w").write("x")
