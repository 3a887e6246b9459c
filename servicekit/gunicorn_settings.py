"""gunicorn settings shared by both services; every knob comes from the environment (README).

A service's gunicorn.conf.py is two lines: `globals().update(settings("app_a", 5000))`.
"""
import glob
import importlib
import logging
import os
import re
import shutil
import signal
import sys
import tempfile

from gunicorn import glogging

from . import logbatch

# gunicorn quotes the offending text when it refuses a request ("Invalid HTTP Header:
# 'Authorization <token>'"); a client's mistake must not put its credentials in the log. All
# from the first quote on goes: the quoted text may itself contain quotes.
_QUOTED = re.compile(r"['\"].*", re.S)


class Logger(glogging.Logger):
    """gunicorn's logger minus its access log: the app logs each request itself, with its id.
    gunicorn takes any logging config (logconfig_dict) as a wish for an access log and would
    gather its fields for every request (about 5 % of a worker's CPU here) with nowhere to send them."""

    def access(self, resp, req, environ, request_time):
        pass


class RedactRefusedRequests(logging.Filter):
    """Keeps what gunicorn says about a refused request, minus the request text it quotes."""

    def filter(self, record):
        message = record.getMessage()
        if message.startswith("Invalid request from"):
            record.msg, record.args = _QUOTED.sub("'<redacted>'", message), ()
        return True


WORKER_CLASSES = ("gthread", "sync")
# What the master stops workers with. A new worker runs the master's handlers until gunicorn
# installs its own, and those only queue the signal for the master's loop: one that arrived then
# was lost, and shutdown waited for SIGKILL. Blocked from just before the fork until the worker
# has booted, such a signal waits and then reaches the worker's own handler.
STOP_SIGNALS = {signal.SIGTERM, signal.SIGQUIT, signal.SIGINT}


def _unblock_stop_signals():
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def settings(service, default_port, default_host="0.0.0.0", default_worker_class="gthread"):
    """gunicorn's settings and server hooks for `service` (the package name, e.g. "app_a");
    `default_host` is where it listens unless HOST says otherwise."""
    # prometheus_client decides where samples live when it is first imported, which importing
    # the service below does; so first point it at a directory all workers share and a scrape
    # sums. Unless the environment names one, that is a new private directory (mode 0700, with
    # an unguessable name in a shared /tmp), removed on exit.
    own_metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_metrics_dir = tempfile.mkdtemp(prefix=f"{service}-metrics-{os.getpid()}-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]

    from prometheus_client import multiprocess

    from .settings import ConfigError, choice, gunicorn_threads, positive_number

    host = os.environ.get("HOST", default_host)
    port = os.environ.get("PORT", str(default_port))
    try:
        config = importlib.import_module(f"{service}.config").load(os.environ)
        worker_class = choice(os.environ, "GUNICORN_WORKER_CLASS", default_worker_class, WORKER_CLASSES)
        workers = positive_number(os.environ, "GUNICORN_WORKERS", 2, int)
        threads = gunicorn_threads(os.environ)
        graceful_timeout = positive_number(os.environ, "GUNICORN_GRACEFUL_TIMEOUT", 20, int)
        if str(config.metrics_port) == port:
            raise ConfigError(f"METRICS_PORT must differ from PORT ({port})")
    except ConfigError as exc:
        if own_metrics_dir:
            os.rmdir(own_metrics_dir)  # still empty: nothing has run
        raise SystemExit(f"{service}: invalid configuration: {exc}") from None

    bind = [f"{host}:{port}"]
    if config.metrics_enabled and config.metrics_port:
        # GET /metrics is answered only on this second port (see servicekit.metrics.scrape).
        # METRICS_HOST: in the app-a pod the app listens on loopback (nginx in front), while
        # Prometheus scrapes the pod's address.
        bind.append(f"{os.environ.get('METRICS_HOST', host)}:{config.metrics_port}")
    reload = os.environ.get("GUNICORN_RELOAD", "").lower() == "true"
    # A log line carries none of the caller's file, line, thread or process: do not look them up
    # for every record (the logging HOWTO's "Optimization"; finding the caller walks the stack).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False

    def on_starting(server):
        # Samples an earlier server left in the same directory would be summed into this one's.
        os.makedirs(metrics_dir, exist_ok=True)
        for stale in glob.glob(os.path.join(metrics_dir, "*.db")):
            os.remove(stale)
        # The master's own stop signals wait only while it forks (the parent's side of pre_fork).
        os.register_at_fork(after_in_parent=_unblock_stop_signals)

    def pre_fork(server, worker):
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def post_fork(server, worker):
        if reload:
            # The master imported the service (to check the config above); a worker forked from
            # it would keep serving that copy however often the reloader restarts it. Forget it
            # and the kit, so each worker imports the files as they are now (skaffold dev syncs
            # edits into the pod).
            for name in [name for name in sys.modules
                         if name.partition(".")[0] in (service, __package__)]:
                del sys.modules[name]

    def post_worker_init(worker):
        # gunicorn logs a worker's fork, not the end of its boot (imports, database set-up).
        worker.log.info("Worker ready (pid: %s)", worker.pid)
        _unblock_stop_signals()  # its own handlers are in place
        for handler in logbatch.batching_handlers():
            handler.start_batching()

    def worker_exit(server, worker):
        for handler in logbatch.batching_handlers():
            handler.stop_batching()

    def child_exit(server, worker):
        # A dead worker's requests still count, but it no longer has any in flight.
        multiprocess.mark_process_dead(worker.pid, metrics_dir)

    def on_exit(server):
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)

    return {
        "bind": bind, "workers": workers, "threads": threads, "graceful_timeout": graceful_timeout,
        "worker_class": worker_class,
        "keepalive": 75,
        # Few, short headers: real clients send about ten; 32 of up to 4 KiB each still leaves
        # room for a 256-character token, and a flood of huge headers is refused (431) before
        # any of it is parsed into a request.
        "limit_request_fields": 32,
        "limit_request_field_size": 4096,
        # The heartbeat file must live on a writable tmpfs when the root filesystem is read-only.
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
        # No runtime control socket: it would need a writable home directory and nothing uses it.
        "control_socket_disable": True,
        "reload": reload,
        "loglevel": config.log_level.lower(),
        # The app logs one JSON line per request with its request id; gunicorn's access log
        # would repeat it.
        "accesslog": None, "logger_class": Logger,
        "logconfig_dict": _log_config(config.log_level),
        "on_starting": on_starting, "pre_fork": pre_fork, "post_fork": post_fork,
        "post_worker_init": post_worker_init, "worker_exit": worker_exit,
        "child_exit": child_exit, "on_exit": on_exit,
    }


def _log_config(level):
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "servicekit.jsonlog.JsonFormatter"}},
        "filters": {"redact": {"()": RedactRefusedRequests}},
        # A worker's request lines are written in batches (servicekit/logbatch.py).
        "handlers": {"stdout": {"()": "servicekit.logbatch.BatchingStreamHandler", "formatter": "json",
                                "stream": "ext://sys.stdout"}},
        "root": {"level": level, "handlers": ["stdout"]},
        # Refused requests are gunicorn's to log: the filter sits there, off the request log's path.
        "loggers": {"gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False,
                                       "filters": ["redact"]}},
    }
