"""app_a's own metric, beside the shared HTTP ones (servicekit.metrics): calls to app_b by outcome."""
import functools

from flask import g
from prometheus_client import Counter

from .auth_client import Outcome


def install(app):
    calls = Counter("app_a_auth_calls_total", "Token checks sent to app_b, by outcome.",
                    ["outcome"], registry=app.extensions["metrics"].registry)
    child = functools.cache(calls.labels)
    for outcome in Outcome:  # exported as 0 from the start, so rate() sees the first failure
        child(outcome.value)

    @app.after_request
    def count_auth_call(response):
        if "auth_outcome" in g:
            child(g.auth_outcome).inc()
        return response
