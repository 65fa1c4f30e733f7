"""An app that starts a thread while it is imported, as some agents and clients do: --preload
refuses to fork from it (naming the thread) unless --preload-allow-threads."""

import threading
import time

threading.Thread(target=time.sleep, args=(3600,), name="metrics-flusher", daemon=True).start()


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"threads: %d" % threading.active_count()]
