"""Imports fine the first SEGUE_IMPORTS_ALLOWED times (counted in SEGUE_IMPORT_COUNTER under a
file lock, across processes), then every import fails: an app that boots but cannot reload.

The count is rewritten with one fixed-width write, so a worker killed mid-import (a rollback
kills the new generation's other workers) leaves the old count or the new one, never an empty
file that would start the count again."""

import fcntl
import os

_fd = os.open(os.environ["SEGUE_IMPORT_COUNTER"], os.O_RDWR | os.O_CREAT, 0o644)
try:
    fcntl.flock(_fd, fcntl.LOCK_EX)
    number = int(os.pread(_fd, 32, 0) or b"0") + 1
    os.pwrite(_fd, b"%020d" % number, 0)
finally:
    os.close(_fd)

if number > int(os.environ.get("SEGUE_IMPORTS_ALLOWED", "1")):
    raise ImportError("import number %d: this app cannot be reloaded" % number)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
