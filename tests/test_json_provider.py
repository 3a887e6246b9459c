"""Both services' JSON answers (servicekit.app.JsonProvider: orjson, Flask's own as fallback)."""
import json

import pytest
from flask import jsonify, request

from servicekit.app import create_service


@pytest.fixture
def app(tmp_path):
    class Settings:
        metrics_enabled = False
    spec = tmp_path / "openapi.yaml"
    spec.write_text("openapi: 3.0.3\n")
    app = create_service("svc", Settings(), spec)

    @app.get("/echo/<path:text>")
    def echo(text):
        return jsonify(text=text, big=2**70 if text == "big" else 1, a=0)
    return app


def test_an_answer_is_compact_sorted_json_and_keeps_text_other_than_ascii_as_it_is(app):
    body = app.test_client().get("/echo/café").get_data()
    assert body == '{"a":0,"big":1,"text":"café"}\n'.encode()


def test_an_answer_orjson_refuses_is_written_by_flask_instead(app):
    assert json.loads(app.test_client().get("/echo/big").get_data()) == {"a": 0, "big": 2**70, "text": "big"}


def test_a_request_body_is_still_decoded_by_the_standard_library(app):
    # orjson refuses a lone surrogate; the standard library reads it (app_b then finds no token).
    with app.test_request_context(data='{"token": "\\ud800"}', content_type="application/json"):
        assert request.get_json() == {"token": "\ud800"}
