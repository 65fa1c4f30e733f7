"""Imports fine the first SEGUE_IMPORTS_ALLOWED times (counted in SEGUE_IMPORT_COUNTER, across
processes), then every import fails: an app that boots but cannot reload.

Each import appends one byte and takes the file's size as its number. A rolled-back reload
kills its other new workers mid-import, and a kill between truncating and rewriting a count
reset it (the next reload then imported fine); an append either happened or did not.
"""

import fcntl
import os

fd = os.open(os.environ["SEGUE_IMPORT_COUNTER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"x")
    number = os.fstat(fd).st_size
finally:
    os.close(fd)

if number > int(os.environ.get("SEGUE_IMPORTS_ALLOWED", "1")):
    raise ImportError("import number %d: this app cannot be reloaded" % number)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
