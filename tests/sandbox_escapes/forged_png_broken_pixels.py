# expect: no valid PNG
# Every chunk checksum is right but the pixel data is short: only decoding it finds that out.
import os, struct, sys, zlib
def chunk(kind, data):
    return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack("!IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))
sys.path.insert(0, "/opt/drawloop")
try:
    from sandbox_server import write_result
    write_result(4, True, "", png)
except ImportError:  # the older JSON status line
    os.write(4, b'{"ok": true}\n' + png)
os._exit(0)
