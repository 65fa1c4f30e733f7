"""Reads the whole request body from `wsgi.input` and answers its length: the app of
scripts/bench's `post` scenario (wrk POSTs 64 KiB). Run it with
`segue --chdir examples upload:application`; `curl --data-binary @FILE` shows the byte count.
"""


def application(environ, start_response):
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    received = 0
    # read(n) may return less than n on some servers: read until the declared length or EOF.
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        received += len(chunk)
        remaining -= len(chunk)
    body = b"%d\n" % received
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
