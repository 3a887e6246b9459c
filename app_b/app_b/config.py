"""Settings for app_b, read once from the environment (or a test mapping) and validated."""
from dataclasses import dataclass
from pathlib import Path

from servicekit.settings import CommonSettings, ConfigError, common

from .store import StoreError, check_username

DEFAULT_DB_PATH = "var/app_b.sqlite3"


@dataclass(frozen=True)
class Settings(CommonSettings):
    db_path: str | None  # SQLite, or
    database_url: str | None  # PostgreSQL
    seed_username: str | None
    seed_token: str | None


def _seed_token(environ):
    """The seed token comes from SEED_TOKEN or, preferably, a mounted Secret file."""
    token, token_file = environ.get("SEED_TOKEN"), environ.get("SEED_TOKEN_FILE")
    if token and token_file:
        raise ConfigError("set SEED_TOKEN or SEED_TOKEN_FILE, not both")
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"SEED_TOKEN_FILE {token_file!r} cannot be read: {exc.strerror}") from None
        if not token:
            raise ConfigError(f"SEED_TOKEN_FILE {token_file!r} is empty")
    return token or None


def load(environ):
    """Build Settings from a mapping shaped like os.environ; raise ConfigError if invalid."""
    shared = common(environ)
    username = environ.get("SEED_USERNAME") or None
    token = _seed_token(environ)
    if bool(username) != bool(token):
        raise ConfigError("SEED_USERNAME and SEED_TOKEN/SEED_TOKEN_FILE must be set together")
    if token and len(token) > shared["max_token_length"]:
        raise ConfigError(f"the seed token is longer than MAX_TOKEN_LENGTH ({shared['max_token_length']})")
    if username:
        try:
            check_username(username)
        except StoreError as exc:
            raise ConfigError(f"SEED_USERNAME: {exc}") from None
    db_path, database_url = _database(environ)
    return Settings(**shared, db_path=db_path, database_url=database_url, seed_username=username,
                    seed_token=token)


def _database(environ):
    """(SQLite path, None) or (None, PostgreSQL URL): exactly one backend."""
    db_path, url = environ.get("APP_B_DB_PATH"), environ.get("APP_B_DATABASE_URL")
    for name, value in (("APP_B_DB_PATH", db_path), ("APP_B_DATABASE_URL", url)):
        if value == "":
            raise ConfigError(f"{name} must not be empty")
    if db_path and url:
        raise ConfigError("set APP_B_DB_PATH or APP_B_DATABASE_URL, not both")
    if not url:
        return db_path or DEFAULT_DB_PATH, None
    # Never echo the URL: it usually carries the password.
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("APP_B_DATABASE_URL must be a postgresql:// URL")
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict
    try:
        conninfo_to_dict(url)
    except ProgrammingError:
        raise ConfigError("APP_B_DATABASE_URL is not a URL libpq can parse") from None
    return None, url
