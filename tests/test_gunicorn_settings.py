"""The shared gunicorn settings (servicekit/gunicorn_settings.py) as gunicorn reads them."""
import logging.config
import os
import subprocess
import sys
import threading
import types

import pytest
from gunicorn.config import Config

from harness.stack import REPO
from servicekit.gunicorn_settings import settings


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("GUNICORN_WORKER_CLASS", "GUNICORN_RELOAD", "METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


class Untouchable:
    """A request or response whose every attribute read fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the access log read .{name}")


def test_no_access_log_fields_are_gathered_per_request(env):
    # gunicorn builds its access-log fields whenever a logging config is set, as ours is.
    config = Config()
    for key, value in settings("app_b", 5001).items():
        config.set(key, value)
    logger = config.logger_class(config)
    logger.access(Untouchable(), Untouchable(), {}, 0.001)


@pytest.fixture
def logging_restored():
    """Whatever a test configures, the loggers it touches are as before afterwards."""
    loggers = [logging.getLogger(), logging.getLogger("gunicorn.error")]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate, lg.filters[:]) for lg in loggers]
    yield
    for lg, handlers, level, propagate, filters in saved:
        lg.handlers[:], lg.level, lg.propagate, lg.filters[:] = handlers, level, propagate, filters


def test_a_booted_worker_writes_its_log_in_batches_until_it_exits(env, logging_restored):
    hooks = settings("app_b", 5001)
    logging.config.dictConfig(hooks["logconfig_dict"])
    worker = types.SimpleNamespace(pid=os.getpid(), log=logging.getLogger("gunicorn.error"))
    before = set(threading.enumerate())
    try:
        hooks["post_worker_init"](worker)
        [flusher] = set(threading.enumerate()) - before
        assert flusher.name == "log-flusher"
    finally:
        hooks["worker_exit"](None, worker)
    assert not flusher.is_alive()


@pytest.mark.parametrize("value", ["gthread", "sync"])
def test_the_worker_class_comes_from_the_environment(env, value):
    env.setenv("GUNICORN_WORKER_CLASS", value)
    assert settings("app_b", 5001)["worker_class"] == value


def test_an_unknown_worker_class_stops_start_up_with_one_line():
    # As gunicorn runs it: the config file, in a fresh process, exits before serving anything.
    script = "exec(open('gunicorn.conf.py').read(), {})"
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO / "app_b", capture_output=True,
                         text=True, timeout=60,
                         env={"PYTHONPATH": str(REPO), "GUNICORN_WORKER_CLASS": "gevent",
                              "PATH": "/usr/bin:/bin"})
    assert run.returncode != 0
    assert run.stderr.strip() == \
        "app_b: invalid configuration: GUNICORN_WORKER_CLASS must be one of gthread, sync, got 'gevent'"
