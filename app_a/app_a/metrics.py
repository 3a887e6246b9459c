"""app_a's own metric, beside the shared HTTP ones (servicekit.metrics): calls to app_b by outcome."""
import functools

from prometheus_client import Counter

from .auth_client import Outcome


def auth_call_counter(app):
    """`count(outcome)` for the /jobs view, recording into app_a_auth_calls_total."""
    calls = Counter("app_a_auth_calls_total", "Token checks sent to app_b, by outcome.",
                    ["outcome"], registry=app.extensions["metrics"].registry)
    child = functools.cache(calls.labels)
    for outcome in Outcome:  # exported as 0 from the start, so rate() sees the first failure
        child(outcome.value)
    return lambda outcome: child(outcome.value).inc()


def uncounted(outcome):
    pass
