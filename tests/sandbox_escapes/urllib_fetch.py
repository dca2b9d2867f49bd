# expect: Operation not permitted
import urllib.request
urllib.request.urlopen("http://127.0.0.1:@PORT@/steal", timeout=2).read()
