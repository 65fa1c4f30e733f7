"""The seed's uWSGI recipe for code that must run in each worker after the fork: with
`uwsgidecorators.postfork` (HOOK_STYLE unset) or by setting `uwsgi.post_fork_hook` itself
(HOOK_STYLE=attribute). Needs --uwsgi-compat under segue; each run leaves a marker file in
$SEGUE_TEST_DIR named by the style, the worker id and the pid.
"""

import json
import os

import uwsgi

MARKS = os.environ.get("SEGUE_TEST_DIR", "/tmp")
STYLE = os.environ.get("HOOK_STYLE", "decorator")


def mark(kind):
    name = "%s-w%s-%d" % (kind, uwsgi.worker_id(), os.getpid())
    with open(os.path.join(MARKS, name), "a") as f:
        f.write("x")


if STYLE == "attribute":

    def started():
        mark("attribute")

    uwsgi.post_fork_hook = started
else:
    from uwsgidecorators import postfork

    @postfork
    def started():
        mark("decorator")

    @postfork(1)
    def only_in_worker_one():
        mark("worker1")


def application(environ, start_response):
    body = json.dumps(
        {
            "worker_id": uwsgi.worker_id(),
            "numproc": uwsgi.numproc,
            "masterpid": uwsgi.masterpid(),
            "pid": os.getpid(),
            "processes": uwsgi.opt.get("processes"),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
