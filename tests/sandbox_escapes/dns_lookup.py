# expect: Name or service not known
import socket
socket.gethostbyname("example.com")
