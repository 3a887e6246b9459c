"""Both services as real gunicorn processes on loopback, talking real HTTP to each other."""
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from harness.stack import DEV_SEED, JOBS_TEXT, REPO, Service, free_port, poll


@pytest.fixture
def stack(services):
    app_b = services.app_b()
    app_a = services.app_a(app_b.url, APP_B_TIMEOUT="0.5")
    return app_a, app_b


def post_jobs(app_a, token="mytoken", **kwargs):
    headers = {"Authorization": token} if token is not None else {}
    headers.update(kwargs.pop("headers", {}))
    return requests.post(f"{app_a.url}/jobs", headers=headers, timeout=10, **kwargs)


def rows(db_path):
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT * FROM users ORDER BY id").fetchall()


def no_crash_logged(services):
    for name in ("app_a", "app_b"):
        logs = services.logs(name)
        assert "Traceback" not in logs and "unhandled error" not in logs, f"{name} logged a crash"


def test_valid_token_end_to_end(stack, services):
    app_a, _ = stack
    response = post_jobs(app_a, headers={"X-Request-ID": "e2e-42"})
    assert response.status_code == 200 and response.text == JOBS_TEXT
    as_json = post_jobs(app_a, token="Bearer mytoken", headers={"Accept": "application/json"})
    assert as_json.json() == {"jobs": [{"title": "Devops", "description": "Awesome"}]}
    assert requests.get(f"{app_a.url}/hello", timeout=5).text == "Hello there\n"
    # The request id crossed the hop: app_b logged the id the caller chose.
    assert '"request_id":"e2e-42"' in services.logs_with("app_b", "e2e-42")
    # One JSON object per line; app_a's request line carries the outcome of the call to app_b.
    lines = [json.loads(line) for line in services.logs_with("app_a", "e2e-42").splitlines()
             if '"e2e-42"' in line]
    assert [(line["message"], line["method"], line["path"], line["status"], line["auth"])
            for line in lines] == [("request", "POST", "/jobs", 200, "ok")]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", lines[0]["time"])


@pytest.mark.parametrize("method, path, headers, body, status, reason", [
    ("POST", "/jobs", {}, None, 401, "missing Authorization header"),
    ("POST", "/jobs", {"Authorization": ""}, None, 401, "missing Authorization header"),
    ("POST", "/jobs", {"Authorization": "wrong"}, None, 401, "unknown token"),
    ("POST", "/jobs", {"Authorization": "Bearer wrong"}, None, 401, "unknown token"),
    ("POST", "/jobs", {"Authorization": "x';DROP--TABLE--users;"}, None, 401, "unknown token"),
    ("POST", "/jobs", {"Authorization": "' OR '1'='1"}, None, 401, "malformed Authorization header"),
    ("POST", "/jobs", {"Authorization": "t\u00f6ken"}, None, 401, "malformed Authorization header"),
    ("POST", "/jobs", {"Authorization": "x" * 300}, None, 431, "Authorization header too large"),
    ("POST", "/jobs", {"Authorization": "mytoken", "Content-Type": "application/json"},
     b"{" * 20000, 413, "Request Entity Too Large"),
    ("GET", "/jobs", {"Authorization": "mytoken"}, None, 405, "Method Not Allowed"),
    ("PUT", "/hello", {}, None, 405, "Method Not Allowed"),
    ("POST", "/nope", {}, None, 404, "Not Found"),
])
def test_error_paths_give_a_clear_4xx_and_change_nothing(
        stack, services, method, path, headers, body, status, reason):
    app_a, _ = stack
    before = rows(services.db_path)
    response = requests.request(method, f"{app_a.url}{path}", headers=headers, data=body, timeout=10)
    assert response.status_code == status
    assert response.json() == {"error": reason}
    assert rows(services.db_path) == before
    no_crash_logged(services)


def test_header_beyond_gunicorns_limit_is_431(stack):
    app_a, _ = stack
    response = post_jobs(app_a, token="x" * 9000)
    assert response.status_code == 431


def test_app_b_killed_gives_503_quickly_and_recovers_after_restart(stack, services):
    app_a, app_b = stack
    assert post_jobs(app_a).status_code == 200  # app_a now holds a pooled connection
    app_b.signal(signal.SIGKILL)
    app_b.proc.wait(10)
    started = time.monotonic()
    response = post_jobs(app_a)
    assert response.status_code == 503 and response.json() == {"error": "auth service unavailable"}
    assert time.monotonic() - started < 1.0
    services.app_b(port=app_b.port)  # same address, new process; app_a is not restarted
    assert [post_jobs(app_a).status_code for _ in range(10)] == [200] * 10


