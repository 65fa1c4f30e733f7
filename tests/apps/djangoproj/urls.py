from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path


def index(request):
    return HttpResponse("django says hi")


def echo(request):
    return JsonResponse({"method": request.method, "body": request.body.decode(), "path": request.path, "host": request.get_host(), "q": request.GET.get("q")})


def stream(request):
    return StreamingHttpResponse((f"part {i}\n" for i in range(4)), content_type="text/plain")


def fail(request):
    raise RuntimeError("django-internal")


urlpatterns = [
    path("", index),
    path("echo/", echo),
    path("stream/", stream),
    path("fail/", fail),
]
