import pytest

from app_b import create_app

SEED = {"SEED_USERNAME": "admin", "SEED_TOKEN": "mytoken"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """The settings that choose a backend, with a new empty database: every test that uses it
    (through `app`) runs once on SQLite and once on a real PostgreSQL server."""
    if request.param == "sqlite":
        return {"APP_B_DB_PATH": str(tmp_path / "app_b.sqlite3")}
    return {"APP_B_DATABASE_URL": request.getfixturevalue("postgres").new_database()}


@pytest.fixture
def make_app(database):
    """create_app on this test's database (with the seed user unless told otherwise); every
    app it made is closed afterwards (PostgreSQL pools hold connections)."""
    made = []

    def make(**settings):
        app = create_app({**database, **SEED, **settings})
        made.append(app)
        return app
    yield make
    for app in made:
        app.extensions["token_store"].close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def store(app):
    return app.extensions["token_store"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def snapshot(store):
    """`snapshot()`: every row of the store, to show a refused request or command changed nothing."""
    return lambda: (store._read("SELECT id, username FROM users ORDER BY id"),
                    store._read("SELECT * FROM tokens ORDER BY id"))


@pytest.fixture
def break_database(store):
    """`break_database()`: drop the tokens table under the running app (every query then fails)."""
    def drop():
        with store._write() as execute:
            execute("DROP TABLE tokens")
    return drop