def test_frozen_app_b_gives_504_within_the_timeout(stack):
    app_a, app_b = stack
    app_b.signal(signal.SIGSTOP)
    started = time.monotonic()
    response = post_jobs(app_a)
    elapsed = time.monotonic() - started
    app_b.signal(signal.SIGCONT)
    assert response.status_code == 504 and response.json() == {"error": "auth service timed out"}
    assert 0.5 <= elapsed < 2.0  # APP_B_TIMEOUT is 0.5 s
    assert post_jobs(app_a).status_code == 200


def test_app_b_without_its_database_gives_503_through_app_a(stack, services):
    """app_b answers 503 when its database fails under it; app_a passes that on as 503 (the
    auth service is unavailable), not as a broken answer (502)."""
    app_a, _ = stack
    with sqlite3.connect(services.db_path) as conn:
        conn.execute("ALTER TABLE tokens RENAME TO broken")
    response = post_jobs(app_a)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json() == {"error": "auth service unavailable"}
    assert "Traceback" not in services.logs("app_a") + services.logs("app_b")


def test_app_a_is_ready_once_it_has_reached_app_b_and_stays_ready_without_it(services):
    """A new app_a takes no traffic before its path to app_b is open (in a cluster, network
    policy reaches a new pod seconds after it starts); after that, an app_b outage leaves it in
    its Service, answering 503 itself. One worker: readiness is each worker's."""
    def readyz():
        response = requests.get(f"{app_a.url}/readyz", timeout=5)
        return response.status_code, response.json()
    port_b = free_port()
    app_a = services.app_a(f"http://127.0.0.1:{port_b}", ready_path="/healthz", GUNICORN_WORKERS="1")
    assert readyz() == (503, {"error": "auth service not reached yet"})
    app_b = services.app_b(port=port_b)
    assert readyz() == (200, {"status": "ready"})
    app_b.stop()
    assert readyz() == (200, {"status": "ready"})
    assert post_jobs(app_a).status_code == 503


def test_wrong_app_b_url_gives_502(services):
    app_b = services.app_b()
    app_a = services.app_a(f"{app_b.url}/wrong-prefix")
    assert post_jobs(app_a).status_code == 502


def test_hundreds_of_concurrent_valid_requests_are_served_or_told_when_to_retry(stack):
    """32 clients at once against 2 workers x 6 calls to app_b: what is over the bound is told to
    come back (503, Retry-After), nothing else fails, and a client that does so is served."""
    app_a, _ = stack
    refused = []

    def until_served(_):
        for _ in range(20):
            response = post_jobs(app_a)
            if response.status_code != 503:
                return response
            refused.append((response.json(), response.headers.get("Retry-After")))
            time.sleep(float(response.headers["Retry-After"]) / 10)  # backing off, as told (scaled)
        return response

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(until_served, range(400)))
    assert [r.status_code for r in results] == [200] * 400
    assert {r.text for r in results} == {JOBS_TEXT}
    assert all(reply == ({"error": "too many requests waiting on the auth service"}, "1")
               for reply in refused), refused[:3]


def test_more_kept_connections_than_call_slots_on_one_worker_are_all_served(services):
    """The cluster suite's Locust through nginx: keep-alive connections stay with the worker that
    accepted them, so one worker can have more requests at once (8 here) than calls to app_b
    (6); with app_b answering, the extra ones wait milliseconds for a slot instead of a 503."""
    app_b = services.app_b()
    app_a = services.app_a(app_b.url, GUNICORN_WORKERS="1")

    def client(_):
        with requests.Session() as session:
            return [session.post(f"{app_a.url}/jobs", headers={"Authorization": "mytoken"},
                                 timeout=10).status_code for _ in range(100)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [status for statuses in pool.map(client, range(8)) for status in statuses]
    assert statuses == [200] * 800, {status: statuses.count(status) for status in set(statuses)}


def test_workers_racing_on_a_fresh_database_leave_one_schema(services):
    app_b = services.app_b(GUNICORN_WORKERS="4")
    assert requests.post(f"{app_b.url}/auth", data={"token": "mytoken"}, timeout=5).json() == \
        {"username": "admin"}
    with sqlite3.connect(services.db_path) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        users = conn.execute("SELECT username FROM users").fetchall()
    assert sorted(tables) == [("tokens",), ("users",)] and users == [("admin",)]


def test_invalid_configuration_fails_fast_with_a_clear_message(services):
    with pytest.raises(RuntimeError, match="exited"):
        services.app_a("not-a-url")
    assert "app_a: invalid configuration: APP_B_URL must be an http(s) base URL" in services.logs("app_a")


def test_sigterm_stops_gracefully(services):
    # One worker, so "ready" means every worker has booted: the stop is a running server's.
    app_b = services.app_b(GUNICORN_WORKERS="1")
    started = time.monotonic()
    assert app_b.stop(timeout=8) == 0
    assert time.monotonic() - started < 5


def test_new_request_ids_are_unique_across_workers(services):
    # Ids come from `random`, which every forked worker must reseed: else each worker would
    # hand out the same sequence.
    app_a = services.app_a(services.app_b().url, GUNICORN_WORKERS="4")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post_jobs(app_a), range(200)))
    ids = [answer.headers["X-Request-ID"] for answer in answers]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids), ids[:5]
    assert len(set(ids)) == 200


