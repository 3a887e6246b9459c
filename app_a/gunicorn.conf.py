"""gunicorn settings for app_a; every knob comes from the environment (see README)."""
import os

from app_a.config import ConfigError, load, positive_number

try:
    _settings = load(os.environ)
    workers = positive_number(os.environ, "GUNICORN_WORKERS", 2, int)
    threads = positive_number(os.environ, "GUNICORN_THREADS", 4, int)
    graceful_timeout = positive_number(os.environ, "GUNICORN_GRACEFUL_TIMEOUT", 20, int)
except ConfigError as exc:
    raise SystemExit(f"app_a: invalid configuration: {exc}") from None

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
# gthread: a thread waiting on app_b does not block the whole worker.
worker_class = "gthread"
keepalive = 75
# The heartbeat file must live on a writable tmpfs when the root filesystem is read-only.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No runtime control socket: it would need a writable home directory and nothing uses it.
control_socket_disable = True
reload = os.environ.get("GUNICORN_RELOAD", "").lower() == "true"
loglevel = _settings.log_level.lower()
# The app logs one JSON line per request with its request id; gunicorn's own access log would repeat it.
accesslog = None
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
    }},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json",
                            "stream": "ext://sys.stdout"}},
    "root": {"level": _settings.log_level, "handlers": ["stdout"]},
    "loggers": {"gunicorn.error": {"level": _settings.log_level, "handlers": ["stdout"],
                                   "propagate": False}},
}
