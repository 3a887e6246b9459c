"""gunicorn settings for app_b: the shared ones (servicekit/gunicorn_settings.py), from the environment."""
from servicekit.gunicorn_settings import settings

# Internal: outside a container it listens on loopback unless HOST says otherwise.
globals().update(settings("app_b", default_port=5001, default_host="127.0.0.1"))
