"""Endpoints that read request bodies the ways apps do, for tests/body.rs.

Uploads carry a known pattern (PATTERN repeated; tests/body.rs builds the same bytes), so an
endpoint can say whether every byte arrived in order without keeping the body: it returns the
byte count, the CRC-32 of what it read and the CRC-32 the pattern has for that many bytes.
"""

import json
import os
import tempfile
import zlib
from urllib.parse import parse_qs

MARKS = os.environ.get("SEGUE_TEST_DIR", tempfile.gettempdir())

# 64 lines of 0 to 149,999 letters: lines longer and shorter than a 64 KiB readline().
PATTERN = b"".join(bytes([97 + i % 26]) * ((i * 7919) % 150000) + b"\n" for i in range(64))


def pattern_crc(length):
    crc, left = 0, length
    while left:
        piece = PATTERN[:left]
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    return crc


def pieces(inp, how, n):
    if how == "read":
        while True:
            piece = inp.read(n)
            if not piece:
                return
            yield piece
    elif how == "readline":
        while True:
            piece = inp.readline(n)
            if not piece:
                return
            yield piece
    elif how == "iter":
        yield from inp
    else:
        raise ValueError("how must be read, readline or iter")


def _json(start_response, obj, status="200 OK"):
    body = json.dumps(obj, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ["PATH_INFO"]

    if path == "/":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
        return [b"hello\n"]

    if path == "/digest":
        # Tests wait for this marker to know the request holds a Python thread.
        if "id" in q:
            open(os.path.join(MARKS, "reading-" + q["id"]), "w").close()
        how, n = q.get("how", "read"), int(q.get("n", "65536"))
        total, crc, largest = 0, 0, 0
        try:
            for piece in pieces(environ["wsgi.input"], how, n):
                total += len(piece)
                crc = zlib.crc32(piece, crc)
                largest = max(largest, len(piece))
        except OSError as e:
            # What the app saw, for the test to check; then segue answers for the error.
            with open(os.path.join(MARKS, "body-error-" + q.get("id", "0")), "w") as f:
                f.write("%s: %s" % (type(e).__name__, e))
            raise
        return _json(start_response, {"bytes": total, "crc32": crc, "expected": pattern_crc(total), "largest": largest})

    start_response("404 Not Found", [("Content-Length", "0")])
    return []
