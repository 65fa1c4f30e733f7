"""Apps for tests/app_specs.rs: factories called with literal arguments (gunicorn's
`module:create_app(...)`), a dotted attribute path, factories that fail, and small echo apps
for mounts. Every echo app answers JSON with its tag, SCRIPT_NAME and PATH_INFO."""

import json
import types


def _echo(tag, payload=None):
    def app(environ, start_response):
        body = json.dumps(
            {
                "tag": tag,
                "payload": payload,
                "script_name": environ["SCRIPT_NAME"],
                "path_info": environ["PATH_INFO"],
                "wrapped": environ.get("wrapped.by"),
            },
            sort_keys=True,
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def _typed(value):
    """A value as [type name, repr]: the test checks a bool arrived as a bool."""
    return [type(value).__name__, repr(value)]


def create_app(*args, **kwargs):
    return _echo("create_app", {"args": [_typed(a) for a in args], "kwargs": {k: _typed(v) for k, v in kwargs.items()}})


def raising():
    raise RuntimeError("factory-boom")


def returns_none():
    pass


def returns_number():
    return 42


def strict(name):
    return _echo("strict", name)


ns = types.SimpleNamespace(sub=types.SimpleNamespace(make=lambda: _echo("dotted")))

echo = _echo("echo")
app_a = _echo("a")
app_ab = _echo("a/b")
root = _echo("root")
