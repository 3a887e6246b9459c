"""The Flask app every service starts from."""
from flask import Flask

from . import metrics, views, web

MAX_BODY_BYTES = 16 * 1024


def create_service(name, settings, openapi_path):
    """A Flask app named `name` (its package) with the shared request plumbing, the contract and
    liveness views, and (if on) the HTTP metrics."""
    # No static files: without static_folder=None Flask would serve /static/<path> from the package.
    app = Flask(name, static_folder=None)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    web.install(app, metrics.install(app) if settings.metrics_enabled else None)
    app.register_blueprint(views.blueprint(openapi_path))
    return app
