"""Settings helpers: every value is read once at start-up and a bad one fails with one line that
names the variable (gunicorn exits, the pod's log says why)."""
import logging
from dataclasses import dataclass


class ConfigError(ValueError):
    """Raised for invalid settings; the message names the variable and what is wrong."""


@dataclass(frozen=True)
class CommonSettings:
    log_level: str
    metrics_enabled: bool
    metrics_port: int | None
    max_token_length: int


def positive_number(environ, name, default, kind=float):
    raw = environ.get(name, default)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value <= 0:
        raise ConfigError(f"{name} must be a positive {kind.__name__}, got {raw!r}")
    return value


def gunicorn_threads(environ):
    """Threads per gunicorn worker (app_a sizes its bound on app_b calls from the same value)."""
    return positive_number(environ, "GUNICORN_THREADS", 8, int)


def boolean(environ, name, default):
    raw = str(environ.get(name, default)).lower()
    if raw not in ("true", "false"):
        raise ConfigError(f"{name} must be true or false, got {environ.get(name)!r}")
    return raw == "true"


def choice(environ, name, default, allowed):
    raw = environ.get(name, default)
    if raw not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


def optional_port(environ, name):
    if not environ.get(name):
        return None
    port = positive_number(environ, name, None, int)
    if port > 65535:
        raise ConfigError(f"{name} must be a TCP port (1-65535), got {port}")
    return port


def log_level(environ):
    level = str(environ.get("LOG_LEVEL", "INFO")).upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigError(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got {level!r}")
    return level


def common(environ):
    """The CommonSettings fields, as keyword arguments for a service's own Settings."""
    return {
        "log_level": log_level(environ),
        "metrics_enabled": boolean(environ, "METRICS_ENABLED", "true"),
        # A second listening port that alone answers GET /metrics (see metrics.scrape).
        "metrics_port": optional_port(environ, "METRICS_PORT"),
        "max_token_length": positive_number(environ, "MAX_TOKEN_LENGTH", 256, int),
    }
