"""The original design's app_a, for comparison only: a new HTTP connection to app_b per request."""
import os

import requests
from flask import Flask, request

app = Flask(__name__)
APP_B_URL = os.environ["APP_B_URL"]


@app.get("/hello")
def hello():
    return "Hello there"


@app.post("/jobs")
def jobs():
    answer = requests.post(f"{APP_B_URL}/auth", data={"token": request.headers.get("Authorization", "")},
                           timeout=5)  # no Session: a new TCP connection every time
    if answer.status_code != 200:
        return "unauthorized", 401
    return "Jobs:\nTitle: Devops\nDescription: Awesome\n"
