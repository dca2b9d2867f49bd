# expect: Operation not permitted
import socket
socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect("/tmp/.X11-unix/X0")
