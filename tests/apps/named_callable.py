"""A file served with --wsgi-file named_callable.py --callable app (it has no `application`)."""

import json


def app(environ, start_response):
    body = json.dumps({"tag": "named", "script_name": environ["SCRIPT_NAME"], "path_info": environ["PATH_INFO"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def make_app():
    return app
