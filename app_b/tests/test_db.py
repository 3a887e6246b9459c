import multiprocessing
import sqlite3

from app_b import db


def schema(path):
    with sqlite3.connect(path) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        rows = conn.execute("SELECT username, token_sha256 FROM users").fetchall()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    return tables, rows, version


def test_tokens_are_stored_only_as_sha256_digests(app, db_path):
    _, rows, _ = schema(db_path)
    assert rows == [("admin", db.token_digest("mytoken"))]
    with open(db_path, "rb") as raw:
        assert b"mytoken" not in raw.read()


def test_init_is_idempotent_and_rotates_the_seed_token(db_path):
    db.init_db(db_path, "admin", "first")
    db.init_db(db_path, "admin", "first")
    db.init_db(db_path, "admin", "second")
    tables, rows, version = schema(db_path)
    assert tables == [("users",)] and version == db.SCHEMA_VERSION
    assert rows == [("admin", db.token_digest("second"))]
    store = db.TokenStore(db_path)
    assert store.username_for("second") == "admin"
    assert store.username_for("first") is None


def _init_after(barrier, path):
    barrier.wait()
    db.init_db(path, "admin", "mytoken")


def test_racing_initialisations_leave_one_correct_schema(tmp_path):
    path = str(tmp_path / "race.sqlite3")
    # fork: a spawned child would have to re-import this module by name, which pytest's importlib
    # mode does not make importable; each forked child still opens its own connections.
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(8)
    workers = [ctx.Process(target=_init_after, args=(barrier, path)) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert [w.exitcode for w in workers] == [0] * 8
    tables, rows, version = schema(path)
    assert tables == [("users",)] and version == db.SCHEMA_VERSION
    assert rows == [("admin", db.token_digest("mytoken"))]


def test_each_thread_reuses_one_connection(db_path):
    db.init_db(db_path, "admin", "mytoken")
    store = db.TokenStore(db_path)
    store.username_for("mytoken")
    first = store._conn()
    store.username_for("mytoken")
    assert store._conn() is first
