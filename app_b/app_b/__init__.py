"""app_b: the internal auth service; answers whether a token belongs to a user."""
import logging
import os
from pathlib import Path

from servicekit.app import create_service
from servicekit.settings import ConfigError

from . import cli, config, metrics, store, views

# gunicorn's exit status for "worker failed to boot": it stops, rather than respawning a worker
# that would fail the same way in a tight loop.
BOOT_FAILED = 3


def create_app(test_config=None):
    """Build the app from the environment, or from `test_config` (same keys as the env).

    From the environment (a gunicorn worker, the `flask --app app_b` CLI) a configuration or
    database that stops the start-up is one log line and exit status 3; a test config raises.
    """
    if test_config is not None:
        return _create_app(test_config)
    try:
        return _create_app(os.environ)
    except (ConfigError, store.StoreUnavailable) as exc:
        kind = "invalid configuration" if isinstance(exc, ConfigError) else "database unavailable"
        logging.getLogger(__name__).critical("app_b cannot start: %s: %s", kind, exc)
        raise SystemExit(BOOT_FAILED) from None


def _create_app(environ):
    settings = config.load(environ)
    app = create_service(__name__, settings, Path(__file__).with_name("openapi.yaml"))
    observe = metrics.query_observer(app) if settings.metrics_enabled else store.unobserved
    token_store = store.open_store(settings, observe)
    try:
        token_store.migrate(settings.seed_username, settings.seed_token)
    except BaseException:
        token_store.close()
        raise
    app.extensions["token_store"] = token_store
    app.register_blueprint(views.bp)
    app.cli.add_command(cli.tokens)
    return app
