import pytest
from prometheus_client.parser import text_string_to_metric_families

from app_b import config


def sample(app, name, **labels):
    return app.extensions["metrics"].exposed.get_sample_value(name, labels) or 0


def test_metrics_are_served_in_the_prometheus_text_format(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"http_request_duration_seconds", "http_requests_in_flight",
            "app_b_db_query_duration_seconds"} <= families


def test_requests_are_counted_by_route_template_and_status(app, client):
    client.post("/auth", data={"token": "mytoken"})
    client.post("/auth", data={"token": "wrong"})
    client.post("/auth", data={"token": "wrong"})
    client.get("/nope")
    assert sample(app, "http_request_duration_seconds_count", route="/auth", status="200") == 1
    assert sample(app, "http_request_duration_seconds_count", route="/auth", status="401") == 2
    assert sample(app, "http_request_duration_seconds_count", route="unmatched", status="404") == 1


def test_each_database_query_is_timed_by_name(app, client):
    client.post("/auth", data={"token": "mytoken"})
    client.post("/auth", data={"token": "wrong"})
    client.post("/auth", data={})  # refused before any query
    client.get("/readyz")
    assert sample(app, "app_b_db_query_duration_seconds_count", query="token_lookup") == 2
    assert sample(app, "app_b_db_query_duration_seconds_sum", query="token_lookup") > 0
    assert sample(app, "app_b_db_query_duration_seconds_count", query="ping") == 1


def test_failed_queries_are_timed_too(app, client, break_database):
    break_database()
    assert client.get("/readyz").status_code == 503
    assert sample(app, "app_b_db_query_duration_seconds_count", query="ping") == 1


def test_the_token_store_reports_each_query(store):
    seen = []
    store._observe = lambda query, seconds: seen.append((query, seconds))
    store.username_for("mytoken")
    store.ping()
    assert [query for query, _ in seen] == ["token_lookup", "ping"]
    assert all(seconds > 0 for _, seconds in seen)


def test_metrics_can_be_switched_off(make_app):
    app = make_app(METRICS_ENABLED="false", SEED_USERNAME="", SEED_TOKEN="")
    client = app.test_client()
    assert client.post("/auth", data={"token": "mytoken"}).status_code == 401  # no seed user
    assert client.get("/metrics").status_code == 404
    assert "metrics" not in app.extensions


def test_with_a_metrics_port_only_that_port_answers(make_app):
    app = make_app(METRICS_PORT="9101")
    public = app.test_client().get("/metrics", base_url="http://localhost:5001")
    assert public.status_code == 404 and public.get_json() == {"error": "Not Found"}
    private = app.test_client().get("/metrics", base_url="http://localhost:9101")
    assert private.status_code == 200 and "app_b_db_query_duration_seconds" in private.text


@pytest.mark.parametrize("environ, message", [
    ({"METRICS_ENABLED": "1"}, "METRICS_ENABLED must be true or false"),
    ({"METRICS_PORT": "-1"}, "METRICS_PORT must be a positive int"),
    ({"METRICS_PORT": "65536"}, "METRICS_PORT must be a TCP port"),
])
def test_invalid_metrics_settings_fail_fast(environ, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load(environ)
