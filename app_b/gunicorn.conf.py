"""gunicorn settings for app_b: the shared ones (servicekit/gunicorn_settings.py), from the environment."""
from servicekit.gunicorn_settings import settings

globals().update(settings("app_b", default_port=5001))
