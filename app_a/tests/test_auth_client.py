import http.server
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app_a.auth_client import AuthClient, Outcome
from harness.stack import poll


def client_for(url, read_timeout=2.0, slot_wait=0.25):
    return AuthClient(url, connect_timeout=0.5, read_timeout=read_timeout, max_calls=2,
                      slot_wait=slot_wait)


def test_valid_token_returns_the_username_and_sends_the_request_id(app_b_stub):
    result = client_for(app_b_stub.url).check("mytoken", "rid-9")
    assert result.outcome is Outcome.OK and result.username == "admin"
    assert app_b_stub.handler.seen == [("rid-9", {"token": "mytoken"})]


@pytest.mark.parametrize("status, body, outcome", [
    (401, b'{"error": "unknown token"}', Outcome.UNKNOWN_TOKEN),
    (400, b'{"error": "token too long"}', Outcome.UNKNOWN_TOKEN),
    (500, b"boom", Outcome.BAD_GATEWAY),
    (503, b'{"error": "database unavailable"}', Outcome.UNAVAILABLE),
    (200, b"<html>not json</html>", Outcome.BAD_GATEWAY),
    (200, b'{"user": "admin"}', Outcome.BAD_GATEWAY),
    (200, b'{"username": 5}', Outcome.BAD_GATEWAY),
    (200, b'["admin"]', Outcome.BAD_GATEWAY),
    ("raw", b"garbage, not HTTP\r\n\r\n", Outcome.BAD_GATEWAY),
    ("raw", b"", Outcome.UNAVAILABLE),  # hangs up without answering: going away
])
def test_answers_other_than_a_username_are_classified(app_b_stub, status, body, outcome):
    app_b_stub.handler.answer = (status, body)
    assert client_for(app_b_stub.url).check("mytoken", "rid").outcome is outcome


def test_nothing_listening_is_unavailable(closed_port):
    result = client_for(f"http://127.0.0.1:{closed_port}").check("mytoken", "rid")
    assert result.outcome is Outcome.UNAVAILABLE


def test_reach_is_no_until_app_b_answers_and_yes_from_then_on(closed_port):
    """Readiness (views.readyz): any HTTP answer of app_b counts (this server answers GET with
    501); once reached, an app_b that is gone does not undo it."""
    client = client_for(f"http://127.0.0.1:{closed_port}")
    assert client.reach() is False and client.reach() is False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", closed_port), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert client.reach() is True
    finally:
        server.shutdown()
        server.server_close()
    assert client.reach() is True


def test_an_answered_call_counts_as_reached(app_b_stub):
    client = client_for(app_b_stub.url)
    app_b_stub.handler.answer = (401, b'{"error": "unknown token"}')
    client.check("not-a-token", "rid")
    app_b_stub.shutdown()
    assert client.reach() is True


def test_a_slow_app_b_is_a_timeout_within_the_bound(app_b_stub):
    app_b_stub.handler.answer = (None, b"")
    started = time.monotonic()
    result = client_for(app_b_stub.url, read_timeout=0.3).check("mytoken", "rid")
    elapsed = time.monotonic() - started
    assert result.outcome is Outcome.TIMEOUT
    assert len(app_b_stub.handler.seen) == 1  # never retried: that would double the wait
    assert elapsed < 1.5


def test_calls_over_the_bound_are_refused_at_once_and_slots_come_back(app_b_stub):
    healthy = app_b_stub.handler.answer
    client = client_for(app_b_stub.url, read_timeout=1.0, slot_wait=0.2)
    assert client.check("mytoken", "rid").outcome is Outcome.OK  # app_b answered, once
    app_b_stub.handler.answer = (None, b"")  # then hangs: both slots stay taken
    with ThreadPoolExecutor(max_workers=2) as pool:
        hanging = [pool.submit(client.check, "mytoken", "rid") for _ in range(2)]
        assert poll(lambda: len(app_b_stub.handler.seen) == 3, 5)
        # Its last answer older than the wait: app_b is not keeping up, so nothing waits.
        assert poll(lambda: time.monotonic() - client.last_answer > client.slot_wait, 5)
        started = time.monotonic()
        refused = client.check("mytoken", "rid")
        assert refused.outcome is Outcome.BUSY and time.monotonic() - started < 0.1
        assert [call.result().outcome for call in hanging] == [Outcome.TIMEOUT] * 2
    app_b_stub.handler.answer = healthy
    assert client.check("mytoken", "rid").outcome is Outcome.OK  # the slots were released


