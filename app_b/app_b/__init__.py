"""app_b: the internal auth service; answers whether a token belongs to a user."""
import os

from flask import Flask

from . import config, db, views, web

MAX_BODY_BYTES = 16 * 1024


def create_app(test_config=None):
    """Build the app from the environment, or from `test_config` (same keys as the env)."""
    settings = config.load(os.environ if test_config is None else test_config)
    app = Flask(__name__)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    db.init_db(settings.db_path, settings.seed_username, settings.seed_token)
    app.extensions["token_store"] = db.TokenStore(settings.db_path)
    web.install(app)
    app.register_blueprint(views.bp)
    return app
