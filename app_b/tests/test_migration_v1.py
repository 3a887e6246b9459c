"""A SQLite file made by app_b before token lifecycles (schema version 1, one token per user in
the users row) upgrades in place: every token it held still works, and nothing is lost."""
import hashlib
import sqlite3
from contextlib import closing

import pytest

from app_b import create_app

# What the version-1 code ran (app_b/app_b/db.py before migrations), kept here verbatim as the
# fixture's recipe: the test must not build its "old" file with the new code.
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    token_sha256 BLOB NOT NULL UNIQUE
);
"""
V1_USERS = {"admin": "mytoken", "alice": "alice-token-1", "bob": "b0b's t\u00f6ken"}


def make_v1_file(path):
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(V1_SCHEMA)
        conn.execute("PRAGMA user_version = 1")
        conn.executemany("INSERT INTO users (username, token_sha256) VALUES (?, ?)",
                         [(name, hashlib.sha256(token.encode()).digest())
                          for name, token in V1_USERS.items()])


def dump(path):
    with closing(sqlite3.connect(path)) as conn:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.fixture
def v1_file(tmp_path):
    path = str(tmp_path / "v1.sqlite3")
    make_v1_file(path)
    return path


@pytest.mark.parametrize("seed", [{"SEED_USERNAME": "admin", "SEED_TOKEN": "mytoken"}, {}],
                         ids=["with the seed", "without a seed"])
def test_every_version_1_token_still_works_and_a_second_start_changes_nothing(v1_file, seed):
    first = create_app({"APP_B_DB_PATH": v1_file, **seed})
    client = first.test_client()
    for name, token in V1_USERS.items():
        assert client.post("/auth", json={"token": token}).get_json() == {"username": name}
    assert client.post("/auth", json={"token": "not-a-token"}).status_code == 401
    with closing(sqlite3.connect(v1_file)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        # The users keep their ids; each one's old token is now their first token row.
        assert conn.execute("SELECT id, username FROM users ORDER BY id").fetchall() == \
            [(1, "admin"), (2, "alice"), (3, "bob")]
        assert conn.execute("SELECT user_id, revoked_at, expires_at FROM tokens ORDER BY id").fetchall() == \
            [(1, None, None), (2, None, None), (3, None, None)]
    first.extensions["token_store"].close()

    after_first = dump(v1_file)
    second = create_app({"APP_B_DB_PATH": v1_file, **seed})
    second.extensions["token_store"].close()
    assert dump(v1_file) == after_first


def test_a_failed_upgrade_leaves_the_version_1_file_as_it_was(v1_file):
    before = dump(v1_file)
    # The seed token is alice's: the start-up stops, inside the migration's transaction.
    with pytest.raises(ValueError, match="another user"):
        create_app({"APP_B_DB_PATH": v1_file, "SEED_USERNAME": "admin", "SEED_TOKEN": "alice-token-1"})
    assert dump(v1_file) == before
    with closing(sqlite3.connect(v1_file)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
