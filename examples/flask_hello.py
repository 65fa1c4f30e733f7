"""Hello world in Flask: the app of scripts/bench's `flask` scenario (Flask must be installed;
scripts/bench puts it in target/bench-venv). Run it with
`segue --chdir examples flask_hello:application`.
"""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, World!\n"


# The name uWSGI's --wsgi-file and the other servers' `module:application` look for.
application = app
