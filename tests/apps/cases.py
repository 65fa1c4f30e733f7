"""One WSGI app with a path per behaviour the integration tests pin.

Markers that must survive across worker processes (close() calls) are files in
$SEGUE_TEST_DIR, so a test can check them whichever worker served the request.
"""

import json
import os
import sys
import tempfile
import threading
import time
from urllib.parse import parse_qs

MARKS = os.environ.get("SEGUE_TEST_DIR", tempfile.gettempdir())
_local = threading.local()
_overlap = [0, 0]  # running now, most at once
_overlap_lock = threading.Lock()
_hog = []


def _qs(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _text(start_response, body, status="200 OK", extra=()):
    if isinstance(body, str):
        body = body.encode("utf-8")
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def _json(start_response, obj):
    body = json.dumps(obj, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Tracked:
    """An iterable whose close() leaves a marker file with a call count."""

    def __init__(self, name, chunks, delay=0.0):
        self.path = os.path.join(MARKS, "close-" + name)
        self.chunks = chunks
        self.delay = delay

    def __iter__(self):
        for chunk in self.chunks:
            if self.delay:
                time.sleep(self.delay)
            yield chunk

    def close(self):
        count = 0
        if os.path.exists(self.path):
            with open(self.path) as f:
                count = int(f.read() or 0)
        with open(self.path, "w") as f:
            f.write(str(count + 1))


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = _qs(environ)

    if path == "/":
        return _text(start_response, "hello\n")

    if path.startswith("/path/"):
        return _json(start_response, [ord(c) for c in path[len("/path/"):]])

    if path == "/osenv":
        # The worker process's environment (--env, ini `env =`), not the request's.
        return _json(start_response, {k: os.environ.get(k) for k in q.get("keys", "").split(",") if k})

    if path == "/environ":
        out = {}
        for k, v in environ.items():
            if isinstance(v, (str, bool, int, tuple)):
                out[k] = v if not isinstance(v, tuple) else list(v)
            else:
                out[k] = "<%s>" % type(v).__name__
        out["_types"] = {k: type(v).__name__ for k, v in environ.items()}
        return _json(start_response, out)

    if path == "/echo":
        body = environ["wsgi.input"].read()
        tail = environ["wsgi.input"].read()
        assert tail == b"", tail
        return _text(start_response, body)

    if path == "/echo-sized":
        n = int(q.get("n", "7"))
        parts = []
        while True:
            chunk = environ["wsgi.input"].read(n)
            if not chunk:
                break
            assert len(chunk) <= n
            parts.append(chunk)
        return _text(start_response, b"|".join(parts))

    if path == "/lines":
        inp = environ["wsgi.input"]
        first = inp.readline()
        limited = inp.readline(3)
        rest = inp.readlines()
        return _json(start_response, {"first": first.decode(), "limited": limited.decode(), "rest": [l.decode() for l in rest]})

    if path == "/iterate":
        lines = [l.decode() for l in environ["wsgi.input"]]
        return _json(start_response, lines)

    if path == "/count-body":
        # Reads a big body in pieces without keeping it, to prove streaming.
        inp, total = environ["wsgi.input"], 0
        while True:
            chunk = inp.read(65536)
            if not chunk:
                break
            total += len(chunk)
        return _text(start_response, str(total))

    if path == "/ignore-body":
        return _text(start_response, "ignored\n")

    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written-")
        return [b"returned"]

    if path == "/lazy":
        def gen():
            start_response("201 Created", [("Content-Type", "text/plain")])
            yield b"lazy-"
            yield b""
            yield b"body"
        return gen()

    if path == "/stream":
        n = int(q.get("n", "3"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"chunk%d\n" % i for i in range(n))

    if path == "/str-body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["not bytes"]

    if path == "/str-late":
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"first"
            yield "second"
        return gen()

    if path == "/bad-status":
        start_response(q.get("s", "200"), [])
        return [b"x"]

    if path == "/bad-header":
        kind = q.get("kind")
        value = {
            "crlf": "a\r\nInjected: yes",
            "latin": "caf\u20ac",
            "lf": "x\ny",
            "surrogate": "\ud800",
            "e-acute": "caf\u00e9",
        }.get(kind, "ok")
        name = "X Bad" if kind == "name" else "X-Test"
        start_response("200 OK", [(name, value)])
        return [b"x"]

    if path == "/raise":
        raise RuntimeError("secret-internal-detail")

    if path == "/raise-after-headers":
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"partial"
            raise RuntimeError("boom after headers")
        return gen()

    if path == "/exc-info-before":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("replaced")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replaced"]

    if path == "/exc-info-after":
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"sent"
            try:
                raise ValueError("late")
            except ValueError:
                start_response("500 Oops", [], sys.exc_info())
            yield b"unreachable"
        return gen()

    if path == "/twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"x"]

    if path == "/no-start":
        return [b"x"]

    if path == "/cl-long":
        start_response("200 OK", [("Content-Length", "5")])
        return [b"12345", b"6789"]

    if path == "/cl-short":
        start_response("200 OK", [("Content-Length", "10")])
        return [b"12345"]

    if path == "/status":
        code = q.get("code", "200")
        start_response(code + " Custom Reason", [("Content-Type", "text/plain")])
        return [b"body-that-must-not-be-sent"]

    if path == "/tracked":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked(q["id"], [b"a", b"b", b"c"])

    if path == "/tracked-slow":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked(q["id"], (b"x" * 1024 for _ in range(2000)), delay=0.005)

    if path == "/file":
        fname = os.path.join(MARKS, "file-body")
        with open(fname, "wb") as f:
            f.write(b"0123456789" * int(q.get("tens", "100000")))
        fh = open(fname, "rb")
        if "skip" in q:
            fh.seek(int(q["skip"]))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](fh, 8192)

    if path == "/errors":
        environ["wsgi.errors"].write("marker-from-wsgi-errors\n")
        environ["wsgi.errors"].flush()
        return _text(start_response, "ok")

    if path == "/sleep":
        # Tests wait for this marker instead of guessing when the request reached the app.
        open(os.path.join(MARKS, "sleeping-" + q.get("id", "0")), "w").close()
        time.sleep(float(q.get("s", "1")))
        return _text(start_response, "slept")

    if path == "/grow":
        # Real pages (b"x" * n is written), so resident memory grows.
        _hog.append(b"x" * (int(q.get("mb", "20")) * 1024 * 1024))
        return _text(start_response, "%d MiB held" % (20 * len(_hog)))

    if path == "/gil-hold":
        # libc sleep() called through PyDLL keeps the GIL: the worker is wedged for real.
        import ctypes
        ctypes.PyDLL(None).sleep(int(q.get("s", "60")))
        return _text(start_response, "woke")

    if path == "/gil-wedge":
        # Holds the GIL for s seconds (libc sleep through PyDLL), after leaving this worker's
        # pid in a marker file so that a test knows which worker is wedged, and since when.
        import ctypes
        mark = os.path.join(MARKS, "wedged-" + q.get("id", "0"))
        with open(mark + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(mark + ".tmp", mark)  # a test never reads half the pid
        ctypes.PyDLL(None).sleep(int(q.get("s", "8")))
        return _text(start_response, str(os.getpid()))

    if path == "/pid":
        return _text(start_response, str(os.getpid()))

    if path == "/print":
        # What --capture-output is for: the app's own stdout and stderr.
        print("marker-from-print", flush=True)
        sys.stderr.write("marker-from-stderr\n")
        sys.stderr.flush()
        return _text(start_response, "printed")

    if path == "/crash":
        os._exit(1)

    if path == "/thread-name":
        # The OS thread's name: segue-serve when the app runs inline, segue-python-N on a pool thread.
        with open("/proc/self/task/%d/comm" % threading.get_native_id()) as f:
            return _text(start_response, f.read().strip())

    if path == "/overlap":
        # How many calls of the app ran at once, at most, since the worker started; a generator
        # holds its place until it is closed.
        def gen():
            with _overlap_lock:
                _overlap[0] += 1
                _overlap[1] = max(_overlap[1], _overlap[0])
            try:
                environ["wsgi.input"].read()
                for _ in range(int(q.get("chunks", "1"))):
                    time.sleep(float(q.get("s", "0.01")))
                    yield b"x"
                yield b"%d\n" % _overlap[1]
            finally:
                with _overlap_lock:
                    _overlap[0] -= 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()

    if path == "/gate":
        # Yields a first chunk, then waits (at most 10 s) for the test to create the gate file:
        # a server that held the first chunk back until the next is ready answers "timeout".
        gate = os.path.join(MARKS, "gate-" + q.get("id", "0"))
        def gen():
            yield b"first\n"
            deadline = time.monotonic() + 10
            while not os.path.exists(gate):
                if time.monotonic() > deadline:
                    yield b"timeout\n"
                    return
                time.sleep(0.01)
            yield b"second\n"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()

    if path == "/thread-local":
        _local.count = getattr(_local, "count", 0) + 1
        return _text(start_response, "%s:%d" % (threading.get_ident(), _local.count))

    if path == "/sys":
        return _json(start_response, {"prefix": sys.prefix, "executable": sys.executable, "path": sys.path, "cwd": os.getcwd(), "env": os.environ.get("SEGUE_TEST_FLAG"), "version": sys.version})

    if path == "/connection-close":
        return _text(start_response, "bye", extra=[("Connection", "close")])

    return _text(start_response, "not found\n", status="404 Not Found")
