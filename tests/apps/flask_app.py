"""A small Flask app: JSON, forms, streaming and errors through a real framework."""

import os

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.get("/")
def index():
    return "flask says hi"


@app.get("/json")
def as_json():
    return jsonify(name=request.args.get("name", "world"), method=request.method)


@app.post("/form")
def form():
    return jsonify(fields=dict(request.form), length=request.content_length)


@app.post("/upload")
def upload():
    data = request.get_data()
    return jsonify(size=len(data))


@app.get("/stream")
def stream():
    return Response((f"line {i}\n" for i in range(5)), mimetype="text/plain")


@app.get("/pid")
def pid():
    return str(os.getpid())


@app.get("/fail")
def fail():
    raise KeyError("flask-internal")


application = app
