"""An app whose garbage collections run finalizers that let the GIL go: with a threshold of 1,
nearly every container segue or the app allocates starts a collection, so threads switch in
the middle of segue's own work (building an environ, say) as often as Python allows."""

import gc
import time


class Finalized:
    def __del__(self):
        time.sleep(0)  # releases the GIL


def application(environ, start_response):
    for _ in range(3):
        cycle = Finalized()
        cycle.self = cycle  # freed by the collector, not by reference counting
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


gc.set_threshold(1, 1, 1)
