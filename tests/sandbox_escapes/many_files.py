# expect: Too many open files
handles = [open(f"f{i}.txt", "w") for i in range(10000)]
