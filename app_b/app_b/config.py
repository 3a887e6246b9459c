"""Settings for app_b, read once from the environment (or a test mapping) and validated."""
import logging
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    """Raised for invalid settings; the message names the variable and what is wrong."""


@dataclass(frozen=True)
class Settings:
    db_path: str
    seed_username: str | None
    seed_token: str | None
    max_token_length: int
    log_level: str
    metrics_enabled: bool
    metrics_port: int | None


def positive_number(environ, name, default, kind=float):
    raw = environ.get(name, default)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value <= 0:
        raise ConfigError(f"{name} must be a positive {kind.__name__}, got {raw!r}")
    return value


def _boolean(environ, name, default):
    raw = str(environ.get(name, default)).lower()
    if raw not in ("true", "false"):
        raise ConfigError(f"{name} must be true or false, got {environ.get(name)!r}")
    return raw == "true"


def _metrics_port(environ):
    """METRICS_PORT, if set, is a second listening port that alone answers GET /metrics."""
    if not environ.get("METRICS_PORT"):
        return None
    port = positive_number(environ, "METRICS_PORT", None, int)
    if port > 65535:
        raise ConfigError(f"METRICS_PORT must be a TCP port (1-65535), got {port}")
    return port


def log_level(environ):
    level = str(environ.get("LOG_LEVEL", "INFO")).upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigError(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got {level!r}")
    return level


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
    username = environ.get("SEED_USERNAME") or None
    token = _seed_token(environ)
    if bool(username) != bool(token):
        raise ConfigError("SEED_USERNAME and SEED_TOKEN/SEED_TOKEN_FILE must be set together")
    max_length = positive_number(environ, "MAX_TOKEN_LENGTH", 256, int)
    if token and len(token) > max_length:
        raise ConfigError(f"the seed token is longer than MAX_TOKEN_LENGTH ({max_length})")
    db_path = environ.get("APP_B_DB_PATH", "var/app_b.sqlite3")
    if not db_path:
        raise ConfigError("APP_B_DB_PATH must not be empty")
    return Settings(
        db_path=db_path,
        seed_username=username,
        seed_token=token,
        max_token_length=max_length,
        log_level=log_level(environ),
        metrics_enabled=_boolean(environ, "METRICS_ENABLED", "true"),
        metrics_port=_metrics_port(environ),
    )
