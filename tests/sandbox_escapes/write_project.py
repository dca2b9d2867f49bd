# expect: Read-only file system
open("@PROJECT@/pwned", "w").write("x")
