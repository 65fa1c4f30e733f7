"""The first import (counted in SEGUE_IMPORT_COUNTER under a file lock, across processes) raises;
every later one hangs for a minute: with several workers, the first boot failure must end the
master without waiting for the others, and take them down with it."""

import time

from import_counter import next_import

number = next_import()

if number == 1:
    raise RuntimeError("import number 1 fails on purpose")
time.sleep(60)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
