# expect: Read-only file system
open("/usr/lib/evil.so", "w").write("x")
