"""Settings for app_a, read once from the environment (or a test mapping) and validated."""
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from servicekit.settings import CommonSettings, ConfigError, common, gunicorn_threads, positive_number

VISIBLE_ASCII = re.compile(r"[!-~]+")


@dataclass(frozen=True)
class Settings(CommonSettings):
    app_b_url: str
    app_b_timeout: float
    app_b_connect_timeout: float
    app_b_max_calls: int


def _has_usable_port(parts):
    try:
        return parts.port != 0  # None: the scheme's default
    except ValueError:  # not a number, or over 65535
        return False


def _app_b_url(environ):
    url = environ.get("APP_B_URL", "http://127.0.0.1:5001")
    parts = urlsplit(url)
    # Visible ASCII only: http.client sends the path as it is, and refuses anything else per call.
    if (not VISIBLE_ASCII.fullmatch(url) or parts.scheme not in ("http", "https")
            or not parts.hostname or not _has_usable_port(parts) or parts.query or parts.fragment):
        raise ConfigError(f"APP_B_URL must be an http(s) base URL such as http://app-b:5001, got {url!r}")
    return url.rstrip("/")


def _app_b_max_calls(environ):
    """Calls to app_b a worker makes at once: fewer than its threads, so that however slow app_b
    is, a thread is left for the probes (default: all threads but two)."""
    threads = gunicorn_threads(environ)
    if threads < 2:
        raise ConfigError(f"GUNICORN_THREADS must be at least 2 (one is kept for the probes), got {threads}")
    max_calls = positive_number(environ, "APP_B_MAX_CALLS", max(1, threads - 2), int)
    if max_calls >= threads:
        raise ConfigError(f"APP_B_MAX_CALLS must be below GUNICORN_THREADS ({threads}), got {max_calls}")
    return max_calls


def load(environ):
    """Build Settings from a mapping shaped like os.environ; raise ConfigError if invalid."""
    return Settings(
        **common(environ),
        app_b_url=_app_b_url(environ),
        app_b_timeout=positive_number(environ, "APP_B_TIMEOUT", 2.0),
        app_b_connect_timeout=positive_number(environ, "APP_B_CONNECT_TIMEOUT", 0.5),
        app_b_max_calls=_app_b_max_calls(environ),
    )
