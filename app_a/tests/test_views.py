import pytest

from app_a import views
from app_a.auth_client import AuthResult, Outcome
from harness.stack import JOBS_TEXT


def test_hello(client):
    response = client.get("/hello")
    assert response.status_code == 200
    assert response.mimetype == "text/plain" and response.text == "Hello there\n"


@pytest.mark.parametrize("header", ["mytoken", "Bearer mytoken", "bearer   mytoken", " mytoken "])
def test_jobs_accepts_the_original_and_bearer_forms(client, fake_auth, header):
    response = client.post("/jobs", headers={"Authorization": header})
    assert response.status_code == 200
    assert response.mimetype == "text/plain" and response.text == JOBS_TEXT
    assert fake_auth.calls[0][0] == "mytoken"


def test_jobs_as_json_when_asked(client):
    response = client.post("/jobs", headers={"Authorization": "mytoken", "Accept": "application/json"})
    assert response.status_code == 200
    assert response.get_json() == {"jobs": [{"title": "Devops", "description": "Awesome"}]}


def test_each_distinct_accept_header_is_parsed_once(client, fake_auth):
    views._wanted.cache_clear()
    for accept in ("application/json", "text/plain", "application/json", "application/json"):
        assert client.post("/jobs", headers={"Authorization": "mytoken", "Accept": accept}).status_code == 200
    assert views._wanted.cache_info().misses == 2


def test_unacceptable_accept_is_406_before_calling_app_b(client, fake_auth):
    response = client.post("/jobs", headers={"Authorization": "mytoken", "Accept": "image/png"})
    assert response.status_code == 406 and fake_auth.calls == []


@pytest.mark.parametrize("headers, status, reason", [
    ({}, 401, "missing Authorization header"),
    ({"Authorization": ""}, 401, "missing Authorization header"),
    ({"Authorization": "Bearer"}, 401, "missing Authorization header"),
    ({"Authorization": "Bearer "}, 401, "missing Authorization header"),
    ({"Authorization": "two words"}, 401, "malformed Authorization header"),
    ({"Authorization": "caf\u00e9"}, 401, "malformed Authorization header"),
    ({"Authorization": "x" * 257}, 431, "Authorization header too large"),
])
def test_bad_authorization_never_reaches_app_b(client, fake_auth, headers, status, reason):
    response = client.post("/jobs", headers=headers)
    assert response.status_code == status
    assert response.get_json() == {"error": reason}
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="app_a"'
    assert fake_auth.calls == []


@pytest.mark.parametrize("outcome, status, reason", [
    (Outcome.UNKNOWN_TOKEN, 401, "unknown token"),
    (Outcome.UNAVAILABLE, 503, "auth service unavailable"),
    (Outcome.TIMEOUT, 504, "auth service timed out"),
    (Outcome.BAD_GATEWAY, 502, "auth service sent an invalid answer"),
    (Outcome.BUSY, 503, "too many requests waiting on the auth service"),
])
def test_app_b_outcomes_map_to_statuses(client, fake_auth, caplog, outcome, status, reason):
    fake_auth.result = AuthResult(outcome, detail="why")
    response = client.post("/jobs", headers={"Authorization": "mytoken"})
    assert response.status_code == status
    assert response.get_json() == {"error": reason}
    assert response.headers.get("Retry-After") == ("1" if status == 503 else None)
    failures = [r for r in caplog.records if r.getMessage() == "auth service call failed"]
    assert len(failures) == (0 if outcome is Outcome.UNKNOWN_TOKEN else 1)


def test_sql_metacharacters_are_passed_as_data(client, fake_auth):
    client.post("/jobs", headers={"Authorization": "x';DROP--TABLE--users;"})
    assert fake_auth.calls[0][0] == "x';DROP--TABLE--users;"


def test_request_id_is_forwarded_to_app_b_and_echoed(client, fake_auth):
    response = client.post("/jobs", headers={"Authorization": "mytoken", "X-Request-ID": "rid-1"})
    assert fake_auth.calls == [("mytoken", "rid-1")]
    assert response.headers["X-Request-ID"] == "rid-1"


def test_request_id_is_created_when_absent(client, fake_auth):
    response = client.post("/jobs", headers={"Authorization": "mytoken"})
    assert fake_auth.calls[0][1] == response.headers["X-Request-ID"]
    assert len(response.headers["X-Request-ID"]) == 32


def test_oversized_body_is_413_without_calling_app_b(client, fake_auth):
    response = client.post("/jobs", headers={"Authorization": "mytoken"}, data=b"x" * 20000)
    assert response.status_code == 413 and fake_auth.calls == []


def test_wrong_method_unknown_path(client):
    wrong = client.get("/jobs")
    assert wrong.status_code == 405 and wrong.headers["Allow"].split(", ").count("POST") == 1
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.get_json() == {"error": "Not Found"}


def test_health_endpoints(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_not_ready_until_app_b_has_answered(client, fake_auth):
    fake_auth.reached = False
    response = client.get("/readyz")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json() == {"error": "auth service not reached yet"}
    assert client.get("/healthz").status_code == 200  # alive all the same: no restart


def test_unexpected_errors_are_500_without_a_stack_trace(client, fake_auth):
    def explode(token, request_id):
        raise RuntimeError("secret internals")
    fake_auth.check = explode
    response = client.post("/jobs", headers={"Authorization": "mytoken"})
    assert response.status_code == 500 and response.get_json() == {"error": "internal error"}
    assert b"secret internals" not in response.data


@pytest.mark.parametrize("accept, mimetype", [
    ("application/json; charset=utf-8", "application/json"),
    ("text/plain; charset=utf-8", "text/plain"),
    ("text/plain;q=0.5, application/json; charset=utf-8", "application/json"),
])
def test_accept_parameters_do_not_change_the_type(client, accept, mimetype):
    response = client.post("/jobs", headers={"Authorization": "mytoken", "Accept": accept})
    assert response.status_code == 200 and response.mimetype == mimetype


@pytest.mark.parametrize("headers, status", [({"Authorization": "mytoken"}, 200), ({}, 401)])
def test_job_answers_are_never_cached_or_sniffed(client, headers, status):
    response = client.post("/jobs", headers=headers)
    assert response.status_code == status
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