def test_a_stop_straight_after_requests_leaves_every_request_line_written(stack, services):
    # Workers write request lines in batches; a graceful stop writes the last one out.
    app_a, app_b = stack
    ids = [f"last-{n}" for n in range(40)]
    assert [post_jobs(app_a, headers={"X-Request-ID": rid}).status_code for rid in ids] == [200] * 40
    assert app_a.stop() == 0 and app_b.stop() == 0
    for name in ("app_a", "app_b"):
        logged = re.findall(r'"request_id":"(last-\d+)"', services.logs(name))
        assert sorted(logged) == sorted(ids), name


def test_sigterm_while_a_worker_is_being_forked_still_stops_it(tmp_path):
    """A stop signal that reaches a worker before gunicorn has installed the worker's own
    handlers (just after the fork) used to be lost: the master then waited its graceful timeout
    for a worker that never stopped, and SIGKILLed it. Here a config stalls each new worker
    right after the fork, as a descheduled one would be, and SIGTERM comes meanwhile."""
    (tmp_path / "gunicorn.conf.py").write_text(textwrap.dedent("""
        import time
        from servicekit.gunicorn_settings import settings
        globals().update(settings("app_b", default_port=5001))
        _post_fork = post_fork

        def post_fork(server, worker):
            time.sleep(1)  # the worker, stalled between the fork and its own signal handlers
            _post_fork(server, worker)
    """))
    # The harness's environment for app_b; started here, since it must not wait to be ready.
    app_b = Service("app_b", free_port(), {"APP_B_DB_PATH": str(tmp_path / "auth.sqlite3"), **DEV_SEED,
                                           "GUNICORN_WORKERS": "1", "GUNICORN_GRACEFUL_TIMEOUT": "10"})
    master = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(tmp_path / "gunicorn.conf.py"),
                               "wsgi:app"], cwd=Path(REPO, "app_b"), env=app_b.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        children = Path(f"/proc/{master.pid}/task/{master.pid}/children")
        assert poll(lambda: children.read_text().split(), 20), "no worker forked"
        started = time.monotonic()
        master.send_signal(signal.SIGTERM)
        output, _ = master.communicate(timeout=30)
    finally:
        if master.poll() is None:
            master.kill()
    elapsed = time.monotonic() - started
    # Stopped by its own handler once booted: about the stall and a boot, far from the 10 s.
    assert master.returncode == 0 and elapsed < 6, f"stopped after {elapsed:.1f} s:\n{output}"
    assert "SIGKILL" not in output and "Worker exiting" in output, output


