import pytest

from app_b import config, create_app


def test_defaults_have_no_seed_user():
    settings = config.load({})
    assert settings.seed_username is None and settings.seed_token is None
    assert settings.max_token_length == 256 and settings.log_level == "INFO"


def test_seed_token_is_read_from_a_secret_file(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    settings = config.load({"SEED_USERNAME": "admin", "SEED_TOKEN_FILE": str(secret)})
    assert settings.seed_token == "s3cret"


@pytest.mark.parametrize("environ, message", [
    ({"SEED_USERNAME": "admin"}, "must be set together"),
    ({"SEED_TOKEN": "t"}, "must be set together"),
    ({"SEED_USERNAME": "a", "SEED_TOKEN": "t", "SEED_TOKEN_FILE": "/x"}, "not both"),
    ({"SEED_USERNAME": "a", "SEED_TOKEN_FILE": "/nonexistent/token"}, "cannot be read"),
    ({"MAX_TOKEN_LENGTH": "0"}, "MAX_TOKEN_LENGTH must be a positive int"),
    ({"MAX_TOKEN_LENGTH": "many"}, "MAX_TOKEN_LENGTH must be a positive int"),
    ({"SEED_USERNAME": "a", "SEED_TOKEN": "x" * 300}, "longer than MAX_TOKEN_LENGTH"),
    ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ({"APP_B_DB_PATH": ""}, "APP_B_DB_PATH must not be empty"),
    ({"APP_B_DATABASE_URL": ""}, "APP_B_DATABASE_URL must not be empty"),
    ({"APP_B_DB_PATH": "/data/app_b.sqlite3", "APP_B_DATABASE_URL": "postgresql://db/app_b"},
     "set APP_B_DB_PATH or APP_B_DATABASE_URL, not both"),
    ({"APP_B_DATABASE_URL": "mysql://db/app_b"}, "must be a postgresql:// URL"),
    ({"APP_B_DATABASE_URL": "postgresql://db/app_b?nosuchoption=1"}, "not a URL libpq can parse"),
    ({"SEED_USERNAME": "ad min", "SEED_TOKEN": "t"}, "SEED_USERNAME: invalid username"),
])
def test_invalid_settings_fail_fast_with_a_clear_message(environ, message):
    with pytest.raises(config.ConfigError, match=message):
        create_app(environ)


def test_the_backend_is_sqlite_by_default_or_postgresql_from_its_url():
    assert (config.load({}).db_path, config.load({}).database_url) == ("var/app_b.sqlite3", None)
    url = "postgresql://app_b:s3cret@db:5432/app_b?sslmode=require"
    settings = config.load({"APP_B_DATABASE_URL": url})
    assert (settings.db_path, settings.database_url) == (None, url)  # taken whole, as given


def test_a_bad_database_url_is_never_echoed():
    with pytest.raises(config.ConfigError) as refused:
        config.load({"APP_B_DATABASE_URL": "postgresql://app_b:s3cret@db/x?nosuchoption=1"})
    assert "s3cret" not in str(refused.value)


def test_empty_secret_file_is_rejected(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("\n")
    with pytest.raises(config.ConfigError, match="is empty"):
        config.load({"SEED_USERNAME": "admin", "SEED_TOKEN_FILE": str(secret)})
