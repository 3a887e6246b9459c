import pytest

from app_b import create_app

SEED = {"SEED_USERNAME": "admin", "SEED_TOKEN": "mytoken"}


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "app_b.sqlite3")


@pytest.fixture
def app(db_path):
    return create_app({"APP_B_DB_PATH": db_path, **SEED})


@pytest.fixture
def client(app):
    return app.test_client()
