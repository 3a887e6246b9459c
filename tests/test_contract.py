"""Each service's openapi.yaml is its contract: it lists exactly the routes the app serves, and
schemathesis fuzzes the live service (real gunicorn on loopback) against it with every check on."""
import re
import secrets

import pytest
import schemathesis
import yaml
from schemathesis.config import SchemathesisConfig

import app_a
import app_b
from harness.stack import DEV_SEED

# Flask answers these for every route by itself; schemathesis leaves them out as well.
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# A fixed seed and no example database replay the same cases on every run: a failure is a
# regression, not bad luck. The examples go where the input is (POST bodies and tokens): a GET
# varies only X-Request-ID.
FUZZING = {
    "seed": 20251125,
    "request-timeout": 10,
    "generation": {"max-examples": 500, "database": "none"},
    "operations": [{"include-method": "GET", "generation": {"max-examples": 25}}],
}
SEED_TOKEN = {"auth": {"openapi": {
    "rawToken": {"api_key": DEV_SEED["SEED_TOKEN"]},
    "bearerToken": {"bearer": DEV_SEED["SEED_TOKEN"]},
}}}


@pytest.fixture(params=["app_a", "app_b"])
def app(request, tmp_path):
    if request.param == "app_a":
        return app_a.create_app({})
    return app_b.create_app({"APP_B_DB_PATH": str(tmp_path / "app_b.sqlite3")})


def served(app):
    """(path, METHOD) for every route of `app`, the path in OpenAPI's {name} form."""
    return {(re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule), method)
            for rule in app.url_map.iter_rules() for method in rule.methods - IMPLICIT_METHODS}


def documented(document):
    return {(path, method.upper())
            for path, item in document["paths"].items() for method in item if method in HTTP_METHODS}


def test_the_document_lists_exactly_the_served_routes(app):
    response = app.test_client().get("/openapi.yaml")
    assert response.status_code == 200 and response.mimetype == "application/yaml"
    document = yaml.safe_load(response.data)
    assert document["openapi"].startswith("3.1") and document["info"]["title"] == app.name
    assert served(app) - documented(document) == set(), "served but missing from openapi.yaml"
    assert documented(document) - served(app) == set(), "in openapi.yaml but not served"


def schema_of(service, **config):
    return schemathesis.openapi.from_url(
        f"{service.url}/openapi.yaml", config=SchemathesisConfig.from_dict({**FUZZING, **config}))


@pytest.fixture(params=["seed token", "generated tokens"])
def app_a_schema(request, services):
    # With the seed token the fuzzer reaches the 200 answers; with tokens it makes up itself it
    # fuzzes the Authorization header, and ignored_auth fails if any of those gets a 200. Then
    # app_b's one token is made at run time: Hypothesis also tries the string constants of the
    # code it has loaded, the dev seed token among them, and did send it (a false failure).
    if request.param == "seed token":
        app_b, auth = services.app_b(), SEED_TOKEN
    else:
        app_b, auth = services.app_b(SEED_TOKEN=secrets.token_urlsafe(32)), {}
    return schema_of(services.app_a(app_b.url), **auth)


@pytest.fixture
def app_b_schema(services):
    return schema_of(services.app_b())


app_a_contract = schemathesis.pytest.from_fixture("app_a_schema")
app_b_contract = schemathesis.pytest.from_fixture("app_b_schema")


@app_a_contract.parametrize()
@pytest.mark.slow
def test_app_a_keeps_its_contract(case):
    case.call_and_validate()


@app_b_contract.parametrize()
@pytest.mark.slow
def test_app_b_keeps_its_contract(case):
    case.call_and_validate()
