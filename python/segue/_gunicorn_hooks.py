"""gunicorn's worker-side server hooks from `-c gunicorn.conf.py`, run by segue's workers with
stand-ins for the objects gunicorn passes (docs/python-api.md lists what they carry).

The worker runs the config file again (gunicorn runs it once, in the arbiter, before forking)
and takes the hooks from it: `post_fork` runs at once (before the app import, where gunicorn
runs it), `post_worker_init` after the import, `pre_request`/`post_request` around each
request, `worker_int` at a quick stop (SIGINT, SIGQUIT), `worker_exit` before the worker exits.
"""

import logging
import os
import runpy
import time

import segue
from segue import _hooks

HOOKS = ("post_fork", "post_worker_init", "worker_int", "worker_abort", "pre_request",
         "post_request", "worker_exit")


class Server(object):
    """What a hook gets as `server` (gunicorn's Arbiter): the master's pid."""

    def __init__(self, pid=None):
        self.pid = os.getppid() if pid is None else pid
        self.cfg = None


class Worker(object):
    """What a hook gets as `worker`: pid, ppid, age (segue's worker id: it grows with each new
    worker, as gunicorn's does), alive, log, booted and boot time."""

    def __init__(self):
        self.pid = os.getpid()
        self.ppid = os.getppid()
        self.age = segue.worker_id()
        self.alive = True
        self.booted = False
        self.log = logging.getLogger("segue.worker")
        self.tmp = None
        self.cfg = None
        self.started = time.time()


class Request(object):
    """What `pre_request` and `post_request` get as `req`: method, path, query, uri, version,
    headers (a list of (NAME, value), names upper-case as gunicorn gives them), remote_addr."""

    def __init__(self, environ):
        self.method = environ.get("REQUEST_METHOD", "")
        self.path = environ.get("PATH_INFO", "")
        self.query = environ.get("QUERY_STRING", "")
        self.uri = environ.get("RAW_URI") or (self.path + ("?" + self.query if self.query else ""))
        protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        major, _, minor = protocol.partition("/")[2].partition(".")
        self.version = (int(major or 1), int(minor or 1))
        self.scheme = environ.get("wsgi.url_scheme", "http")
        self.remote_addr = environ.get("REMOTE_ADDR")
        self.headers = [
            (k[5:].replace("_", "-"), v) for k, v in environ.items() if k.startswith("HTTP_")
        ]
        for k in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(k):
                self.headers.append((k.replace("_", "-"), environ[k]))


class Response(object):
    """What `post_request` gets as `resp`: status (the line), status_code, headers."""

    def __init__(self):
        self.status = None
        self.status_code = None
        self.headers = []
        self.sent = 0


class _Body(object):
    """The app's iterable, passed through; `post_request` runs when the server closes it."""

    def __init__(self, inner, done):
        self._inner = inner
        self._done = done

    def __iter__(self):
        return iter(self._inner)

    def close(self):
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


_server = None
_worker = None
_found = {}


def _call(name, *args):
    hook = _found.get(name)
    if hook is not None:
        hook(*args)


def install(path, preloaded=False):
    """Runs the config file and registers its hooks with segue. post_fork runs now, before the
    app import, or (`preloaded`: in a --preload zygote) in each worker after the fork."""
    namespace = runpy.run_path(path)
    _found.update({n: namespace[n] for n in HOOKS if callable(namespace.get(n))})

    def post_fork():
        global _server, _worker
        _server, _worker = Server(_hooks._master_pid()), Worker()
        _call("post_fork", _server, _worker)

    def post_worker_init():
        _worker.booted = True
        _call("post_worker_init", _worker)

    if preloaded:
        segue.postfork(post_fork)
    else:
        post_fork()
    segue.postfork(post_worker_init)
    segue.worker_exit(lambda: _call("worker_exit", _server, _worker))
    _hooks._register("quick", lambda: _call("worker_int", _worker))
    if "pre_request" in _found or "post_request" in _found:
        _hooks._wrappers.append(_wrap)


def _wrap(app):
    pre, post = _found.get("pre_request"), _found.get("post_request")

    def with_request_hooks(environ, start_response):
        req = Request(environ)
        if pre is not None:
            pre(_worker, req)
        if post is None:
            return app(environ, start_response)
        resp = Response()

        def recording_start_response(status, headers, exc_info=None):
            resp.status = status
            resp.status_code = int(status.split(" ", 1)[0])
            resp.headers = list(headers)
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        body = app(environ, recording_start_response)
        return _Body(body, lambda: post(_worker, req, environ, resp))

    return with_request_hooks


class ExitedWorker(Worker):
    """What `child_exit` gets as `worker`: the exited worker's pid and age (its id)."""

    def __init__(self, pid, age):
        Worker.__init__(self)
        self.pid, self.age, self.alive, self.booted = pid, age, False, True


def run_master_hook(path, name, master_pid, worker_pid=None, worker_id=None):
    """In a short-lived process the master starts: runs the config file and its arbiter hook
    `name` (on_starting, when_ready, on_reload, on_exit; child_exit with the exited worker's
    pid and id) with a `server` whose pid is the master's."""
    namespace = runpy.run_path(path)
    hook = namespace.get(name)
    if not callable(hook):
        return
    if name == "child_exit":
        hook(Server(master_pid), ExitedWorker(worker_pid, worker_id))
    else:
        hook(Server(master_pid))
