"""The Flask app every service starts from."""
import orjson
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from . import metrics, views, web

MAX_BODY_BYTES = 16 * 1024


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON with answers encoded by orjson, as the log lines are (servicekit/jsonlog.py):
    the standard library builds a new encoder for each call with arguments. Requests are still
    decoded by Flask's own loads, whose edge cases (lone surrogates, nesting depth) the views'
    validation is written around."""

    def dumps(self, obj, **kwargs):
        if kwargs.keys() <= {"separators"}:  # what responses ask for; orjson is always compact
            try:
                return orjson.dumps(obj, default=self.default, option=orjson.OPT_SORT_KEYS).decode()
            except orjson.JSONEncodeError:  # an integer over 64 bits, say: Flask's own takes it
                pass
        return super().dumps(obj, **kwargs)


def create_service(name, settings, openapi_path):
    """A Flask app named `name` (its package) with the shared request plumbing, the contract and
    liveness views, and (if on) the HTTP metrics."""
    # No static files: without static_folder=None Flask would serve /static/<path> from the package.
    app = Flask(name, static_folder=None)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.json = JsonProvider(app)
    web.install(app, metrics.install(app) if settings.metrics_enabled else None)
    app.register_blueprint(views.blueprint(openapi_path))
    return app
