"""Imports fine the first SEGUE_IMPORTS_ALLOWED times (counted in SEGUE_IMPORT_COUNTER under a
file lock, across processes), then every import fails: an app that boots but cannot reload."""

import fcntl
import os

with open(os.environ["SEGUE_IMPORT_COUNTER"], "a+") as counter:
    fcntl.flock(counter, fcntl.LOCK_EX)
    counter.seek(0)
    number = int(counter.read() or 0) + 1
    counter.seek(0)
    counter.truncate()
    counter.write(str(number))

if number > int(os.environ.get("SEGUE_IMPORTS_ALLOWED", "1")):
    raise ImportError("import number %d: this app cannot be reloaded" % number)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
