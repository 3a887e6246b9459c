"""The request plumbing middleware (servicekit/web.py) around apps Flask tests do not reach."""
import logging

import pytest
from werkzeug.test import Client

from servicekit.metrics import Metrics
from servicekit.web import UNMATCHED, RequestPlumbing


@pytest.fixture
def metrics(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)  # samples in-process
    return Metrics()


def sample(metrics, name, **labels):
    return metrics.exposed.get_sample_value(name, labels) or 0


def test_an_app_that_raises_is_counted_and_logged_as_a_500(metrics, caplog):
    def crashing_app(environ, start_response):
        raise RuntimeError("past every handler")
    client = Client(RequestPlumbing(crashing_app, logging.getLogger("svc"), metrics))
    caplog.set_level("INFO", logger="svc")
    with pytest.raises(RuntimeError):  # the server answers 500 and logs the traceback
        client.get("/x", headers={"X-Request-ID": "crash-1"})
    [line] = [r for r in caplog.records if r.getMessage() == "request"]
    assert (line.request_id, line.status, line.path) == ("crash-1", 500, "/x")
    assert sample(metrics, "http_request_duration_seconds_count", route=UNMATCHED, status="500") == 1
    assert sample(metrics, "http_requests_in_flight") == 0


def test_the_logged_path_is_the_decoded_one_and_the_id_is_sent_once(metrics, caplog):
    def app(environ, start_response):
        start_response("404 NOT FOUND", [("Content-Type", "text/plain")])
        return [b"no"]
    client = Client(RequestPlumbing(app, logging.getLogger("svc"), metrics))
    caplog.set_level("INFO", logger="svc")
    response = client.get("/caf%C3%A9")
    assert response.headers.getlist("X-Request-ID") == [caplog.records[-1].request_id]
    assert (caplog.records[-1].path, caplog.records[-1].status) == ("/café", 404)
