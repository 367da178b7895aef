"""The API's OpenAPI 3.1 document against the app: every /api/v1 route of the Bottle app is
documented and nothing documented is missing; the index page lists them, escaped, without inline
script or style; and schemathesis, generating requests from the document (in-process, over
WSGI), finds no 5xx."""

from __future__ import annotations

import itertools
import re

import pytest
import schemathesis
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from trackly_cli.core import apikeys, store
from trackly_cli.dashboard import api
from trackly_cli.dashboard.app import create_app

HOST = {"HTTP_HOST": "127.0.0.1:8081", "REMOTE_ADDR": "127.0.0.1"}


def _bottle_routes(app) -> set[tuple[str, str]]:
    """(METHOD, path in OpenAPI's form) of every /api/v1 route the app has."""
    return {
        (route.method, re.sub(r"<(\w+)(?::[^>]*)?>", r"{\1}", route.rule))
        for route in app.routes
        if route.rule.startswith(api.PREFIX)
    }


def test_every_route_is_documented_and_every_documented_route_exists(db_path):
    app = create_app(db_path)
    document = webtest.TestApp(app, extra_environ=HOST).get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert documented == _bottle_routes(app)
    assert len(documented) == len(api.ENDPOINTS) >= 12
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            named = set(re.findall(r"\{(\w+)\}", path))
            in_path = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert named == in_path, (method, path)
            if method in ("post", "patch"):
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                assert body["additionalProperties"] is False, path
            assert operation["responses"], path


def test_the_document_is_valid_openapi_3_1(db_path):
    """schemathesis loads it as OpenAPI 3.1 and finds every operation (but the document's own,
    which it leaves out)."""
    app = create_app(db_path)
    loaded = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    labels = {result.ok().label for result in loaded.get_all_operations()}
    wanted = {f"{e.method} {e.path}" for e in api.ENDPOINTS if not e.path.endswith(".json")}
    assert labels == wanted


def test_the_index_page_lists_every_endpoint_escaped_without_inline_code(db_path):
    page = webtest.TestApp(create_app(db_path), extra_environ=HOST).get("/api/v1/")
    assert page.content_type == "text/html"
    for endpoint in api.ENDPOINTS:
        assert f"<code>{endpoint.path}</code>" in page.text
    assert "<script" not in page.text and "style=" not in page.text and "<style" not in page.text


@pytest.fixture
def api_schema(cli, db_path):
    """The document as the app serves it, over a database with an account, a domain, an offer,
    a list of one and a write key: (schema, headers with the key)."""
    cli("account", "create", "acme")
    cli("domain", "add", "go.acme.test", "--account", "acme")
    cli("offer", "create", "Sale", "--url", "https://shop.example/")
    cli("list", "create", "vip")
    conn = store.open_db(db_path)
    try:
        key = apikeys.create(conn, "acme", scope="write")["key"]
    finally:
        conn.close()
    loaded = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", create_app(db_path))
    return loaded, {"Authorization": f"Bearer {key}"}


# (schemathesis' pytest integration, `schemathesis.pytest.from_fixture`, fails on pytest 9:
# the operations' strategies are run with Hypothesis directly instead)
@pytest.mark.slow
def test_no_request_the_document_allows_or_not_makes_a_5xx(api_schema):
    """Requests that fit the document (25 per operation) and that do not (10), with a write
    key: none answers 5xx."""
    loaded, headers = api_schema
    seen = []
    operations = [result.ok() for result in loaded.get_all_operations()]
    for operation, mode in itertools.product(operations, GenerationMode):

        @settings(
            max_examples=25 if mode is GenerationMode.POSITIVE else 10,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode))
        def requests_of(case):
            response = case.call(headers=headers)
            case.validate_response(response, checks=[not_a_server_error])
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            seen.append(response.status_code)

        try:
            requests_of()
        except Unsatisfiable:  # (an operation with nothing that could be wrong: no negatives)
            assert mode is GenerationMode.NEGATIVE
    assert len(seen) > 200 and {200, 201, 400} <= set(seen)
