"""File bodies through wsgi.file_wrapper, in every shape tests/file_wrapper.rs needs.

Query parameters of /file:
  records=N   the file holds N 16-byte records "%015d\n" (record i says i), default 1000
  skip=K      seek to byte K before handing the file over
  cl=M        declare Content-Length: M
  write=1     send b"prefix:" through write() first (the head goes out before the file)
  unlink=1    remove the file from disk before returning
  shrink=1    truncate the file to 1 MiB when the server closes the wrapper (the app's
              close() runs as soon as the file is handed over, before it is sent)
/bytesio    a wrapped io.BytesIO (no fd: read in blocks)
/proc       a wrapped /proc file (a regular file that reports size 0)
/hello      a plain body, for mixing on one connection
"""

import io
import os
import tempfile
from urllib.parse import parse_qs

DIR = os.environ.get("SEGUE_TEST_DIR") or tempfile.mkdtemp()


def records(n):
    return b"".join(b"%015d\n" % i for i in range(n))


class ShrinkOnClose:
    """A file-like whose close() cuts the file short, as a log rotation would."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "rb")

    def fileno(self):
        return self.f.fileno()

    def tell(self):
        return self.f.tell()

    def seek(self, pos):
        return self.f.seek(pos)

    def read(self, n=-1):
        return self.f.read(n)

    def close(self):
        self.f.close()
        os.truncate(self.path, 1 << 20)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}

    if path == "/hello":
        body = b"hello"
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    if path == "/bytesio":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(records(100)), 64)

    if path == "/proc":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](open("/proc/self/status", "rb"))

    if path == "/file":
        fname = os.path.join(DIR, "file-%d-%s" % (os.getpid(), environ["QUERY_STRING"]))
        with open(fname, "wb") as f:
            f.write(records(int(q.get("records", "1000"))))
        fh = ShrinkOnClose(fname) if "shrink" in q else open(fname, "rb")
        if "skip" in q:
            fh.seek(int(q["skip"]))
        if "unlink" in q:
            os.unlink(fname)
        headers = [("Content-Type", "application/octet-stream")]
        if "cl" in q:
            headers.append(("Content-Length", q["cl"]))
        write = start_response("200 OK", headers)
        if "write" in q:
            write(b"prefix:")
        return environ["wsgi.file_wrapper"](fh, 8192)

    start_response("404 Not Found", [("Content-Length", "0")])
    return []