@pytest.mark.parametrize("app, path, old, new", [
    ("app_a", "/hello", '"Hello there', '"Hello, reloaded'),
    ("app_b", "/readyz", 'status="ready"', 'status="reloaded"'),
])
def test_reload_serves_edited_code(tmp_path, app, path, old, new):
    """GUNICORN_RELOAD (the skaffold dev loop): an edited module is what the next request runs."""
    copy = tmp_path / app
    shutil.copytree(Path(REPO, app), copy, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    env = {"GUNICORN_RELOAD": "true", "GUNICORN_WORKERS": "1"}
    if app == "app_a":
        env["APP_B_URL"] = f"http://127.0.0.1:{free_port()}"  # /hello does not call app_b
    else:
        env.update(APP_B_DB_PATH=str(tmp_path / "app_b.sqlite3"), **DEV_SEED)
    # app_a without an app_b is serving, though never ready.
    service = Service(str(copy), free_port(), env, log_path=str(tmp_path / "log"),
                      ready_path="/healthz" if app == "app_a" else "/readyz").start()
    try:
        expected = new.split('"')[1]
        assert expected not in requests.get(service.url + path, timeout=5).text
        views = copy / app / "views.py"
        assert old in views.read_text()
        views.write_text(views.read_text().replace(old, new))
        def served():
            if expected in requests.get(service.url + path, timeout=5).text:
                return True
            # gunicorn's polling reloader takes the first mtime it sees as the baseline, and
            # it may first look at views.py after the edit: save again until it notices.
            os.utime(views)
            return False
        assert poll(served, 30, interval=0.2), (tmp_path / "log").read_text()[-2000:]
    finally:
        service.stop()


def raw_request(url, request_bytes):
    """Send bytes as they are (no client library tidies them up); return the status line."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request_bytes)
        return sock.makefile("rb").readline().decode()


@pytest.mark.parametrize("extra", [
    "".join(f"X-Filler-{i}: {'x' * 16}\r\n" for i in range(40)),  # too many header fields
    f"X-Big: {'x' * 5000}\r\n",  # one field too large
], ids=["40 fields", "a 5000-byte field"])
def test_oversized_headers_are_refused_before_the_app(stack, extra):
    app_a, _ = stack
    status = raw_request(app_a.url, f"POST /jobs HTTP/1.1\r\nHost: a\r\nAuthorization: mytoken\r\n"
                                    f"{extra}Content-Length: 0\r\n\r\n".encode())
    assert status.startswith("HTTP/1.1 431"), status


def test_a_refused_request_never_logs_its_token(stack, services):
    app_a, app_b = stack
    secret = "tok-" + "s3cr3t" * 4
    for service in (app_a, app_b):
        status = raw_request(service.url, f"POST /jobs HTTP/1.1\r\nHost: a\r\nAuthorization {secret}"
                                          f"\r\nContent-Length: 0\r\n\r\n".encode())
        assert status.startswith("HTTP/1.1 400"), status
    for name in ("app_a", "app_b"):
        logs = services.logs(name)
        assert "Invalid request from ip=127.0.0.1" in logs  # the refusal is still logged
        assert "s3cr3t" not in logs


def test_app_b_listens_on_loopback_unless_told_otherwise(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HOST"}
    script = ("import sys; sys.argv = ['gunicorn']; ns = {}; "
              "exec(open('gunicorn.conf.py').read(), ns); print(ns['bind'])")
    binds = {app: subprocess.run([sys.executable, "-c", script], cwd=REPO / app, capture_output=True,
                                 text=True, check=True, timeout=60,
                                 env={**env, "PYTHONPATH": str(REPO),
                                      "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}).stdout.strip()
             for app in ("app_a", "app_b")}
    assert binds == {"app_a": "['0.0.0.0:5000']", "app_b": "['127.0.0.1:5001']"}


def test_the_verify_smoke_check_passes_on_the_stack_and_fails_without_it(stack):
    """overlays/ci/smoke_check.py, the `skaffold verify` Job's check, run here the same way."""
    app_a, _ = stack
    check = [sys.executable, str(REPO / "overlays" / "ci" / "smoke_check.py")]
    passed = subprocess.run([*check, app_a.url], capture_output=True, text=True, timeout=60)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "POST /jobs valid token: 200 (want 200)" in passed.stdout
    failed = subprocess.run([*check, f"http://127.0.0.1:{free_port()}"], capture_output=True,
                            text=True, timeout=60)
    assert failed.returncode == 1 and "GET /hello: unreachable" in failed.stdout, failed.stdout


def test_frozen_app_b_leaves_app_a_a_thread_for_its_probes(services):
    """32 clients keep POST /jobs in flight against a frozen app_b: the calls over app_a's bound
    are refused at once, so /healthz always finds a thread; app_b back, /jobs is 200 again.
    The clients honour Retry-After, as the 503 asks (a client that does not is nginx's to limit)."""
    app_b = services.app_b()
    app_a = services.app_a(app_b.url)  # defaults: 2 workers x 8 threads, 6 calls to app_b each
    app_b.signal(signal.SIGSTOP)
    stop, answers = threading.Event(), []

    def client():
        while not stop.is_set():
            started = time.monotonic()
            response = post_jobs(app_a)
            answers.append((response.status_code, time.monotonic() - started,
                            response.headers.get("Retry-After")))
            stop.wait(float(response.headers.get("Retry-After", 0)))

    probes = []
    with ThreadPoolExecutor(max_workers=32) as pool:
        for _ in range(32):
            pool.submit(client)
        try:
            for _ in range(40):
                started = time.monotonic()
                status = requests.get(f"{app_a.url}/healthz", timeout=5).status_code
                probes.append((status, time.monotonic() - started))
                stop.wait(0.05)  # probe pacing, not a wait for a server
        finally:
            stop.set()
    app_b.signal(signal.SIGCONT)
    # Without a free thread a probe would wait for a frozen call's 2 s timeout; found at once, it
    # takes milliseconds (0.145 s seen once, with this test's 32 client threads and a CI run on 2 cores).
    slowest = max(seconds for _, seconds in probes)
    assert {status for status, _ in probes} == {200} and slowest < 0.5, f"slowest /healthz {slowest:.3f} s"
    assert {status for status, _, _ in answers} <= {503, 504}, answers
    busy = [(seconds, retry) for status, seconds, retry in answers if status == 503]
    assert busy and all(retry == "1" for _, retry in busy)
    assert max(seconds for _, seconds, _ in answers) < 2.5  # APP_B_TIMEOUT 2 s, and no queue
    assert poll(lambda: post_jobs(app_a).status_code == 200, 10)
