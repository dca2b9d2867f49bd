# expect: File too large
with open("big.bin", "wb") as handle:
    for _ in range(1000):
        handle.write(b"\0" * 1024 * 1024)
