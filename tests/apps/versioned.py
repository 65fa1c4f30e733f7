"""An app whose behaviour comes from version.txt beside it, read at import: each reload runs
the version that was on disk when its generation started.

version.txt holds "NAME" and optionally ":KIND[:ARG]":
  broken         the import raises
  slow:SECS      the import takes SECS seconds
  unhealthy      /healthz answers 503
"""

import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "version.txt")) as f:
    VERSION = f.read().strip()

kind, _, arg = VERSION.partition(":")
if kind == "broken":
    raise ImportError("this deploy is broken on purpose (version %s)" % VERSION)
if kind == "slow":
    time.sleep(float(arg))


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/healthz":
        status = "503 Service Unavailable" if kind == "unhealthy" else "200 OK"
        start_response(status, [("Content-Type", "text/plain")])
        return [b"health " + VERSION.encode()]
    if path == "/slow":
        # Tests wait for this marker rather than guessing when the request reached the app.
        open(os.path.join(HERE, "slow-started"), "w").close()
        time.sleep(float(environ.get("QUERY_STRING") or "2"))
    body = VERSION.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
