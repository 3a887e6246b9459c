"""app_b: the internal auth service; answers whether a token belongs to a user."""
import os
from pathlib import Path

from servicekit.app import create_service

from . import config, db, metrics, views


def create_app(test_config=None):
    """Build the app from the environment, or from `test_config` (same keys as the env)."""
    settings = config.load(os.environ if test_config is None else test_config)
    db.init_db(settings.db_path, settings.seed_username, settings.seed_token)
    app = create_service(__name__, settings, Path(__file__).with_name("openapi.yaml"))
    if settings.metrics_enabled:
        store = db.TokenStore(settings.db_path, observe=metrics.query_observer(app))
    else:
        store = db.TokenStore(settings.db_path)
    app.extensions["token_store"] = store
    app.register_blueprint(views.bp)
    return app
