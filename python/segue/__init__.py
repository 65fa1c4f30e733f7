"""segue: a WSGI application server whose reloads never drop a request.

The `segue` command is the master (a Rust executable); it runs each worker with this
environment's Python, which imports `segue._worker`, the worker half built as an extension
module. Run `segue --help` for the options.
"""

__version__ = "0.1.0"
