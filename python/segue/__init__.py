"""segue: a WSGI application server whose reloads never drop a request.

The `segue` command is the master (a Rust executable); it runs each worker with this
environment's Python, which imports `segue._worker`, the worker half built as an extension
module. Run `segue --help` for the options.

Inside an app, `import segue` gives the hook API (docs/python-api.md): `segue.postfork`,
`segue.on_drain`, `segue.worker_exit` (decorators), `segue.worker_id()`,
`segue.generation()` and `segue.preloaded()`.
"""

from segue._hooks import generation, on_drain, postfork, preloaded, worker_exit, worker_id

__version__ = "0.1.0"
__all__ = ["generation", "on_drain", "postfork", "preloaded", "worker_exit", "worker_id"]
