"""30 response headers (wrk sends 30 request headers too): the per-header work of a server, the
app of scripts/bench's `headers` scenario. Run it with
`segue --chdir examples many_headers:application`.
"""

BODY = b"ok\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))] + [
    ("X-Response-Header-%02d" % i, "value-%02d-0123456789abcdef" % i) for i in range(28)
]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
