"""app_a: the public API; serves the job list to callers whose token app_b accepts."""
import os
from pathlib import Path

from servicekit.app import create_service

from . import config, metrics, views
from .auth_client import AuthClient


def create_app(test_config=None):
    """Build the app from the environment, or from `test_config` (same keys as the env)."""
    settings = config.load(os.environ if test_config is None else test_config)
    app = create_service(__name__, settings, Path(__file__).with_name("openapi.yaml"))
    app.extensions["auth_client"] = AuthClient(
        settings.app_b_url, settings.app_b_connect_timeout, settings.app_b_timeout,
        settings.app_b_max_calls)
    app.extensions["count_auth_call"] = (metrics.auth_call_counter(app) if settings.metrics_enabled
                                         else metrics.uncounted)
    app.register_blueprint(views.bp)
    return app
