"""The limit this design is measured against: app_a with nothing but its job. It posts the token
to app_b over a pooled keep-alive urllib3 connection; no logs, no metrics, no request ids."""
import os

import urllib3
from flask import Flask, request

app = Flask(__name__)
POOL = urllib3.connection_from_url(os.environ["APP_B_URL"], maxsize=4, retries=False, timeout=2.0)


@app.post("/jobs")
def jobs():
    answer = POOL.request("POST", "/auth", json={"token": request.headers.get("Authorization", "")})
    if answer.status != 200:
        return "unauthorized", 401
    return "Jobs:\nTitle: Devops\nDescription: Awesome\n"
