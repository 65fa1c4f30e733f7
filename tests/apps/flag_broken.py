"""Fails to import while the file named by SEGUE_BROKEN_FLAG exists: an app whose workers
crash-loop until the operator fixes it (removes the flag)."""

import os

if os.path.exists(os.environ["SEGUE_BROKEN_FLAG"]):
    raise RuntimeError("broken on purpose: %s exists" % os.environ["SEGUE_BROKEN_FLAG"])


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