def test_a_call_over_the_bound_waits_for_a_slot_while_app_b_keeps_answering(app_b_stub):
    """The cluster suite's case: a worker sent more requests at once than it has slots (nginx's
    keep-alive connections stay with one worker) while app_b answers in milliseconds."""
    client = client_for(app_b_stub.url, slot_wait=5)
    assert client.check("mytoken", "rid").outcome is Outcome.OK
    app_b_stub.handler.answer = ("hold", app_b_stub.handler.answer[1])
    with ThreadPoolExecutor(max_workers=2) as pool:
        held = [pool.submit(client.check, "mytoken", "rid") for _ in range(2)]
        assert poll(lambda: len(app_b_stub.handler.seen) == 3, 5)
        threading.Timer(0.3, app_b_stub.held.set).start()  # app_b answers the two while the third waits
        assert client.check("mytoken", "rid").outcome is Outcome.OK
        assert [call.result().outcome for call in held] == [Outcome.OK] * 2


def test_a_new_workers_first_burst_over_the_bound_waits_too(app_b_stub):
    """No call answered yet (a pod just became ready, a burst arrives): the calls over the bound
    wait as they would behind a recent answer, instead of a 503 for a silence never observed."""
    client = client_for(app_b_stub.url, slot_wait=5)
    app_b_stub.handler.answer = ("hold", app_b_stub.handler.answer[1])
    with ThreadPoolExecutor(max_workers=2) as pool:
        held = [pool.submit(client.check, "mytoken", "rid") for _ in range(2)]
        assert poll(lambda: len(app_b_stub.handler.seen) == 2, 5)
        threading.Timer(0.3, app_b_stub.held.set).start()
        assert client.check("mytoken", "rid").outcome is Outcome.OK
        assert [call.result().outcome for call in held] == [Outcome.OK] * 2


def test_an_app_b_silent_from_the_first_call_is_refused_at_once_after_the_wait(app_b_stub):
    client = client_for(app_b_stub.url, read_timeout=1.0, slot_wait=0.2)
    app_b_stub.handler.answer = (None, b"")  # hangs from the start: both slots stay taken
    with ThreadPoolExecutor(max_workers=2) as pool:
        hanging = [pool.submit(client.check, "mytoken", "rid") for _ in range(2)]
        assert poll(lambda: len(app_b_stub.handler.seen) == 2, 5)
        assert poll(lambda: time.monotonic() - client.last_answer > client.slot_wait, 5)
        started = time.monotonic()
        assert client.check("mytoken", "rid").outcome is Outcome.BUSY
        assert time.monotonic() - started < 0.1
        assert [call.result().outcome for call in hanging] == [Outcome.TIMEOUT] * 2


def test_connections_are_reused(app_b_stub):
    client = client_for(app_b_stub.url)
    for _ in range(5):
        assert client.check("mytoken", "rid").outcome is Outcome.OK
    assert len(app_b_stub.handler.client_ports) == 5
    assert len(set(app_b_stub.handler.client_ports)) == 1  # one TCP connection for all five


def test_a_kept_connection_app_b_has_closed_is_replaced_without_an_error(app_b_stub):
    """app_b ends idle keep-alive connections (its keep-alive timeout, a restart): the next call
    on one fails on first use and is made again on a new connection."""
    app_b_stub.handler.hang_up_after_answer = True
    client = client_for(app_b_stub.url)
    assert [client.check("mytoken", "rid").outcome for _ in range(3)] == [Outcome.OK] * 3
    assert len(set(app_b_stub.handler.client_ports)) == 3


def test_a_new_connection_that_fails_is_retried_once(app_b_stub):
    """A new connection may reach a pod that is going away; twice is app_b's answer."""
    app_b_stub.handler.next_answers = [("raw", b"not HTTP\r\n\r\n")]  # once
    assert client_for(app_b_stub.url).check("mytoken", "rid").outcome is Outcome.OK
    app_b_stub.handler.next_answers = [("raw", b"not HTTP\r\n\r\n")] * 2
    assert client_for(app_b_stub.url).check("mytoken", "rid").outcome is Outcome.BAD_GATEWAY
    assert len(app_b_stub.handler.seen) == 4


def test_a_closed_kept_connection_does_not_use_up_the_retry(app_b_stub):
    """app_b restarting: the kept connection is closed, and the first new one may still reach
    the old process as it goes away."""
    app_b_stub.handler.hang_up_after_answer = True
    client = client_for(app_b_stub.url)
    assert client.check("mytoken", "rid").outcome is Outcome.OK
    app_b_stub.handler.next_answers = [("raw", b"")]
    assert client.check("mytoken", "rid").outcome is Outcome.OK
    assert len(app_b_stub.handler.seen) == 3


@pytest.fixture
def tls_app_b(app_b_stub, tmp_path):
    """app_b_stub behind TLS with a new self-signed certificate for 127.0.0.1; returns its
    https URL and the certificate's path."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    app_b_stub.socket = context.wrap_socket(app_b_stub.socket, server_side=True)
    return app_b_stub.url.replace("http:", "https:"), cert


def test_https_app_b_is_called_with_its_certificate_checked(tls_app_b, monkeypatch):
    url, cert = tls_app_b
    assert client_for(url).check("mytoken", "rid").outcome is Outcome.UNAVAILABLE  # not trusted
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read by the default context, made per client
    assert client_for(url).check("mytoken", "rid").outcome is Outcome.OK
