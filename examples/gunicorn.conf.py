# A gunicorn configuration file; segue reads it unchanged (in the app's Python, in a
# subprocess):  segue -c examples/gunicorn.conf.py   then curl http://127.0.0.1:8000/
# `segue -c examples/gunicorn.conf.py --print-config` shows what each setting became
# (docs/migrating-from-gunicorn.md).
import os

bind = "127.0.0.1:8000"
chdir = os.path.dirname(os.path.abspath(__file__))
wsgi_app = "hello:application"
workers = 2
threads = 4
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
accesslog = "-"
