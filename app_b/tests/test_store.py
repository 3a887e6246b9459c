"""The token store on both backends (the `database` fixture): lifecycle, seed, schema."""
import multiprocessing

import pytest

from app_b import config, postgres_store, sqlite_store
from app_b import store as token_store
from servicekit.settings import ConfigError


def schema_version(store):
    if isinstance(store, sqlite_store.SqliteStore):
        return store._read("PRAGMA user_version")[0][0]
    return store._read("SELECT version FROM schema_version ORDER BY version")


def tables(store):
    if isinstance(store, sqlite_store.SqliteStore):
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    else:
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    return [name for (name,) in store._read(sql)]


def test_a_fresh_database_gets_the_current_schema(store):
    if isinstance(store, sqlite_store.SqliteStore):
        assert schema_version(store) == sqlite_store.SCHEMA_VERSION == 2
        assert tables(store) == ["tokens", "users"]
    else:
        assert schema_version(store) == [(postgres_store.SCHEMA_VERSION,)] == [(2,)]
        assert tables(store) == ["schema_version", "tokens", "users"]


def test_tokens_are_stored_only_as_sha256_digests(store, snapshot, database):
    _, token, _ = store.create_token("alice")
    users, tokens = snapshot()
    assert [bytes(row[2]) for row in tokens] == [token_store.token_digest("mytoken"),
                                                 token_store.token_digest(token)]
    stored = repr(snapshot()).encode()
    assert b"mytoken" not in stored and token.encode() not in stored
    if "APP_B_DB_PATH" in database:
        with open(database["APP_B_DB_PATH"], "rb") as raw:
            data = raw.read()
        assert b"mytoken" not in data and token.encode() not in data


def test_a_new_token_is_random_url_safe_and_at_least_32_bytes(store):
    tokens = {store.create_token("alice")[1] for _ in range(5)}
    assert len(tokens) == 5
    for token in tokens:
        assert len(token) >= 43 and token.replace("-", "").replace("_", "").isalnum()
        assert store.username_for(token) == "alice"


def test_a_user_holds_several_tokens_and_each_is_revoked_alone(store):
    first_id, first, _ = store.create_token("alice")
    second_id, second, _ = store.create_token("alice")
    assert store.username_for(first) == store.username_for(second) == "alice"
    assert store.revoke_token(first_id) is True
    assert store.username_for(first) is None
    assert store.username_for(second) == "alice"
    assert store.revoke_token(first_id) is False  # already revoked: says so, changes nothing
    assert store.username_for("mytoken") == "admin"


def test_revoking_a_user_revokes_all_of_their_tokens_only(store):
    alice = [store.create_token("alice")[1] for _ in range(3)]
    bob = store.create_token("bob")[1]
    assert store.revoke_user("alice") == 3
    assert [store.username_for(token) for token in alice] == [None] * 3
    assert store.username_for(bob) == "bob"
    assert store.revoke_user("alice") == 0


def test_a_token_expires_at_its_time_and_the_list_says_so(store):
    now = store.now()
    _, token, expires_at = store.create_token("alice", expires_in=90)
    assert expires_at == now + 90 or expires_at == now + 91  # the clock may tick in between
    store.now = lambda: expires_at - 1
    assert store.username_for(token) == "alice"
    assert {t.username: t.state(store.now()) for t in store.list_tokens()} == {"admin": "active",
                                                                                "alice": "active"}
    store.now = lambda: expires_at
    assert store.username_for(token) is None
    assert {t.username: t.state(store.now()) for t in store.list_tokens()}["alice"] == "expired"


def test_the_list_has_every_token_with_its_dates_and_state(store):
    store.now = lambda: 1_000_000
    store.create_token("bob", expires_in=60)
    revoked_id = store.create_token("alice")[0]
    store.revoke_token(revoked_id)
    listed = [(t.username, t.created_at, t.expires_at, t.revoked_at, t.state(1_000_000))
              for t in store.list_tokens()]
    assert listed[1:] == [("alice", 1_000_000, None, 1_000_000, "revoked"),
                          ("bob", 1_000_000, 1_000_060, None, "active")]
    assert listed[0][0] == "admin"


@pytest.mark.parametrize("call, message", [
    (lambda s: s.create_token(""), "invalid username ''"),
    (lambda s: s.create_token("al ice"), "invalid username 'al ice'"),
    (lambda s: s.create_token("x" * 65), "invalid username"),
    (lambda s: s.revoke_user("nobody"), "unknown user 'nobody'"),
    (lambda s: s.revoke_user(""), "invalid username ''"),
    (lambda s: s.revoke_token(999), "no token with id 999"),
    (lambda s: s.revoke_token(0), "no token with id 0"),
    (lambda s: s.revoke_token(2**63), "no token with id"),
])
def test_mistakes_are_refused_and_change_nothing(store, snapshot, call, message):
    before = snapshot()
    with pytest.raises(token_store.StoreError, match=message):
        call(store)
    assert snapshot() == before


def test_starting_again_changes_nothing(make_app, snapshot, store):
    store.create_token("alice", expires_in=3600)
    before = snapshot()
    make_app()
    make_app()
    assert snapshot() == before


def test_a_changed_seed_token_replaces_the_old_seed_token_only(make_app, store):
    _, own_token, _ = store.create_token("admin")  # issued with the CLI: not the seed
    make_app(SEED_TOKEN="rotated")
    assert store.username_for("mytoken") is None
    assert store.username_for("rotated") == "admin"
    assert store.username_for(own_token) == "admin"


def test_a_revoked_seed_token_stays_revoked_after_a_restart(make_app, store):
    store.revoke_user("admin")
    make_app()
    assert store.username_for("mytoken") is None


def test_a_seed_token_that_is_another_users_token_stops_the_start(make_app, store):
    _, token, _ = store.create_token("alice")
    with pytest.raises(ConfigError, match="another user"):
        make_app(SEED_TOKEN=token)
    assert store.username_for(token) == "alice"


def test_a_database_newer_than_the_code_is_refused(make_app, store):
    with store._write() as execute:
        if isinstance(store, sqlite_store.SqliteStore):
            execute("PRAGMA user_version = 99")
        else:
            execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 0)")
    with pytest.raises(token_store.StoreUnavailable, match="schema version 99, newer"):
        make_app()


def _start_after(barrier, environ):
    barrier.wait()
    settings = config.load(environ)  # what create_app does for the store, without the Flask app
    started = token_store.open_store(settings)
    started.migrate(settings.seed_username, settings.seed_token)
    started.close()


def test_eight_processes_starting_on_one_fresh_database_leave_one_correct_schema(database, make_app):
    environ = {**database, "SEED_USERNAME": "admin", "SEED_TOKEN": "mytoken"}
    # fork: a spawned child would have to re-import this module by name, which pytest's importlib
    # mode does not make importable; each forked child opens its own connections.
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(8)
    workers = [ctx.Process(target=_start_after, args=(barrier, environ)) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0] * 8
    store = make_app().extensions["token_store"]
    test_a_fresh_database_gets_the_current_schema(store)
    users, tokens = (store._read("SELECT username FROM users"),
                     store._read("SELECT token_sha256, seed FROM tokens"))
    assert users == [("admin",)]
    assert [(bytes(digest), bool(seed)) for digest, seed in tokens] == [
        (token_store.token_digest("mytoken"), True)]
