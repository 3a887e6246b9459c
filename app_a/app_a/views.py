"""HTTP routes of app_a."""
import functools
import logging
import re

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from servicekit.web import error, log_fields, request_id

from .auth_client import Outcome

bp = Blueprint("app_a", __name__)
log = logging.getLogger("app_a")

JOBS = ({"title": "Devops", "description": "Awesome"},)
JOBS_TEXT = "Jobs:\n" + "".join(f"Title: {j['title']}\nDescription: {j['description']}\n" for j in JOBS)
# Visible ASCII without spaces: what an opaque token (RFC 6750 b64token) may contain.
TOKEN = re.compile(r"[\x21-\x7e]+")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="app_a"'}
UPSTREAM_ERRORS = {
    Outcome.UNKNOWN_TOKEN: (401, "unknown token"),
    Outcome.UNAVAILABLE: (503, "auth service unavailable"),
    Outcome.TIMEOUT: (504, "auth service timed out"),
    Outcome.BAD_GATEWAY: (502, "auth service sent an invalid answer"),
    Outcome.BUSY: (503, "too many requests waiting on the auth service"),
}
# What a 503 tells a client: app_b is down or every auth slot is busy; both pass in seconds.
RETRY_AFTER = {"Retry-After": "1"}


def _token():
    """Return (token, None) or (None, error response) from `Authorization: [Bearer ]<token>`."""
    header = request.headers.get("Authorization", "").strip()
    scheme, _, rest = header.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else header
    if not token:
        return None, error(401, "missing Authorization header", **CHALLENGE)
    if len(token) > current_app.config["SETTINGS"].max_token_length:
        return None, error(431, "Authorization header too large")
    if not TOKEN.fullmatch(token):
        return None, error(401, "malformed Authorization header", **CHALLENGE)
    return token, None


@bp.get("/hello")
def hello():
    return Response("Hello there\n", mimetype="text/plain")


OFFERED = ("text/plain", "application/json")  # text: the original format


@functools.lru_cache(maxsize=256)
def _wanted(accept_header):
    """The offered type an Accept header prefers, or None. Media-type parameters (charset=utf-8)
    do not change the type: both formats are UTF-8 anyway. No Accept header means anything goes.
    Clients send a handful of distinct headers, so each is parsed once, not on every request."""
    if not accept_header:
        return OFFERED[0]
    accept = MIMEAccept([(value.split(";", 1)[0].strip(), quality)
                         for value, quality in parse_accept_header(accept_header)])
    return accept.best_match(OFFERED)


@bp.post("/jobs")
def jobs():
    response = _jobs()
    # A job list is per caller: no cache may keep it, and no client may guess its type.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _jobs():
    wanted = _wanted(request.headers.get("Accept", ""))
    if wanted is None:
        return error(406, "jobs are served as text/plain or application/json")
    token, problem = _token()
    if problem:
        return problem
    rid = request_id()
    result = current_app.extensions["auth_client"].check(token, rid)
    current_app.extensions["count_auth_call"](result.outcome)
    log_fields()["auth"] = result.outcome.value
    if result.outcome is not Outcome.OK:
        if result.outcome is not Outcome.UNKNOWN_TOKEN:
            log.warning("auth service call failed", extra={
                "request_id": rid, "outcome": result.outcome.value, "detail": result.detail})
        status, reason = UPSTREAM_ERRORS[result.outcome]
        return error(status, reason, **{401: CHALLENGE, 503: RETRY_AFTER}.get(status, {}))
    if wanted == "application/json":
        return jsonify(jobs=list(JOBS))
    return Response(JOBS_TEXT, mimetype="text/plain")


@bp.get("/readyz")
def readyz():
    # Ready once app_b has answered this worker: a new pod's path to app_b can open seconds
    # after the pod starts (network policy is applied asynchronously), and a request routed to
    # it meanwhile would get a 503. From then on readiness ignores app_b, so that an app_b
    # outage does not pull every app_a pod out of its Service as well (POST /jobs says 503).
    if not current_app.extensions["auth_client"].reach():
        return error(503, "auth service not reached yet", **RETRY_AFTER)
    return jsonify(status="ready")
