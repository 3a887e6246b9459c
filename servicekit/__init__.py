"""What both services share: settings helpers, request plumbing (ids, JSON log line, JSON errors),
HTTP metrics with their scrape gate, health and contract views, and the gunicorn settings.

Each service's package keeps only what is its own. Nothing is imported here: the gunicorn
settings must run before prometheus_client is first imported (see gunicorn_settings).
"""
