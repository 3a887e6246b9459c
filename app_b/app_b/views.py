"""HTTP routes of app_b."""
import logging

from flask import Blueprint, current_app, jsonify, request

from servicekit.web import error

from .store import StoreUnavailable

bp = Blueprint("app_b", __name__)
log = logging.getLogger("app_b")


def _token_from_request():
    """Return (token, None) or (None, error response); accepts a form field or a JSON body."""
    if request.mimetype == "application/json":
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # nested thousands deep: json gives up, and so does the request
            return None, error(400, "JSON body nested too deeply")
        token = body.get("token") if isinstance(body, dict) else None
        if token is not None and not isinstance(token, str):
            return None, error(400, "token must be a string")
    elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        token = request.form.get("token")
    elif not request.content_length:
        token = None
    else:
        return None, error(415, "send the token as form field 'token' or JSON {\"token\": ...}")
    if not token:
        return None, error(400, "missing token")
    if len(token) > current_app.config["SETTINGS"].max_token_length:
        return None, error(400, "token too long")
    return token, None


@bp.post("/auth")
def auth():
    token, problem = _token_from_request()
    if problem:
        return problem
    try:
        username = current_app.extensions["token_store"].username_for(token)
    except StoreUnavailable as exc:
        return _database_unavailable(exc)
    if username is None:
        return error(401, "unknown token")
    return jsonify(username=username)


@bp.get("/readyz")
def readyz():
    try:
        current_app.extensions["token_store"].ping()
    except StoreUnavailable as exc:
        return _database_unavailable(exc)
    return jsonify(status="ready")


def _database_unavailable(exc):
    # One line, no traceback: the reason is the database's, and it is said in full.
    log.warning("database unavailable", extra={"reason": str(exc)})
    return error(503, "database unavailable")
