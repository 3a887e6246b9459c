"""app_b's own metric, beside the shared HTTP ones (servicekit.metrics): database query latency."""
import functools

from prometheus_client import Histogram

# A token lookup takes tens of microseconds; the default buckets start at 5 ms.
QUERY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)


def query_observer(app):
    """`observe(query, seconds)` for the token store, recording into app_b_db_query_duration_seconds."""
    queries = Histogram("app_b_db_query_duration_seconds", "Time a database query took, by query.",
                        ["query"], buckets=QUERY_BUCKETS, registry=app.extensions["metrics"].registry)
    child = functools.cache(queries.labels)
    return lambda query, seconds: child(query).observe(seconds)
