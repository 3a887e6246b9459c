"""Settings for app_a, read once from the environment (or a test mapping) and validated."""
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """Raised for invalid settings; the message names the variable and what is wrong."""


@dataclass(frozen=True)
class Settings:
    app_b_url: str
    app_b_timeout: float
    app_b_connect_timeout: float
    app_b_pool_size: int
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


def _app_b_url(environ):
    url = environ.get("APP_B_URL", "http://127.0.0.1:5001")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"APP_B_URL must be an http(s) base URL such as http://app-b:5001, got {url!r}")
    return url.rstrip("/")


def load(environ):
    """Build Settings from a mapping shaped like os.environ; raise ConfigError if invalid."""
    level = str(environ.get("LOG_LEVEL", "INFO")).upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigError(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got {level!r}")
    return Settings(
        app_b_url=_app_b_url(environ),
        app_b_timeout=positive_number(environ, "APP_B_TIMEOUT", 2.0),
        app_b_connect_timeout=positive_number(environ, "APP_B_CONNECT_TIMEOUT", 0.5),
        # One pooled connection per gunicorn thread is enough: a thread makes one call at a time.
        app_b_pool_size=positive_number(environ, "GUNICORN_THREADS", 4, int),
        max_token_length=positive_number(environ, "MAX_TOKEN_LENGTH", 256, int),
        log_level=level,
        metrics_enabled=_boolean(environ, "METRICS_ENABLED", "true"),
        metrics_port=_metrics_port(environ),
    )
