"""One 256 KiB file through `wsgi.file_wrapper`: the app of `BENCH_SCENARIO=file scripts/bench`.

segue sends a wrapped real file with sendfile(2); this app exists to measure that path against
other servers. The file (fixed bytes) is created at import in the temporary directory, so no
binary lives in the repository. Run it with `segue --chdir examples files:application`.
"""

import os
import tempfile

SIZE = 256 * 1024
BLOCK = 64 * 1024
CONTENT = bytes(range(256)) * (SIZE // 256)
PATH = os.path.join(tempfile.gettempdir(), f"segue-bench-{os.getuid()}", "file-256k.bin")


def _create_file():
    """Writes the file unless it already holds the right bytes; workers import this at the same
    time, so each writes a name of its own and renames it into place."""
    try:
        with open(PATH, "rb") as f:
            if f.read() == CONTENT:
                return
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(PATH), exist_ok=True)
    tmp = f"{PATH}.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(CONTENT)
    os.replace(tmp, PATH)


_create_file()


def _blocks(f):
    """The fallback when the server has no `wsgi.file_wrapper`; closes the file when done."""
    with f:
        while block := f.read(BLOCK):
            yield block


def application(environ, start_response):
    if environ["PATH_INFO"] != "/" or environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"not found\n"]
    f = open(PATH, "rb")
    start_response("200 OK", [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(os.fstat(f.fileno()).st_size)),
    ])
    wrapper = environ.get("wsgi.file_wrapper")
    return wrapper(f, BLOCK) if wrapper else _blocks(f)
