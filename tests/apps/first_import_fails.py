"""The first import (counted in SEGUE_IMPORT_COUNTER under a file lock, across processes) raises;
every later one hangs for a minute: with several workers, the first boot failure must end the
master without waiting for the others, and take them down with it."""

import fcntl
import os
import time

_fd = os.open(os.environ["SEGUE_IMPORT_COUNTER"], os.O_RDWR | os.O_CREAT, 0o644)
try:
    fcntl.flock(_fd, fcntl.LOCK_EX)
    number = int(os.pread(_fd, 32, 0) or b"0") + 1
    os.pwrite(_fd, b"%020d" % number, 0)
finally:
    os.close(_fd)

if number == 1:
    raise RuntimeError("import number 1 fails on purpose")
time.sleep(60)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
