"""The public edge: nginx (edge/nginx.conf, as in the app-a pod) in front of app_a's gunicorn,
against slow and hostile clients on loopback. Each probe also runs against gunicorn alone, so
the tests show that the proxy is what makes the difference."""
import os
import signal
import socket
import subprocess
import sys

import pytest
import requests

from harness.hostile import KINDS, Hostile, normal_client, p99
from harness.stack import JOBS_TEXT, REPO, free_port, poll, require_nginx

# client_header_timeout / client_body_timeout in edge/nginx.conf, plus room for a busy machine.
EDGE_TIMEOUT = 5
NORMAL_SECONDS = 4


@pytest.fixture
def app_a(services):
    return services.app_a(services.app_b().url)


@pytest.fixture
def edge(services, app_a):
    return services.edge(app_a.url)


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_sockets_wait_on_nginx_and_are_closed_by_its_timeouts(edge, kind):
    with Hostile(edge.url, kind) as hostile:
        answers = normal_client(edge.url, NORMAL_SECONDS)
        hostile.stop_trickling()
        statuses = {status for status, _ in answers}
        assert statuses == {200}, f"{kind}: normal client got {statuses}"
        assert p99(answers) < 0.1, f"{kind}: p99 {p99(answers) * 1000:.0f} ms over {len(answers)} requests"
        closed = poll(lambda: hostile.closed() == hostile.count, EDGE_TIMEOUT + 5, interval=0.5)
        assert closed, f"{kind}: {hostile.closed()} of {hostile.count} hostile sockets closed"
    after = requests.post(f"{edge.url}/jobs", headers={"Authorization": "mytoken"}, timeout=5)
    assert after.text == JOBS_TEXT


@pytest.mark.parametrize("kind", KINDS)
def test_without_the_proxy_the_same_sockets_starve_gunicorn(app_a, kind):
    """The control: the probe above is hostile enough to hurt gunicorn on its own."""
    with Hostile(app_a.url, kind):
        answers = normal_client(app_a.url, NORMAL_SECONDS)
    starved = [seconds for status, seconds in answers if status != 200 or seconds > 1]
    assert starved, f"{kind}: gunicorn alone answered all {len(answers)} requests within 1 s"


def raw(url, data):
    """Send raw bytes, return the status line and the body of the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.decode().partition("\r\n\r\n")
    return head.splitlines()[0], body


@pytest.mark.parametrize("request_bytes, status, reason", [
    (b"POST /jobs HTTP/1.1\r\nHost: e\r\nConnection: close\r\nContent-Length: 20000\r\n\r\n" + b"x" * 20000,
     413, "Request Entity Too Large"),
    (b"GET /hello HTTP/1.1\r\nHost: e\r\nConnection: close\r\nX-Big: " + b"x" * 9000 + b"\r\n\r\n",
     431, "request headers too large"),
    (b"GET /hello HTTP/1.1\r\nHost: e\r\nConnection: close\r\nAuthorization tok-s3cr3t\r\n\r\n",
     400, "Bad Request"),
], ids=["body over 16 KiB", "header over 8 KiB", "header line without a colon"])
def test_nginx_refusals_are_the_contracts_json(edge, services, request_bytes, status, reason):
    status_line, body = raw(edge.url, request_bytes)
    assert status_line.startswith(f"HTTP/1.1 {status}"), status_line
    assert body == f'{{"error":"{reason}"}}\n'
    assert "s3cr3t" not in services.logs("edge") + services.logs("app_a")


def test_request_id_is_passed_through_or_made(edge, services):
    given = requests.get(f"{edge.url}/hello", headers={"X-Request-ID": "edge-test-1"}, timeout=5)
    made = requests.get(f"{edge.url}/hello", timeout=5)
    assert given.headers["X-Request-ID"] == "edge-test-1"
    assert len(made.headers["X-Request-ID"]) == 32  # nginx's $request_id
    made_id = made.headers["X-Request-ID"]
    assert made_id in services.logs_with("app_a", made_id)  # one id, both sides


def test_over_the_per_client_limits_is_429_with_retry_after(edge):
    # limit_conn: 128 requests in progress per address; these 130 bodies never finish.
    with Hostile(edge.url, "slow-body", count=130, max_seconds=10):
        refused = poll(lambda: requests.post(f"{edge.url}/jobs", headers={"Authorization": "mytoken"},
                                             timeout=5), 5)
    assert refused.status_code == 429, refused.status_code
    assert refused.json() == {"error": "too many requests from this client"}
    assert refused.headers["Retry-After"] == "1"


def test_gunicorn_gone_is_a_json_502(services, app_a, edge):
    app_a.stop()
    response = requests.get(f"{edge.url}/hello", timeout=5)
    assert response.status_code == 502 and response.json() == {"error": "app_a unavailable"}


def start_run_edge(tmp_path, env=None):
    """`make run-edge` (scripts/localstack.py --edge) on free ports, in its own process group."""
    ports = {"--port-a": free_port(), "--port-b": free_port(), "--port-gunicorn": free_port()}
    command = [sys.executable, "scripts/localstack.py", "--edge", "--db", str(tmp_path / "app_b.sqlite3")]
    return subprocess.Popen(command + [str(x) for pair in ports.items() for x in pair], cwd=REPO,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True), ports


def test_run_edge_serves_through_nginx_and_ctrl_c_stops_all(tmp_path):
    require_nginx()
    proc, ports = start_run_edge(tmp_path)
    public = f"http://127.0.0.1:{ports['--port-a']}"
    try:
        printed = read_until(proc.stdout, "make loadtest")
        assert f"edge: {public}" in printed
        assert f"gunicorn http://127.0.0.1:{ports['--port-gunicorn']}" in printed
        hello = get(f"{public}/hello")
        assert hello and hello.headers["Server"] == "nginx" and hello.text == "Hello there\n"
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not [port for port in ports.values() if listening(port)], "something still listens"


def test_run_edge_without_nginx_says_how_to_install_it(tmp_path):
    proc, _ = start_run_edge(tmp_path, {"NGINX": "/nonexistent/nginx"})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and out == ""
    assert err == ("make run-edge: nginx not found: install Debian's nginx-light "
                   "(sudo apt-get install nginx-light)\n")


def read_until(stream, marker):
    """Lines up to the one holding `marker` (the stack prints its banner once everything
    answers), or to EOF if it died first."""
    seen = []
    for line in stream:
        seen.append(line)
        if marker in line:
            break
    return "".join(seen)


def get(url):
    try:
        return requests.get(url, timeout=2)
    except requests.RequestException:
        return None


def listening(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
