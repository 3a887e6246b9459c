import pytest


def test_form_token_of_the_seed_user_is_accepted(client):
    response = client.post("/auth", data={"token": "mytoken"})
    assert response.status_code == 200
    assert response.get_json() == {"username": "admin"}


def test_json_token_is_accepted(client):
    response = client.post("/auth", json={"token": "mytoken"})
    assert response.status_code == 200
    assert response.get_json() == {"username": "admin"}


def test_unknown_token_is_401(client):
    response = client.post("/auth", data={"token": "mytoken2"})
    assert response.status_code == 401
    assert response.get_json() == {"error": "unknown token"}


@pytest.mark.parametrize("kwargs, status, reason", [
    ({}, 400, "missing token"),
    ({"data": {"token": ""}}, 400, "missing token"),
    ({"data": {"other": "x"}}, 400, "missing token"),
    ({"json": {}}, 400, "missing token"),
    ({"json": ["mytoken"]}, 400, "missing token"),
    ({"json": {"token": 123}}, 400, "token must be a string"),
    ({"data": "{not json", "content_type": "application/json"}, 400, "missing token"),
    ({"data": {"token": "x" * 257}}, 400, "token too long"),
    ({"data": "token=mytoken", "content_type": "text/plain"}, 415, "send the token"),
])
def test_bad_input_gets_a_clear_4xx_and_changes_nothing(client, snapshot, kwargs, status, reason):
    before = snapshot()
    response = client.post("/auth", **kwargs)
    assert response.status_code == status
    assert response.get_json()["error"].startswith(reason)
    assert snapshot() == before


@pytest.mark.parametrize("token", [
    "' OR '1'='1", "mytoken' --", "x'; DROP TABLE users; --", "%", "_", "\u00e9t\u00e9", "\x00",
    "\ud800",  # a lone surrogate: valid JSON, not encodable as UTF-8; was a 500
])
def test_sql_metacharacters_and_unicode_are_just_unknown_tokens(client, snapshot, token):
    before = snapshot()
    response = client.post("/auth", json={"token": token})
    assert response.status_code == 401
    assert snapshot() == before


def test_oversized_body_is_413(client):
    response = client.post("/auth", data={"token": "a" * 20000})
    assert response.status_code == 413
    assert response.get_json() == {"error": "Request Entity Too Large"}


def test_wrong_method_and_unknown_path(client):
    wrong = client.get("/auth")
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]
    assert client.get("/nope").status_code == 404
    assert client.get("/nope").get_json() == {"error": "Not Found"}


def test_request_id_is_kept_generated_or_replaced(client):
    kept = client.post("/auth", data={"token": "mytoken"}, headers={"X-Request-ID": "abc-123"})
    assert kept.headers["X-Request-ID"] == "abc-123"
    generated = client.post("/auth", data={"token": "mytoken"})
    assert len(generated.headers["X-Request-ID"]) == 32
    unsafe = client.post("/auth", data={"token": "mytoken"}, headers={"X-Request-ID": "a b;<x>"})
    assert unsafe.headers["X-Request-ID"] != "a b;<x>" and len(unsafe.headers["X-Request-ID"]) == 32


def test_request_is_logged_with_its_id(client, caplog):
    caplog.set_level("INFO", logger="app_b")
    client.post("/auth", data={"token": "nope"}, headers={"X-Request-ID": "rid-7"})
    record = next(r for r in caplog.records if r.getMessage() == "request")
    assert (record.request_id, record.status, record.path) == ("rid-7", 401, "/auth")


def test_unexpected_errors_are_500_without_a_stack_trace(app, client, caplog):
    def explode(token):
        raise RuntimeError("secret internals")
    app.extensions["token_store"].username_for = explode
    response = client.post("/auth", data={"token": "mytoken"})
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal error"}
    assert b"secret internals" not in response.data and b"Traceback" not in response.data
    assert any(r.getMessage() == "unhandled error" for r in caplog.records)


@pytest.mark.parametrize("depth", [5000, 8000])
def test_json_nested_thousands_deep_is_400_without_a_traceback(client, snapshot, caplog, depth):
    before = snapshot()
    response = client.post("/auth", data="[" * depth + "]" * depth, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json() == {"error": "JSON body nested too deeply"}
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert snapshot() == before
