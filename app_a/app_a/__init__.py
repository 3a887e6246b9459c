"""app_a: the public API; serves the job list to callers whose token app_b accepts."""
import os

from flask import Flask

from . import config, metrics, views, web
from .auth_client import AuthClient

MAX_BODY_BYTES = 16 * 1024


def create_app(test_config=None):
    """Build the app from the environment, or from `test_config` (same keys as the env)."""
    settings = config.load(os.environ if test_config is None else test_config)
    # No static files: without static_folder=None Flask would serve /static/<path> from the package.
    app = Flask(__name__, static_folder=None)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.extensions["auth_client"] = AuthClient(
        settings.app_b_url, settings.app_b_connect_timeout, settings.app_b_timeout,
        settings.app_b_pool_size)
    web.install(app)
    if settings.metrics_enabled:
        metrics.install(app)
    app.register_blueprint(views.bp)
    return app
