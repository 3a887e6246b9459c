import http.server
import json
import threading

import pytest

from app_a import create_app
from app_a.auth_client import AuthResult, Outcome
from harness.stack import free_port


class FakeAuth:
    """Stands in for AuthClient in view tests: returns a set result and records calls."""

    def __init__(self):
        self.result = AuthResult(Outcome.OK, username="admin")
        self.calls = []
        self.reached = True

    def reach(self):
        return self.reached

    def check(self, token, request_id):
        self.calls.append((token, request_id))
        return self.result


@pytest.fixture
def fake_auth():
    return FakeAuth()


@pytest.fixture
def app(fake_auth):
    app = create_app({"APP_B_URL": "http://127.0.0.1:9"})
    app.extensions["auth_client"] = fake_auth
    return app


@pytest.fixture
def client(app):
    return app.test_client()


class ScriptedAppB(http.server.BaseHTTPRequestHandler):
    """A stand-in app_b on loopback whose answer each test sets: (status, body), or several in
    `next_answers`, given first, one per request; status None hangs without answering, "hold"
    answers 200 with the body once the server's `held` is set, "raw" sends the body as it is.
    With `hang_up_after_answer` it closes each connection after answering without saying so,
    as a server does with a keep-alive connection it ends while idle."""

    protocol_version = "HTTP/1.1"
    answer = (200, json.dumps({"username": "admin"}).encode())
    seen = []
    client_ports = []
    next_answers = []
    hang_up_after_answer = False

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append((self.headers.get("X-Request-ID"), json.loads(body)))
        type(self).client_ports.append(self.client_address[1])
        queued = type(self).next_answers
        status, payload = queued.pop(0) if queued else type(self).answer
        if status is None:  # hang: never answer, until the server shuts down
            self.server.release.wait(10)
            return
        if status == "hold":
            self.server.held.wait(10)
            status = 200
        if status == "raw":  # not HTTP at all
            self.wfile.write(payload)
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if type(self).hang_up_after_answer:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def app_b_stub():
    handler = type("Handler", (ScriptedAppB,), {"seen": [], "client_ports": [], "next_answers": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.release, server.held = threading.Event(), threading.Event()
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.handler = handler
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.release.set()
    server.held.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port():
    """A loopback port with nothing listening (bound then released)."""
    return free_port()
