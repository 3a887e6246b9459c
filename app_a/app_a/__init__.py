"""app_a: the public API; serves the job list to callers whose token app_b accepts."""
import os

from flask import Flask

from . import config, views, web
from .auth_client import AuthClient

MAX_BODY_BYTES = 16 * 1024


def create_app(test_config=None):
    """Build the app from the environment, or from `test_config` (same keys as the env)."""
    settings = config.load(os.environ if test_config is None else test_config)
    app = Flask(__name__)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.extensions["auth_client"] = AuthClient(
        settings.app_b_url, settings.app_b_connect_timeout, settings.app_b_timeout,
        settings.app_b_pool_size)
    web.install(app)
    app.register_blueprint(views.bp)
    return app
