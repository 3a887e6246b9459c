"""`flask --app app_b tokens ...` on both backends: Flask's CLI runner, and the real command."""
import pytest

from harness.stack import flask_cli


@pytest.fixture
def tokens(app):
    """`tokens("create", "alice")`: run the CLI group on this test's app; the click Result."""
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(args=["tokens", *args])


def created(result):
    """(token id, token) from `tokens create`: the token alone on the last line of stdout."""
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-2].startswith("token ")
    return int(lines[-2].split()[1]), lines[-1]


def listed(tokens):
    result = tokens("list")
    assert result.exit_code == 0 and result.stderr == ""
    header, *rows = [line.split() for line in result.stdout.splitlines()]
    assert header == ["USERNAME", "ID", "CREATED", "EXPIRES", "STATE"]
    return rows


def test_create_prints_a_working_token_once_and_list_never_shows_it(tokens, client):
    token_id, token = created(tokens("create", "alice"))
    assert client.post("/auth", data={"token": token}).get_json() == {"username": "alice"}
    rows = listed(tokens)
    assert [row[0:2] + row[3:] for row in rows] == [["admin", "1", "never", "active"],
                                                    ["alice", str(token_id), "never", "active"]]
    assert token not in tokens("list").output


@pytest.mark.parametrize("duration, seconds, expires", [
    ("90s", 90, "2027-01-15T08:01:30Z"), ("15m", 900, "2027-01-15T08:15:00Z"),
    ("12h", 43200, "2027-01-15T20:00:00Z"), ("30d", 2592000, "2027-02-14T08:00:00Z"),
])
def test_expires_in_takes_seconds_minutes_hours_days(tokens, store, duration, seconds, expires):
    store.now = lambda: 1_800_000_000  # 2027-01-15T08:00:00Z
    token_id, _ = created(tokens("create", "alice", "--expires-in", duration))
    info = next(t for t in store.list_tokens() if t.token_id == token_id)
    assert info.expires_at - info.created_at == seconds
    assert listed(tokens)[-1][1:4] == [str(token_id), "2027-01-15T08:00:00Z", expires]


def test_an_expired_token_is_refused_on_the_next_request_and_listed_expired(tokens, store, client):
    _, token = created(tokens("create", "alice", "--expires-in", "90s"))
    assert client.post("/auth", data={"token": token}).status_code == 200
    later = store.now() + 91
    store.now = lambda: later
    assert client.post("/auth", data={"token": token}).status_code == 401
    assert listed(tokens)[-1][-1] == "expired"


def test_rotation_create_move_revoke_the_old_one(tokens, client):
    old_id, old = created(tokens("create", "alice"))
    _, new = created(tokens("create", "alice"))
    assert {client.post("/auth", data={"token": t}).status_code for t in (old, new)} == {200}
    result = tokens("revoke", "--id", str(old_id))
    assert result.exit_code == 0 and result.stdout == f"token {old_id} revoked\n"
    assert client.post("/auth", data={"token": old}).status_code == 401
    assert client.post("/auth", data={"token": new}).status_code == 200
    assert [row[-1] for row in listed(tokens)] == ["active", "revoked", "active"]
    again = tokens("revoke", "--id", str(old_id))
    assert again.exit_code == 0 and again.stdout == f"token {old_id} was revoked already\n"


def test_revoke_a_user_refuses_all_their_tokens_on_the_next_request(tokens, client):
    alice = [created(tokens("create", "alice"))[1] for _ in range(2)]
    result = tokens("revoke", "alice")
    assert result.exit_code == 0 and result.stdout == "revoked 2 active token(s) of alice\n"
    assert [client.post("/auth", data={"token": t}).status_code for t in alice] == [401, 401]
    assert client.post("/auth", data={"token": "mytoken"}).status_code == 200


@pytest.mark.parametrize("args, message", [
    (["create", ""], "invalid username ''"),
    (["create", "al ice"], "invalid username 'al ice'"),
    (["create", "alice", "--expires-in", "3x"], "invalid duration '3x'"),
    (["create", "alice", "--expires-in", "0s"], "invalid duration '0s'"),
    (["create", "alice", "--expires-in", "-5m"], "invalid duration '-5m'"),
    (["create", "alice", "--expires-in", "3651d"], "invalid duration '3651d'"),
    (["create", "alice", "--expires-in", ""], "invalid duration ''"),
    (["revoke", "nobody"], "unknown user 'nobody'"),
    (["revoke", ""], "invalid username ''"),
    (["revoke", "--id", "999"], "no token with id 999"),
    (["revoke", "--id", "abc"], "no token with id 'abc'"),
    (["revoke", "--id", "99999999999999999999"], "no token with id"),
    (["revoke"], "give a USERNAME or --id ID"),
    (["revoke", "admin", "--id", "1"], "give a USERNAME or --id ID"),
])
def test_bad_input_is_one_line_on_stderr_and_changes_nothing(tokens, snapshot, args, message):
    before = snapshot()
    result = tokens(*args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: {message}") and result.stderr.count("\n") == 1, result.stderr
    assert snapshot() == before


def test_the_flask_command_issues_a_token_the_service_accepts(database, make_app):
    environ = {**database, "SEED_USERNAME": "admin", "SEED_TOKEN": "mytoken"}
    result = flask_cli(environ, "tokens", "create", "alice", "--expires-in", "1d")
    assert result.returncode == 0, result.stderr
    token = result.stdout.splitlines()[-1]
    client = make_app().test_client()
    assert client.post("/auth", data={"token": token}).get_json() == {"username": "alice"}
    listing = flask_cli(environ, "tokens", "list")
    assert listing.returncode == 0 and "alice" in listing.stdout and token not in listing.stdout


@pytest.mark.parametrize("environ, message", [
    ({"APP_B_DB_PATH": "/proc/no/such/dir/x.sqlite3"},
     "app_b cannot start: database unavailable: cannot make the directory of /proc/no/such/dir"),
    ({"APP_B_DB_PATH": "x.sqlite3", "APP_B_DATABASE_URL": "postgresql://u@127.0.0.1/x"},
     "app_b cannot start: invalid configuration: set APP_B_DB_PATH or APP_B_DATABASE_URL, not both"),
])
def test_a_start_up_failure_is_one_line_and_status_3(environ, message):
    result = flask_cli(environ, "tokens", "list")
    assert result.returncode == 3
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""
