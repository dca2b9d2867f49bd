# expect: Operation not permitted
import importlib
importlib.import_module("socket").socket()
