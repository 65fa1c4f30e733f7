"""A file mounted with --mount /b=mount_b.py: its `application` serves under SCRIPT_NAME /b."""

import json


def application(environ, start_response):
    body = json.dumps({"tag": "b", "script_name": environ["SCRIPT_NAME"], "path_info": environ["PATH_INFO"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
