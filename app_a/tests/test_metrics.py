import pytest
from prometheus_client.parser import text_string_to_metric_families

from app_a import config, create_app
from app_a.auth_client import AuthResult, Outcome


def sample(app, name, **labels):
    return app.extensions["metrics"].exposed.get_sample_value(name, labels) or 0


def test_metrics_are_served_in_the_prometheus_text_format(client):
    client.get("/hello")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"http_request_duration_seconds", "http_requests_in_flight",
            "app_a_auth_calls"} <= families


def test_requests_are_counted_and_timed_by_route_template_and_status(app, client):
    for _ in range(3):
        client.get("/hello")
    client.post("/jobs")
    assert sample(app, "http_request_duration_seconds_count", route="/hello", status="200") == 3
    assert sample(app, "http_request_duration_seconds_count", route="/jobs", status="401") == 1
    assert sample(app, "http_request_duration_seconds_sum", route="/hello", status="200") > 0
    assert sample(app, "http_request_duration_seconds_bucket", route="/hello", status="200", le="+Inf") == 3


def test_unmatched_requests_share_one_label_whatever_the_path(app, client):
    for path in ("/nope", "/a/b/c", "/%00"):
        client.get(path)
    client.get("/jobs")  # a known path with the wrong method matches no route either
    assert sample(app, "http_request_duration_seconds_count", route="unmatched", status="404") == 3
    assert sample(app, "http_request_duration_seconds_count", route="unmatched", status="405") == 1


def test_requests_refused_before_the_view_are_counted(app, client):
    client.post("/jobs", headers={"Authorization": "mytoken"}, data=b"x" * 20000)
    assert sample(app, "http_request_duration_seconds_count", route="/jobs", status="413") == 1
    assert sample(app, "http_requests_in_flight") == 0


def test_in_flight_counts_the_scrape_itself_and_drops_back(app, client):
    scraped = client.get("/metrics").text
    assert "http_requests_in_flight 1.0" in scraped
    assert sample(app, "http_requests_in_flight") == 0


@pytest.mark.parametrize("outcome", list(Outcome))
def test_calls_to_app_b_are_counted_by_outcome(app, client, fake_auth, outcome):
    fake_auth.result = AuthResult(outcome, username="admin")
    client.post("/jobs", headers={"Authorization": "mytoken"})
    counts = {o: sample(app, "app_a_auth_calls_total", outcome=o.value) for o in Outcome}
    assert counts == {o: (1 if o is outcome else 0) for o in Outcome}


def test_requests_that_never_reach_app_b_count_no_call(app, client):
    client.post("/jobs", headers={"Authorization": "two words"})
    assert sum(sample(app, "app_a_auth_calls_total", outcome=o.value) for o in Outcome) == 0


def test_metrics_can_be_switched_off():
    app = create_app({"METRICS_ENABLED": "false"})
    client = app.test_client()
    assert client.get("/hello").status_code == 200
    assert client.get("/metrics").status_code == 404
    assert "metrics" not in app.extensions


def test_with_a_metrics_port_only_that_port_answers():
    app = create_app({"METRICS_PORT": "9100"})
    public = app.test_client().get("/metrics", base_url="http://localhost:5000")
    assert public.status_code == 404 and public.get_json() == {"error": "Not Found"}
    private = app.test_client().get("/metrics", base_url="http://localhost:9100")
    assert private.status_code == 200 and "app_a_auth_calls_total" in private.text


@pytest.mark.parametrize("environ, message", [
    ({"METRICS_ENABLED": "yes"}, "METRICS_ENABLED must be true or false"),
    ({"METRICS_PORT": "0"}, "METRICS_PORT must be a positive int"),
    ({"METRICS_PORT": "http"}, "METRICS_PORT must be a positive int"),
    ({"METRICS_PORT": "70000"}, "METRICS_PORT must be a TCP port"),
])
def test_invalid_metrics_settings_fail_fast(environ, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load(environ)
