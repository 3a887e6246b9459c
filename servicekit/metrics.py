"""Prometheus metrics every service has: requests by route template and status, and requests in
flight; a service adds its own to `Metrics.registry`.

Under gunicorn every worker writes its samples to files of its own in PROMETHEUS_MULTIPROC_DIR
(servicekit.gunicorn sets that before prometheus_client is first imported), and a scrape answered
by any worker sums the files of all of them. Without the variable (unit tests) samples stay
in-process.
"""
import functools
import os
import time

from flask import Blueprint, Response, abort, current_app, g, request
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE
from prometheus_client.multiprocess import MultiProcessCollector

# Requests that matched no route (404, 405) share one label: raw paths would be unbounded.
UNMATCHED = "unmatched"

bp = Blueprint("metrics", __name__)


class Metrics:
    def __init__(self):
        # A registry per app, not the global one, so each test's app counts from zero.
        self.registry = CollectorRegistry()
        # The histogram's _count is the request counter: a separate one would cost a write more.
        self.duration = Histogram("http_request_duration_seconds",
                                  "Time to answer an HTTP request, by route template and status.",
                                  ["route", "status"], registry=self.registry)
        self.in_flight = Gauge("http_requests_in_flight", "HTTP requests being answered.",
                               multiprocess_mode="livesum", registry=self.registry)
        # labels() takes a lock and builds a key on each call; a request needs each child once.
        self._duration = functools.cache(lambda route, status: self.duration.labels(route, str(status)))
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self.exposed = CollectorRegistry()
            MultiProcessCollector(self.exposed)
        else:
            self.exposed = self.registry

    def render(self):
        return generate_latest(self.exposed)

    def _started(self):
        g.metrics_started = time.perf_counter()
        self.in_flight.inc()

    def _finished(self, response):
        route = request.url_rule.rule if request.url_rule else UNMATCHED
        self._duration(route, response.status_code).observe(time.perf_counter() - g.metrics_started)
        return response

    def _torn_down(self, exc):
        self.in_flight.dec()


@bp.get("/metrics")
def scrape():
    port = current_app.config["SETTINGS"].metrics_port
    # With METRICS_PORT set only requests that came in on it are answered: the service port
    # (app_a's NodePort) never shows metrics.
    if port and request.environ.get("SERVER_PORT") != str(port):
        abort(404)
    return Response(current_app.extensions["metrics"].render(), content_type=CONTENT_TYPE)


def install(app):
    """Measure every request `app` answers; return the Metrics (also app.extensions["metrics"]).
    Install it before any other before_request hook: hooks run in the order they were added, so
    a request that a later one aborts (the 413 check) is still timed and counted in flight;
    after_request and teardown hooks always run. (Not Flask's request_started signal: a signal
    with a receiver costs blinker's dispatch on every request.)"""
    metrics = app.extensions["metrics"] = Metrics()
    app.before_request(metrics._started)
    app.after_request(metrics._finished)
    app.teardown_request(metrics._torn_down)
    app.register_blueprint(bp)
    return metrics
