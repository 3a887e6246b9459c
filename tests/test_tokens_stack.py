"""Token lifecycle and database loss on the real stack: gunicorn app_b (SQLite or a real
PostgreSQL) behind gunicorn app_a, tokens issued and revoked with the `flask` command."""
import os
import subprocess

import pytest
import requests

from app_b.postgres_store import RECONNECT_TIMEOUT_SECONDS
from harness.stack import REPO, poll


def post_jobs(app_a, token):
    return requests.post(f"{app_a.url}/jobs", headers={"Authorization": token}, timeout=10)


def auth(app_b, token="mytoken"):
    return requests.post(f"{app_b.url}/auth", data={"token": token}, timeout=10)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_revoked_token_is_refused_through_app_a_on_the_next_request(services, request, backend):
    url = request.getfixturevalue("postgres").new_database() if backend == "postgresql" else None
    app_b = services.app_b(database_url=url, GUNICORN_WORKERS="2")
    app_a = services.app_a(app_b.url)
    created = services.tokens("create", "alice")
    assert created.returncode == 0, created.stderr
    token = created.stdout.splitlines()[-1]
    # Enough requests that both app_b workers (each with its own connections) answer some.
    assert [post_jobs(app_a, token).status_code for _ in range(20)] == [200] * 20

    revoked = services.tokens("revoke", "alice")
    assert revoked.returncode == 0, revoked.stderr
    assert [post_jobs(app_a, token).status_code for _ in range(20)] == [401] * 20
    assert post_jobs(app_a, "mytoken").status_code == 200


def test_postgresql_lost_is_503_and_back_is_200_without_restarting_app_b(services, own_postgres):
    app_b = services.app_b(database_url=own_postgres.url(), GUNICORN_WORKERS="2")
    # Ready is one worker; one still connecting when the server stops fails its boot and stops
    # gunicorn (seen here, 2 runs in 6): both boot first.
    assert poll(lambda: services.logs("app_b").count("Worker ready") == 2, 20)
    assert [auth(app_b).status_code for _ in range(10)] == [200] * 10  # pools hold connections

    own_postgres.stop()
    # About a second each (the wait for a connection): long enough that the pool's growing pauses
    # between reconnect attempts would outlast the outage, were they not capped.
    down = [auth(app_b) for _ in range(8)]
    assert [(r.status_code, r.json()) for r in down] == [(503, {"error": "database unavailable"})] * 8
    ready = requests.get(f"{app_b.url}/readyz", timeout=10)
    assert (ready.status_code, ready.json()) == (503, {"error": "database unavailable"})

    own_postgres.start()
    # The pools reconnect by themselves, within seconds (RECONNECT_TIMEOUT_SECONDS), not after
    # the next pause of an uncapped back-off (here about 6 s away).
    polled = []

    def answered(n):
        polled.extend(auth(app_b).status_code for _ in range(n))
        return polled[-n:] == [200] * n
    assert poll(lambda: answered(1), 4, interval=0.2), polled
    # That was one worker. Each worker's pool keeps its own back-off clock, so the other may
    # still be in a pause (at most 4 s under the 5 s cap) and answer 503 meanwhile (seen here, 2
    # runs in 10): then every request is answered.
    assert poll(lambda: answered(20), RECONNECT_TIMEOUT_SECONDS + 1, interval=0.2), polled
    assert app_b.proc.poll() is None  # the same gunicorn, never restarted

    logs = services.logs("app_b")
    assert "Traceback" not in logs
    refusals = [line for line in logs.splitlines() if '"message":"database unavailable"' in line]
    # One line per refused request: the 8, /readyz, and any while polling.
    assert len(refusals) == 9 + polled.count(503), logs[-3000:]


def test_a_postgresql_restart_between_requests_costs_no_request(services, own_postgres):
    app_b = services.app_b(database_url=own_postgres.url(), GUNICORN_WORKERS="2")
    # Ready is one worker; the other may still be migrating, and a worker that cannot reach
    # its database at boot stops gunicorn (seen here once): both boot before the restart.
    assert poll(lambda: services.logs("app_b").count("Worker ready") == 2, 20)
    assert [auth(app_b).status_code for _ in range(20)] == [200] * 20  # pools hold connections
    own_postgres.stop()
    own_postgres.start()
    # Every pooled connection is dead now; a lookup that meets one drops them and asks again.
    assert [auth(app_b).status_code for _ in range(20)] == [200] * 20
    assert '"message":"database unavailable"' not in services.logs("app_b")


def make_tokens(environ, args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_B_")}
    return subprocess.run(["make", "--no-print-directory", "tokens", f"ARGS={args}"], cwd=REPO,
                          env={**env, **environ}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_make_tokens_is_the_cli_on_the_chosen_database(services, request, tmp_path, backend):
    """README's runbook: `make tokens ARGS=...` on the database the service uses."""
    if backend == "sqlite":
        environ = {"APP_B_DB_PATH": services.db_path}
        app_b = services.app_b()
    else:
        url = request.getfixturevalue("postgres").new_database()
        environ = {"APP_B_DATABASE_URL": url}
        app_b = services.app_b(database_url=url)
    created = make_tokens(environ, "create alice --expires-in 30d")
    assert created.returncode == 0, created.stderr
    token = created.stdout.splitlines()[-1]
    assert auth(app_b, token).json() == {"username": "alice"}
    listing = make_tokens(environ, "list")
    assert listing.returncode == 0 and "alice" in listing.stdout and token not in listing.stdout
    refused = make_tokens(environ, "revoke nobody")
    assert refused.returncode != 0 and "Error: unknown user 'nobody'" in refused.stderr
    assert make_tokens(environ, "revoke alice").returncode == 0
    assert auth(app_b, token).status_code == 401
