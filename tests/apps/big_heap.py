"""An app that builds about 150 MB of Python objects at import (a million 100-character
strings), as large apps do with their modules, caches and tables. Requests never touch them,
so under --preload the workers keep sharing the zygote's pages."""

import os

TABLE = ["%0100d" % i for i in range(int(os.environ.get("BIG_HEAP_ITEMS", "1000000")))]


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d items" % len(TABLE)]
