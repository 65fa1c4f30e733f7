"""The hooks an app registers with `import segue`, and what the worker tells it about itself.

The worker (Rust, `src/worker/hooks.rs`) fills `_info` before it imports the app and calls
`_run` at each point of its life. Outside segue (a test, a shell) nothing is filled in:
`worker_id()` and `generation()` are None, `preloaded()` is False, and hooks never run.
"""

import traceback

# Set by the worker before the app is imported: worker_id, generation, preloaded.
_info = None

_hooks = {"postfork": [], "drain": [], "exit": [], "quick": []}

# Functions that wrap each loaded WSGI callable (gunicorn's pre_request/post_request).
_wrappers = []


def _wrap_app(app):
    """The WSGI callable the worker serves: `app` through every registered wrapper."""
    for wrap in _wrappers:
        app = wrap(app)
    return app


def _register(kind, fn):
    if not callable(fn):
        raise TypeError("segue hooks take a callable, not %r" % (fn,))
    _hooks[kind].append(fn)
    return fn


def postfork(fn):
    """Decorator: run `fn()` in each worker once it exists as its own process, before it
    reports ready: after the fork from the preloading zygote (--preload), or right after the
    app import. Open connections, start threads and seed random generators here, not at
    import. An exception is a boot failure with its traceback."""
    return _register("postfork", fn)


def on_drain(fn):
    """Decorator: run `fn()` when the worker starts draining (a reload, a stop, a recycle),
    while in-flight requests finish: stop background threads, stop taking queue work. It runs
    on a thread of its own; an exception is logged."""
    return _register("drain", fn)


def worker_exit(fn):
    """Decorator: run `fn()` when the worker has drained and is about to exit, before the
    `atexit` handlers. An exception is logged."""
    return _register("exit", fn)


def worker_id():
    """This worker's id (1, 2, ...; unique over the master's life), or None outside segue."""
    return _info["worker_id"] if _info else None


def generation():
    """The generation this worker serves (1 at start, +1 per reload), or None outside segue."""
    return _info["generation"] if _info else None


def _master_pid():
    """The master's pid, as the worker (or zygote) saw it before any fork."""
    return _info.get("master_pid") if _info else None


def preloaded():
    """Whether the app was imported before this process was forked (--preload)."""
    return bool(_info and _info["preloaded"])


def _run(kind, stop_at_error):
    """Runs the hooks of `kind` in order. With `stop_at_error` the first exception propagates
    (a boot failure); otherwise each is formatted and the rest still run. Returns the
    formatted tracebacks."""
    errors = []
    for fn in list(_hooks[kind]):
        try:
            fn()
        except BaseException:
            if stop_at_error:
                raise
            errors.append(traceback.format_exc())
    return errors
