"""app_b: the internal auth service; answers whether a token belongs to a user."""
import os

from flask import Flask

from . import config, db, metrics, views, web

MAX_BODY_BYTES = 16 * 1024


def create_app(test_config=None):
    """Build the app from the environment, or from `test_config` (same keys as the env)."""
    settings = config.load(os.environ if test_config is None else test_config)
    # No static files: without static_folder=None Flask would serve /static/<path> from the package.
    app = Flask(__name__, static_folder=None)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    db.init_db(settings.db_path, settings.seed_username, settings.seed_token)
    web.install(app)
    if settings.metrics_enabled:
        store = db.TokenStore(settings.db_path, observe=metrics.install(app).observe_query)
    else:
        store = db.TokenStore(settings.db_path)
    app.extensions["token_store"] = store
    app.register_blueprint(views.bp)
    return app
