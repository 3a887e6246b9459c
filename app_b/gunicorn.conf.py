"""gunicorn settings for app_b; every knob comes from the environment (see README)."""
import glob
import os
import shutil
import signal
import sys
import tempfile

# prometheus_client decides where samples live when it is first imported, which importing app_b
# below does; so first point it at a directory all workers share and a scrape sums. Unless the
# environment names one, that is a directory of this server's own under /tmp (the one writable
# place in the container), removed on exit.
_OWN_METRICS_DIR = os.path.join(tempfile.gettempdir(), f"app_b-metrics-{os.getpid()}")
METRICS_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", _OWN_METRICS_DIR)

from prometheus_client import multiprocess  # noqa: E402
from app_b.config import ConfigError, load, positive_number  # noqa: E402

_HOST = os.environ.get("HOST", "0.0.0.0")
_PORT = os.environ.get("PORT", "5001")
try:
    _settings = load(os.environ)
    workers = positive_number(os.environ, "GUNICORN_WORKERS", 2, int)
    threads = positive_number(os.environ, "GUNICORN_THREADS", 4, int)
    graceful_timeout = positive_number(os.environ, "GUNICORN_GRACEFUL_TIMEOUT", 20, int)
    if str(_settings.metrics_port) == _PORT:
        raise ConfigError(f"METRICS_PORT must differ from PORT ({_PORT})")
except ConfigError as exc:
    raise SystemExit(f"app_b: invalid configuration: {exc}") from None

bind = [f"{_HOST}:{_PORT}"]
if _settings.metrics_enabled and _settings.metrics_port:
    # GET /metrics is answered only on this second port (see metrics.scrape).
    bind.append(f"{_HOST}:{_settings.metrics_port}")
# gthread keeps connections alive, so app_a's pooled connections to app_b are reused.
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


def on_starting(server):
    # Samples an earlier server left in the same directory would be summed into this one's.
    os.makedirs(METRICS_DIR, exist_ok=True)
    for stale in glob.glob(os.path.join(METRICS_DIR, "*.db")):
        os.remove(stale)


def post_fork(server, worker):
    # Until the worker installs its own handlers it runs the master's, which only queue the
    # signal for the master's loop: a SIGTERM in that window was lost and shutdown stalled
    # until SIGKILL (seen in 2 of 20 quick start/stop cycles). Plain termination is right there.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if reload:
        # The master imported the package (to check the config above); a worker forked from it
        # would keep serving that copy however often the reloader restarts it. Forget it, so each
        # worker imports the files as they are now (skaffold dev syncs edits into the pod).
        for name in [name for name in sys.modules if name.partition(".")[0] == "app_b"]:
            del sys.modules[name]


def post_worker_init(worker):
    # gunicorn logs a worker's fork, not the end of its boot (imports, database set-up).
    worker.log.info("Worker ready (pid: %s)", worker.pid)


def child_exit(server, worker):
    # A dead worker's requests still count, but it no longer has any in flight.
    multiprocess.mark_process_dead(worker.pid, METRICS_DIR)


def on_exit(server):
    if METRICS_DIR == _OWN_METRICS_DIR:
        shutil.rmtree(METRICS_DIR, ignore_errors=True)
