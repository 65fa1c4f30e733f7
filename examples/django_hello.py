"""Hello world in Django, in one file: settings in code, one URL, one view, no database and no
middleware. The app of scripts/bench's `django` scenario (Django must be installed;
scripts/bench puts it in target/bench-venv). Run it with
`segue --chdir examples django_hello:application`.
"""

from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="scripts/bench: not a secret",
        # This module is the URLconf (uWSGI's --wsgi-file imports it under a name of its own).
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
    )

from django.core.wsgi import get_wsgi_application  # noqa: E402 (after settings.configure)
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def hello(request):
    response = HttpResponse(b"Hello, World!\n", content_type="text/plain")
    # What CommonMiddleware (in every `startproject`) would add: without it each server picks its
    # own framing (chunked, or closing the connection), which is not what this app measures.
    response["Content-Length"] = str(len(response.content))
    return response


urlpatterns = [path("", hello)]

application = get_wsgi_application()
