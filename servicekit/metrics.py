"""Prometheus metrics every service has: requests by route template and status, and requests in
flight; a service adds its own to `Metrics.registry`.

Under gunicorn every worker writes its samples to files of its own in PROMETHEUS_MULTIPROC_DIR
(servicekit.gunicorn sets that before prometheus_client is first imported), and a scrape answered
by any worker sums the files of all of them. Without the variable (unit tests) samples stay
in-process.
"""
import functools
import os

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE
from prometheus_client.multiprocess import MultiProcessCollector

bp = Blueprint("metrics", __name__)


class Metrics:
    """The HTTP metrics; servicekit.web's request plumbing feeds them every request."""

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

    def observe(self, route, status, seconds):
        self._duration(route, status).observe(seconds)


@bp.get("/metrics")
def scrape():
    port = current_app.config["SETTINGS"].metrics_port
    # With METRICS_PORT set only requests that came in on it are answered: the service port
    # (app_a's NodePort) never shows metrics.
    if port and request.environ.get("SERVER_PORT") != str(port):
        abort(404)
    return Response(current_app.extensions["metrics"].render(), content_type=CONTENT_TYPE)


def install(app):
    """The HTTP metrics for `app` and its GET /metrics; returns the Metrics (also
    app.extensions["metrics"]) for servicekit.web to feed."""
    metrics = app.extensions["metrics"] = Metrics()
    app.register_blueprint(bp)
    return metrics
