"""app_b with nothing but its job: the token's SHA-256 digest looked up in SQLite through one
connection per thread; no logs, no metrics, no request ids."""
import hashlib
import os
import sqlite3
import threading

from flask import Flask, jsonify, request

app = Flask(__name__)
DB = os.environ["BARE_DB_PATH"]
local = threading.local()


@app.post("/auth")
def auth():
    if not hasattr(local, "conn"):
        local.conn = sqlite3.connect(DB, check_same_thread=False)
    digest = hashlib.sha256(request.get_json()["token"].encode()).digest()
    row = local.conn.execute("SELECT username FROM users WHERE token_sha256 = ?", (digest,)).fetchone()
    return jsonify(username=row[0]) if row else ("unknown", 401)
