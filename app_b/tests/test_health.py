import sqlite3


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_when_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200 and response.get_json() == {"status": "ready"}


def test_readyz_is_503_when_the_database_cannot_be_queried(client, db_path):
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TABLE users")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"error": "database unavailable"}
