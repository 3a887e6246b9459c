"""app_a: the public API; serves the job list to callers whose token app_b accepts."""
import os
from pathlib import Path

from flask import g

from servicekit.app import create_service

from . import config, metrics, views
from .auth_client import AuthClient


def _log_fields():
    return {"auth": g.get("auth_outcome")}


def create_app(test_config=None):
    """Build the app from the environment, or from `test_config` (same keys as the env)."""
    settings = config.load(os.environ if test_config is None else test_config)
    app = create_service(__name__, settings, Path(__file__).with_name("openapi.yaml"), _log_fields)
    app.extensions["auth_client"] = AuthClient(
        settings.app_b_url, settings.app_b_connect_timeout, settings.app_b_timeout,
        settings.app_b_max_calls)
    if settings.metrics_enabled:
        metrics.install(app)
    app.register_blueprint(views.bp)
    return app
