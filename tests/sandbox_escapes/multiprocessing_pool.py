# expect: Error
import multiprocessing
with multiprocessing.Pool(4) as pool:
    pool.map(abs, range(10))
