"""/metrics of real gunicorn processes: every worker's samples in every scrape, app_b's failures
as outcomes, a metrics port apart from the public one, and the samples directory's lifecycle."""
import contextlib
import os
import signal
import sqlite3
import tempfile
import threading
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.stack import free_port, poll

OUTCOMES = ("ok", "unknown_token", "timeout", "unavailable", "bad_gateway", "busy")


def scrape(url):
    response = requests.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


def workers(service, count=2):
    """The pids of the service's gunicorn workers, once there are `count` of them."""
    def pids():
        children = psutil.Process(service.proc.pid).children()
        return len(children) == count and [child.pid for child in children]
    found = poll(pids, 15)
    assert found
    return found


def post_auth(service):
    # A fresh connection per request (no Session): any worker not stopped may accept it.
    return requests.post(f"{service.url}/auth", data={"token": "mytoken"}, timeout=5)


def test_every_scrape_sums_the_samples_of_all_workers(services):
    app_b = services.app_b(GUNICORN_WORKERS="2")
    first, second = workers(app_b)
    # Both booted, not just forked: a worker stopped while it sets the database up would hold
    # SQLite's lock, and the other one could not serve.
    assert poll(lambda: all(f"Worker ready (pid: {pid})" in services.logs("app_b")
                           for pid in (first, second)), 15)
    for frozen in (second, first):
        # With one worker stopped, the other accepts every connection: both serve 10 requests.
        os.kill(frozen, signal.SIGSTOP)
        try:
            assert [post_auth(app_b).status_code for _ in range(10)] == [200] * 10
        finally:
            os.kill(frozen, signal.SIGCONT)
    for _ in range(6):  # whichever worker answers the scrape, it reports all 20
        samples = scrape(app_b.url)
        assert value(samples, "http_request_duration_seconds_count", route="/auth", status="200") == 20
        assert value(samples, "app_b_db_query_duration_seconds_count", query="token_lookup") == 20


def test_calls_to_app_b_are_counted_by_outcome_as_it_fails(services):
    app_b = services.app_b()
    app_a = services.app_a(app_b.url, APP_B_TIMEOUT="0.5")

    def post_jobs(token="mytoken"):
        return requests.post(f"{app_a.url}/jobs", headers={"Authorization": token}, timeout=10).status_code

    assert post_jobs() == 200
    assert post_jobs("wrong") == 401
    app_b.signal(signal.SIGSTOP)
    assert post_jobs() == 504
    app_b.signal(signal.SIGCONT)
    with sqlite3.connect(services.db_path) as conn:  # app_b up, its database not: 503 from it
        conn.execute("ALTER TABLE tokens RENAME TO broken")
    assert post_jobs() == 503
    app_b.stop()
    assert post_jobs() == 503
    samples = scrape(app_a.url)
    assert {o: value(samples, "app_a_auth_calls_total", outcome=o) for o in OUTCOMES} == \
        {"ok": 1, "unknown_token": 1, "timeout": 1, "unavailable": 2, "bad_gateway": 0, "busy": 0}
    assert value(samples, "http_request_duration_seconds_count", route="/jobs", status="503") == 2


def test_with_a_metrics_port_the_public_port_has_no_metrics(services):
    metrics_port = free_port()
    app_a = services.app_a(services.app_b().url, METRICS_PORT=str(metrics_port))
    public = requests.get(f"{app_a.url}/metrics", timeout=5)
    assert public.status_code == 404 and public.json() == {"error": "Not Found"}
    # The port is the one the connection came in on; a Host header cannot fake it.
    spoofed = requests.get(f"{app_a.url}/metrics", headers={"Host": f"127.0.0.1:{metrics_port}"},
                           timeout=5)
    assert spoofed.status_code == 404
    assert requests.get(f"{app_a.url}/hello", timeout=5).text == "Hello there\n"
    private = scrape(f"http://127.0.0.1:{metrics_port}")
    assert value(private, "http_request_duration_seconds_count", route="/metrics", status="404") == 2


def test_a_metrics_port_equal_to_the_port_fails_fast(services):
    with pytest.raises(RuntimeError, match="exited"):
        services.app_b(PORT="5999", METRICS_PORT="5999")
    assert "app_b: invalid configuration: METRICS_PORT must differ from PORT (5999)" in services.logs("app_b")


def test_killed_workers_leave_no_request_in_flight(services):
    app_b = services.app_b()
    app_a = services.app_a(app_b.url, APP_B_TIMEOUT="30")
    app_b.signal(signal.SIGSTOP)  # app_a's call hangs until its worker dies

    def hang():
        with contextlib.suppress(requests.ConnectionError):
            requests.post(f"{app_a.url}/jobs", headers={"Authorization": "mytoken"}, timeout=30)

    def in_flight():
        return value(scrape(app_a.url), "http_requests_in_flight")

    caller = threading.Thread(target=hang, daemon=True)
    caller.start()
    assert poll(lambda: in_flight() == 2, 15)  # the hung request and the scrape itself
    for pid in workers(app_a):
        os.kill(pid, signal.SIGKILL)
    caller.join(10)
    # gunicorn's child_exit hook drops the dead workers' share; the new ones count the scrape.
    assert poll(lambda: in_flight() == 1, 15)


def test_the_servers_own_samples_directory_is_removed_on_exit(services):
    app_b = services.app_b(GUNICORN_WORKERS="2")
    # A new directory of its own, for its user alone, not a name another user could guess.
    [directory] = Path(tempfile.gettempdir()).glob(f"app_b-metrics-{app_b.proc.pid}-*")
    assert directory.stat().st_mode & 0o777 == 0o700
    # Each worker writes files named after its pid once its app is loaded: both have booted.
    assert poll(lambda: len({path.stem.rsplit("_", 1)[1] for path in directory.glob("*.db")}) == 2, 15)
    assert app_b.stop() == 0
    assert not directory.exists()


def test_samples_left_in_a_given_directory_are_wiped_at_start(services, tmp_path):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "samples")}
    before = services.app_b(**env)
    assert post_auth(before).status_code == 200
    before.stop()
    after = services.app_b(**env)
    assert value(scrape(after.url), "http_request_duration_seconds_count", route="/auth", status="200") == 0
