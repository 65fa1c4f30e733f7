# The app of the seed "uwsgi의 --processes와 --threads 옵션" (shared/seeds/004), verbatim: it
# prints the pid serving each request and sleeps 10 s, to show requests served side by side.
import os
import time
from datetime import datetime

HELLO_WORLD = b"Hello world!\n"


def simple_app(environ, start_response):
    status = '200 OK'
    response_headers = [('Content-type', 'text/plain')]
    print(os.getpid(), os.getppid(), environ['REQUEST_URI'], "called", datetime.now().strftime("%H:%M:%S"))
    time.sleep(10)
    start_response(status, response_headers)
    return [HELLO_WORLD]


application = simple_app
