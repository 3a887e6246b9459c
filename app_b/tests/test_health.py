def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_when_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200 and response.get_json() == {"status": "ready"}


def test_readyz_and_auth_are_503_when_the_database_cannot_be_queried(client, break_database, caplog):
    break_database()
    for response in (client.get("/readyz"), client.post("/auth", data={"token": "mytoken"})):
        assert response.status_code == 503
        assert response.get_json() == {"error": "database unavailable"}
    # One warning line per refusal, with the database's reason; no traceback.
    refusals = [r for r in caplog.records if r.getMessage() == "database unavailable"]
    assert len(refusals) == 2 and all(r.reason for r in refusals)
    assert not [r for r in caplog.records if r.exc_info]
