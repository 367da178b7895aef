"""The API's description, made from the table its routes are registered from (api.ENDPOINTS):
the OpenAPI 3.1 document (/api/v1/openapi.json) and a short HTML page of the endpoints
(/api/v1/), escaped, with no script or style of its own (the dashboard's CSP allows none)."""

from __future__ import annotations

from trackly_cli import __version__
from trackly_cli.dashboard import views
from trackly_cli.dashboard.views import e

ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
            "required": ["code", "message", "field"],
        }
    },
    "required": ["error"],
}
FAILURES = {
    "400": "Bad input (the field is named)",
    "401": "No API key, or a wrong or revoked one",
    "403": "A read key on a write route",
    "404": "Not found in the key's account",
    "409": "A conflict: a name taken, an Idempotency-Key reused for another request…",
    "413": "A body larger than 64 KB",
}


def _operation(endpoint) -> dict:
    operation: dict = {
        "summary": endpoint.summary,
        "operationId": f"{endpoint.method.lower()}_{_slug(endpoint.path)}",
        "responses": {
            str(endpoint.status): {
                "description": "OK",
                "content": {endpoint.answers: {"schema": _answer_schema(endpoint)}},
            }
        },
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string",
         "minLength": 1, "maxLength": 100}}
        for name in endpoint.path_params
    ]  # fmt: skip
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in endpoint.query.items()
    ]
    if endpoint.method == "POST" and endpoint.path.endswith("/shorten"):
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "A retry with the same key and body gets the first answer.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": endpoint.body}},
        }
    if endpoint.scope is None:
        operation["security"] = []
    else:
        operation["description"] = f"Needs a {endpoint.scope} key."
        failures = dict(FAILURES)
        if endpoint.body is None:
            failures.pop("413")
        if endpoint.scope == "read":
            failures.pop("403")
        operation["responses"] |= {
            status: {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
            for status, text in failures.items()
        }
    return operation


def _answer_schema(endpoint) -> dict:
    if endpoint.answers != "application/json":
        return {"type": "string"}
    if endpoint.path.endswith(("/clicks", "/conversions")):
        return {
            "type": "object",
            "properties": {
                "data": {"type": "array", "items": {"type": "object"}},
                "next_cursor": {"type": ["string", "null"]},
            },
            "required": ["data", "next_cursor"],
        }
    if endpoint.method == "GET" and not endpoint.path.endswith("openapi.json"):
        return {"type": "array", "items": {"type": "object"}}
    return {"type": "object"}


def _slug(path: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in path.removeprefix("/api/v1/")).strip("_")


def document(endpoints) -> dict:
    paths: dict = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Trackly API",
            "version": __version__,
            "description": "Per-recipient short links for SMS, clicks, conversions and reports"
            " of one account: the one of the API key (`trackly apikey create`).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR},
        },
    }


def index(endpoints) -> str:
    rows = "".join(
        f"<tr><td>{e(ep.method)}</td><td><code>{e(ep.path)}</code></td>"
        f"<td>{e(ep.scope or 'none')}</td><td>{e(ep.summary)}</td></tr>"
        for ep in endpoints
    )
    body = (
        "<p>Send <code>Authorization: Bearer KEY</code> with a key of"
        " <code>trackly apikey create</code>; bodies are JSON. The whole description:"
        ' <a href="/api/v1/openapi.json">openapi.json</a> (OpenAPI 3.1).</p>'
        "<table><thead><tr><th>method</th><th>path</th><th>key</th><th>does</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    return views.layout(None, "Trackly API", body)
