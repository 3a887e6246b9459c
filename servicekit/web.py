"""Request plumbing: request ids, one JSON log line per request, the HTTP metrics, the body limit,
short JSON errors.

The per-request part is a WSGI middleware around the Flask app rather than Flask hooks: it works
on the WSGI environ and the header list directly, where hooks pay for Flask's dispatch and
werkzeug's context proxies on every request (profiled: most of what the plumbing cost).
"""
import logging
import random
import re
import time

from flask import current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

# Only ids that are safe to echo into headers and logs are kept; anything else is replaced.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_REQUEST_ID_KEY = "servicekit.request_id"
_LOG_FIELDS_KEY = "servicekit.log_fields"
# Requests that matched no route (404, 405) share one label: raw paths would be unbounded.
UNMATCHED = "unmatched"


def request_id():
    """The current request's id: the caller's X-Request-ID if it is safe to echo, else a new one."""
    return request.environ[_REQUEST_ID_KEY]


def log_fields():
    """Fields a view adds to this request's log line (a dict to update)."""
    return request.environ[_LOG_FIELDS_KEY]


def error(status, reason, **headers):
    response = jsonify(error=reason)
    response.status_code = status
    response.headers.update(headers)
    return response


class RequestPlumbing:
    """Wraps a WSGI app: gives each request its id (also sent back as X-Request-ID), counts it in
    flight and times it by route template and status (with `metrics`), and logs one line for it
    to `logger`, with what the view added through `log_fields()`."""

    def __init__(self, wsgi_app, logger, metrics=None):
        self.wsgi_app, self.logger, self.metrics = wsgi_app, logger, metrics

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        # A new id is 128 random bits in hex, like uuid4().hex. An id must be unique, not secret:
        # os.urandom (uuid4's source) is a system call, made with the GIL released; `random`
        # needs none, and is reseeded in each forked worker.
        rid = incoming if REQUEST_ID.fullmatch(incoming) else f"{random.getrandbits(128):032x}"
        fields = {}
        environ[_REQUEST_ID_KEY], environ[_LOG_FIELDS_KEY] = rid, fields
        answer = []  # (status, route template), learnt when the app starts its response

        def start_with_id(status, headers, exc_info=None):
            # The route now: Flask clears environ["werkzeug.request"] when the request ends.
            answer[:] = [(int(status[:3]), _route(environ))]
            headers.append(("X-Request-ID", rid))
            return start_response(status, headers, exc_info)

        if self.metrics:
            self.metrics.in_flight.inc()
        try:
            return self.wsgi_app(environ, start_with_id)
        finally:
            # Without a start_response the server answers 500 (the app raised past Flask).
            status, route = answer[0] if answer else (500, UNMATCHED)
            seconds = time.perf_counter() - started
            if self.metrics:
                self.metrics.in_flight.dec()
                self.metrics.observe(route, status, seconds)
            if self.logger.isEnabledFor(logging.INFO):
                # Made here and handed over: logger.info would check the level again and look
                # through `extra` for names clashing with the record's (12k instructions a line).
                record = self.logger.makeRecord(self.logger.name, logging.INFO, "", 0, "request", (), None)
                record.__dict__.update({
                    "request_id": rid, "method": environ.get("REQUEST_METHOD"),
                    "path": _path(environ), "status": status, **fields,
                    "duration_ms": round(seconds * 1000, 2)})
                self.logger.handle(record)


class BodyLimit:
    """Wraps a Flask app's WSGI app: a request that declares a body over MAX_CONTENT_LENGTH is
    refused (413) before the view runs, since a route that never reads the body would never
    notice it. Read from the WSGI environ: a before_request hook doing the same cost 41k
    instructions per request (callgrind), a fifth of what the plumbing added to app_b."""

    def __init__(self, app):
        self.app, self.wsgi_app, self.max_body = app, app.wsgi_app, app.config["MAX_CONTENT_LENGTH"]

    def __call__(self, environ, start_response):
        if _declared_length(environ) <= self.max_body:
            return self.wsgi_app(environ, start_response)
        # Rendered as any other error, by the app's handler, with the route matched (metrics).
        with self.app.request_context(environ):
            response = self.app.make_response(self.app.handle_user_exception(RequestEntityTooLarge()))
            return response(environ, start_response)


def _declared_length(environ):
    # As request.content_length reads it: digits only, else no declared length.
    value = environ.get("CONTENT_LENGTH", "")
    return int(value) if value.isascii() and value.isdigit() else 0


def _route(environ):
    # A werkzeug request object puts itself in the environ (populate_request).
    rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
    return rule.rule if rule else UNMATCHED


def _path(environ):
    # What request.path gives: WSGI hands the path over as latin-1 text of the raw bytes.
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    return "/" + path.lstrip("/")


def _http_error(exc):
    # Werkzeug's stock descriptions are paragraphs; keep a custom one, else the short name.
    custom = exc.description != type(exc).description
    response = error(exc.code, exc.description if custom else exc.name)
    # Keep protocol headers such as Allow on 405; the body is ours, so not its Content-Type.
    response.headers.extend((k, v) for k, v in exc.get_headers() if k != "Content-Type")
    return response


def _crash(exc):
    logging.getLogger(current_app.name).exception(
        "unhandled error", extra={"request_id": request_id()})
    return error(500, "internal error")


def install(app, metrics=None):
    """Request ids, the request log line, the HTTP metrics (with `metrics`), JSON errors."""
    app.wsgi_app = RequestPlumbing(BodyLimit(app), logging.getLogger(app.name), metrics)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _crash)
