"""`--uwsgi-compat`: importable `uwsgi` and `uwsgidecorators` modules with the part of uWSGI's
Python API that apps call to run code after the fork (the seed's New Relic recipe), so such
apps run under segue unchanged. Off by default: some apps change behaviour when `import uwsgi`
succeeds. See docs/python-api.md for the subset and its differences.
"""

import os
import sys
import types

import segue
from segue import _hooks


def _call_post_fork_hook():
    hook = getattr(sys.modules.get("uwsgi"), "post_fork_hook", None)
    if hook is not None:
        hook()


class _Postfork(object):
    """`@uwsgidecorators.postfork` or `@uwsgidecorators.postfork(N)`: run after the fork, in
    every worker or only in worker N."""

    def __init__(self, f):
        if callable(f):
            self.only, self.f = None, f
        else:
            self.only, self.f = f, None
        _chain.append(self)

    def __call__(self, *args, **kwargs):
        if self.f is None:
            # The decorator's argument was a worker id; this call passes the function.
            self.f = args[0]
            return self
        if self.only is not None and self.only != segue.worker_id():
            return None
        return self.f(*args, **kwargs)


_chain = []


def _run_chain():
    for entry in list(_chain):
        entry()


def install(numproc, threads):
    """Puts `uwsgi` and `uwsgidecorators` into sys.modules (before the app is imported)."""
    uwsgi = types.ModuleType("uwsgi", "segue's stand-in for uWSGI's Python API (--uwsgi-compat)")
    uwsgi.worker_id = lambda: segue.worker_id() or 0
    uwsgi.numproc = numproc
    uwsgi.masterpid = lambda: _hooks._master_pid() or os.getppid()
    uwsgi.opt = {"processes": str(numproc), "threads": str(threads), "master": "true"}
    if not segue.preloaded():
        uwsgi.opt["lazy-apps"] = "true"
    decorators = types.ModuleType("uwsgidecorators", "segue's stand-in for uwsgidecorators (--uwsgi-compat)")
    decorators.postfork = _Postfork
    decorators.postfork_chain = _chain
    decorators.postfork_chain_hook = _run_chain

    # uWSGI's uwsgidecorators makes its chain the hook when imported; here the chain is the
    # hook from the start (empty until decorated), and an app's own `uwsgi.post_fork_hook = f`
    # replaces it, as in uWSGI.
    sys.modules["uwsgi"] = uwsgi
    sys.modules["uwsgidecorators"] = decorators
    uwsgi.post_fork_hook = _run_chain
    segue.postfork(_call_post_fork_hook)
