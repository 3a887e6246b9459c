"""Routes every service has: its contract and its liveness. Readiness is each service's own."""
from pathlib import Path

from flask import Blueprint, Response, jsonify


def blueprint(openapi_path):
    bp = Blueprint("service", __name__)
    # The contract, read once at start-up; tests/test_contract.py keeps it and the routes in step.
    document = Path(openapi_path).read_bytes()

    @bp.get("/openapi.yaml")
    def openapi():
        return Response(document, mimetype="application/yaml")

    @bp.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return bp
