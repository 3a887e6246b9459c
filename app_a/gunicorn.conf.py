"""gunicorn settings for app_a: the shared ones (servicekit/gunicorn_settings.py), from the environment."""
from servicekit.gunicorn_settings import settings

globals().update(settings("app_a", default_port=5000))
