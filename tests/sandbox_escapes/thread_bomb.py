# expect: thread
import threading, time
threads = []
while True:
    thread = threading.Thread(target=time.sleep, args=(60,))
    thread.start()
    threads.append(thread)
