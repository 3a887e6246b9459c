"""The original design's app_b, for comparison only: a new SQLite connection per request."""
import os
import sqlite3

from flask import Flask, request

app = Flask(__name__)
DB = os.environ["NAIVE_DB_PATH"]


@app.post("/auth")
def auth():
    conn = sqlite3.connect(DB)  # per request, as the original did
    try:
        row = conn.execute("SELECT username FROM users WHERE token = ?",
                           (request.form.get("token", ""),)).fetchone()
    finally:
        conn.close()
    return (row[0], 200) if row else ("unknown", 401)
