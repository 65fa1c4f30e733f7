"""An app that uses segue's Python hook API (`import segue`): each hook leaves a marker file
in $SEGUE_TEST_DIR named after the hook, the worker id and the process that ran it, so a test
can see which process ran what and how often. HOOK_FAIL=postfork (or a file fail-postfork
in $SEGUE_TEST_DIR, for a reload) makes the postfork hook raise.
"""

import json
import os

import segue

MARKS = os.environ.get("SEGUE_TEST_DIR", "/tmp")
IMPORTED_IN = os.getpid()


def mark(kind):
    name = "%s-w%s-g%s-%d" % (kind, segue.worker_id(), segue.generation(), os.getpid())
    with open(os.path.join(MARKS, name), "a") as f:
        f.write("x")


# One marker per import: under --preload the zygote imports once per generation (its worker id
# is None), without it each worker imports. A file fail-import in $SEGUE_TEST_DIR makes the
# import raise (for a reload), as does HOOK_FAIL=import.
mark("import")
if os.environ.get("HOOK_FAIL") == "import" or os.path.exists(os.path.join(MARKS, "fail-import")):
    raise RuntimeError("the import fails on purpose")


@segue.postfork
def started():
    failing = os.environ.get("HOOK_FAIL") == "postfork"
    if failing or os.path.exists(os.path.join(MARKS, "fail-postfork")):
        raise RuntimeError("the postfork hook fails on purpose")
    mark("postfork")


@segue.on_drain
def draining():
    mark("drain")


@segue.worker_exit
def leaving():
    mark("exit")


def application(environ, start_response):
    body = json.dumps(
        {
            "worker_id": segue.worker_id(),
            "generation": segue.generation(),
            "preloaded": segue.preloaded(),
            "pid": os.getpid(),
            "imported_in": IMPORTED_IN,
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
