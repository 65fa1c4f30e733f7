"""Imports fine the first SEGUE_IMPORTS_ALLOWED times (counted in SEGUE_IMPORT_COUNTER under a
file lock, across processes), then every import fails: an app that boots but cannot reload.
A rollback kills the new generation's other workers mid-import; import_counter keeps the count
whole."""

import os

from import_counter import next_import

number = next_import()

if number > int(os.environ.get("SEGUE_IMPORTS_ALLOWED", "1")):
    raise ImportError("import number %d: this app cannot be reloaded" % number)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
