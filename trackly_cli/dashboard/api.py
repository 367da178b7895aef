"""The JSON API of the operator app, under /api/v1: for scripts, with an API key.

Every request but the two that describe the API (`/api/v1/` and `/api/v1/openapi.json`) needs
`Authorization: Bearer KEY` (`trackly apikey create`): a missing, malformed, unknown or revoked
key is 401, a read key on a write route 403. A key sees its one account: another account's names
and ids are 404, as unknown ones are. The API never reads cookies, so the dashboard's session and
its CSRF check (an Origin of this host) do not apply; its host check does (nothing on a tracking
domain) and so do the security headers. Bodies are JSON objects of at most MAX_BODY bytes,
checked against the schemas the OpenAPI document publishes (`ENDPOINTS` below is the one table
both the routes and the document are made from); an error is
`{"error": {"code", "message", "field"}}` with a 4xx status, and an unexpected one a 500 of the
same shape (its traceback goes to the server's log, never to the client).
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from bottle import HTTPResponse, request

from trackly_cli.core import api as core_api
from trackly_cli.core import (
    apikeys,
    campaigns,
    domains,
    idempotency,
    lists,
    offers,
    postgres,
    reports,
    store,
)
from trackly_cli.core.errors import InvalidInput, NotFound, TracklyError, Unauthorized
from trackly_cli.dashboard import schema
from trackly_cli.output import to_json

PREFIX = "/api/v1"
MAX_BODY = 64 * 1024
JSON = "application/json"
CODES = {
    400: "invalid_input",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    429: "too_many",
    500: "internal_error",
    503: "unavailable",
}

# -- the schemas of bodies and parameters (published as they are in openapi.json) -------------

NAME = {"type": "string", "minLength": 1, "maxLength": 100}
TEXT = {"type": "string", "minLength": 1, "maxLength": 5000}
LINKS = {
    "type": "object",
    "description": "Each {{linkN}} slot of the text: an offer (name or id) or an http(s) URL.",
    "propertyNames": {"pattern": "^link[1-9][0-9]{0,2}$", "title": "a slot such as link1"},
    "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 2048},
    "maxProperties": 20,
}
FIELDS = {
    "type": "object",
    "description": "Merge fields of the text ({{first_name}}…), over those of the phone's contact.",
    "propertyNames": {
        "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        "title": "a field name such as first_name",
    },
    "additionalProperties": {"type": "string", "maxLength": 1000},
    "maxProperties": 50,
}
MONEY = {
    "type": ["string", "number"],
    "description": 'An exact amount such as "2.50" (a string keeps every digit).',
    "pattern": r"^\s*-?[0-9]{1,12}(\.[0-9]{1,6})?\s*$",
    "title": "an amount such as 2.50",
}
OFFER_FIELDS = {
    "url": {"type": "string", "minLength": 1, "maxLength": 2048},
    "payout": MONEY,
    "attribution_days": {"type": "integer", "minimum": 1, "maximum": offers.MAX_ATTRIBUTION_DAYS},
    "interstitial": {"type": "string", "enum": list(offers.INTERSTITIAL_MODES)},
    "title": {"type": "string", "maxLength": 300},
    "description": {"type": "string", "maxLength": 2000},
    "cta": {"type": "string", "maxLength": 100},
    "meta": {
        "type": "object",
        "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_.:-]{0,63}$", "title": "a meta name"},
        "additionalProperties": {"type": "string", "maxLength": 1000},
        "maxProperties": 30,
    },
    "bot_filter": {"type": "string", "enum": list(offers.BOT_FILTERS)},
    "postback_ips": {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": 50},
        "maxItems": 100,
    },
    "require_secret": {"type": "boolean"},
    "max_revenue": {**MONEY, "type": ["string", "number", "null"]},
    "link_conversions_per_hour": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
}
# (one of these keys, exactly: the document says so, and the body check holds to it)
TEXT_OR_CREATIVE = [{"required": ["text"]}, {"required": ["creative"]}]
TEMPLATE = {
    "type": "object",
    "properties": {"text": TEXT, "creative": NAME},
    "oneOf": TEXT_OR_CREATIVE,
    "additionalProperties": False,
    "maxProperties": 1,
}
SHORTEN_BODY = {
    "type": "object",
    "description": "One message: `text` (a template) or `creative` (a saved one's name).",
    "properties": {
        "text": TEXT,
        "creative": NAME,
        "links": LINKS,
        "phone": {"type": "string", "minLength": 1, "maxLength": 40},
        "fields": FIELDS,
        "campaign": NAME,
    },
    "oneOf": TEXT_OR_CREATIVE,
    "additionalProperties": False,
}
CAMPAIGN_BODY = {
    "type": "object",
    "description": "A send to a list: `text`, `creative`, or `variants` (an A/B test).",
    "properties": {
        "list": NAME,
        "text": TEXT,
        "creative": NAME,
        "variants": {"type": "array", "items": TEMPLATE, "minItems": 1, "maxItems": 26},
        "links": LINKS,
        "campaign": NAME,
        "split": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "maxItems": 26,
        },
        "seed": {"type": "string", "minLength": 1, "maxLength": 100},
        "domain": {"type": "string", "minLength": 1, "maxLength": 253},
        "keep_urls": {"type": "boolean"},
        "max_segments": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    "required": ["list"],
    "oneOf": [*TEXT_OR_CREATIVE, {"required": ["variants"]}],
    "additionalProperties": False,
}
OFFER_BODY = {
    "type": "object",
    "properties": {"name": NAME, **OFFER_FIELDS},
    "required": ["name", "url"],
    "additionalProperties": False,
}
OFFER_CHANGES = {
    "type": "object",
    "description": "The settings to change; `name` renames; `postback_ips: []` accepts any IP.",
    "properties": {"name": NAME, **OFFER_FIELDS},
    "additionalProperties": False,
}
CURSOR_PARAMS = {
    "campaign": NAME,
    "since": {"type": "string", "minLength": 1, "maxLength": 40},
    "limit": {"type": "integer", "minimum": 1, "maximum": core_api.MAX_PAGE},
    "cursor": {"type": "string", "minLength": 1, "maxLength": 200},
}
REPORT_PARAMS = {
    "by": {"type": "string", "enum": list(reports.DIMENSIONS)},
    "campaign": NAME,
    "since": {"type": "string", "minLength": 1, "maxLength": 40},
    "until": {"type": "string", "minLength": 1, "maxLength": 40},
}


# -- a request, and the table of endpoints ------------------------------------------------------


@dataclass
class Call:
    """What a handler gets: the connection, the key's row, the checked query and body."""

    conn: store.Store
    key: dict
    query: dict
    body: dict
    params: dict  # the path's ({name})

    @property
    def account_id(self) -> int:
        return self.key["account_id"]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # OpenAPI's form: /api/v1/offers/{name}
    summary: str
    handler: Callable | None = None  # (Call) -> HTTPResponse | dict | list
    scope: str | None = "read"  # None: no key needed (the API's own description)
    query: dict = field(default_factory=dict)
    body: dict | None = None
    status: int = 200
    answers: str = JSON  # the success response's media type
    path_params: tuple[str, ...] = ()

    @property
    def route(self) -> str:
        """The same path as Bottle routes it: /api/v1/offers/<name>."""
        return re.sub(r"\{(\w+)\}", r"<\1>", self.path)


def answer(status: int, data, headers: dict | None = None) -> HTTPResponse:
    return HTTPResponse(
        to_json(data) + "\n", status, headers={"Content-Type": JSON, **(headers or {})}
    )


def error(status: int, message: str, field: str | None = None, **headers) -> HTTPResponse:
    body = {"error": {"code": CODES.get(status, "error"), "message": message, "field": field}}
    return answer(status, body, headers)


# Which body field a core error about a CLI option is about (the core speaks in flags).
_FLAG = re.compile(r"--([a-z][a-z-]*)")


def field_of(err: TracklyError, known: dict) -> str | None:
    if getattr(err, "field", None):
        return err.field
    for flag in _FLAG.findall(err.message):
        name = {"link": "links", "postback-ip": "postback_ips"}.get(flag, flag.replace("-", "_"))
        if name in known:
            return name
    if "{{" in err.message and "fields" in known:
        return "fields"
    # ("campaign name '1' is only digits…": the field a message starts with)
    return next((name for name in known if err.message.startswith(f"{name} ")), None)


def _read_body(endpoint: Endpoint) -> dict:
    """The JSON object of the request (at most MAX_BODY bytes), checked against its schema."""
    length = request.content_length
    if length > MAX_BODY:
        raise _TooLarge
    raw = request.body.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise _TooLarge
    if not raw.strip():
        raise InvalidInput("the body is empty: send a JSON object", field=None)
    try:
        body = json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise InvalidInput("the body is not JSON (UTF-8)") from None
    schema.check(body, endpoint.body, "")
    return body


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


class _TooLarge(Exception):
    pass


def _read_query(endpoint: Endpoint) -> dict:
    found = {}
    for name in request.query:
        value = request.query.getunicode(name)
        if value is None:
            raise InvalidInput(f"query parameter {name[:50]!r} is not UTF-8", field=name[:50])
        if name not in endpoint.query:
            raise InvalidInput(f"unknown query parameter {name[:50]!r}", field=name[:50])
        wanted = endpoint.query[name]
        if wanted.get("type") == "integer":
            if not (value.isascii() and value.lstrip("-").isdigit() and len(value) < 12):
                raise InvalidInput(f"{name} must be an integer", field=name)
            value = int(value)
        schema.check(value, wanted, name)
        found[name] = value
    return found


class Api:
    """The handlers' surroundings: one connection per request, the host check, the key."""

    def __init__(self, target) -> None:
        self.target = target

    def run(self, endpoint: Endpoint) -> Callable:
        def handle(**params):
            try:
                return self._handle(endpoint, params)
            except HTTPResponse:
                raise
            except TracklyError as err:
                known = {**endpoint.query, **(endpoint.body or {}).get("properties", {})}
                headers = {}
                if isinstance(err, Unauthorized):
                    headers["WWW-Authenticate"] = 'Bearer realm="trackly"'
                return error(err.http_status, err.message, field_of(err, known), **headers)
            except _TooLarge:
                return error(413, f"the body is larger than {MAX_BODY // 1024} KB")
            except Exception as err:  # (never a traceback to the client: one to the log)
                if _database_busy(err):
                    return error(503, "the database is busy: try again", **{"Retry-After": "1"})
                traceback.print_exc(file=sys.stderr)
                return error(500, "internal error (the server's log has the details)")

        handle.__name__ = f"api_{endpoint.method.lower()}_{endpoint.path}"
        return handle

    def _handle(self, endpoint: Endpoint, params: dict):
        conn = store.connect(self.target)
        streaming = False
        try:
            if domains.is_tracking(conn, _hostname()):
                return error(404, "not found")
            if endpoint.scope is None:
                return endpoint.handler(Call(conn, {}, {}, {}, params))
            key = apikeys.authenticate(conn, _bearer())
            if endpoint.scope == "write":
                apikeys.require_write(key)
            query = _read_query(endpoint)
            body = _read_body(endpoint) if endpoint.body is not None else {}
            result = endpoint.handler(Call(conn, key, query, body, params))
            if isinstance(result, _Stream):
                streaming = True
                return result.response(conn)
            if isinstance(result, HTTPResponse):
                return result
            return answer(endpoint.status, result)
        finally:
            if not streaming:
                conn.close()


def _database_busy(err: Exception) -> bool:
    """The database locked past the busy timeout, or the PostgreSQL server out of reach: 503,
    worth a retry (not a bug)."""
    return isinstance(err, sqlite3.OperationalError) or postgres.is_connection_error(err)


def _header(name: str) -> str | None:
    """A request header as sent (latin-1 text, as WSGI gives it): Bottle's get_header decodes
    it as UTF-8 and fails on other bytes."""
    return request.environ.get("HTTP_" + name.upper().replace("-", "_"))


def _hostname() -> str:
    from trackly_cli.dashboard.app import _hostname as hostname

    return hostname(_header("Host") or "")


def _bearer() -> str:
    header = _header("Authorization") or ""
    scheme, _, credentials = header.strip().partition(" ")
    if not header:
        return ""
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthorized("the Authorization header must be: Bearer KEY")
    return credentials.strip()


@dataclass
class _Stream:
    """An answer whose body is made while it is sent (the outbox CSV); it owns the request's
    connection and closes it when the last piece is sent or the client goes."""

    pieces: object  # an iterator of text
    content_type: str
    filename: str

    def response(self, conn: store.Store) -> HTTPResponse:
        def body():
            try:
                for piece in self.pieces:
                    if piece:
                        yield piece.encode("utf-8")
            finally:
                conn.close()

        return HTTPResponse(
            body(),
            200,
            headers={
                "Content-Type": self.content_type,
                "Content-Disposition": f'attachment; filename="{self.filename}"',
            },
        )


# -- the handlers ------------------------------------------------------------------------------


def _template(body: dict) -> tuple[str, str]:
    """("text", TEXT) or ("creative", NAME): the body's schema holds exactly one of them."""
    kind = "text" if "text" in body else "creative"
    return kind, body[kind]


def shorten_one(call: Call):
    given = _header("Idempotency-Key")
    if given is not None:
        key = idempotency.check_key(given)
        print_ = idempotency.fingerprint("POST", request.path, call.body)
    else:
        key, print_ = None, ""
    done = core_api.shorten_message(
        call.conn,
        call.account_id,
        template=_template(call.body),
        links=call.body.get("links", {}),
        phone=call.body.get("phone"),
        fields=call.body.get("fields"),
        campaign=call.body.get("campaign"),
        idempotency_key=key,
        fingerprint=print_,
    )
    if done.replayed:  # (the stored JSON, rendered as the first answer was)
        return answer(done.status, json.loads(done.body), {"Idempotent-Replayed": "true"})
    return answer(done.status, done.body)


def create_campaign(call: Call):
    body = call.body
    if "variants" in body:  # (the schema holds one of variants, text and creative)
        templates = [_template(v) for v in body["variants"]]
    else:
        templates = [_template(body)]
    summary = core_api.shorten_list(
        call.conn,
        call.account_id,
        list_ref=body["list"],
        templates=templates,
        links=body.get("links", {}),
        campaign=body.get("campaign"),
        split=body.get("split"),
        seed=body.get("seed"),
        domain=body.get("domain"),
        keep_urls=body.get("keep_urls", False),
        max_segments=body.get("max_segments", 3),
    )
    url = f"{PREFIX}/campaigns/{summary['campaign_id']}/outbox.csv"
    return answer(201, {"campaign": summary, "outbox_url": url}, {"Location": url})


def campaign_outbox(call: Call):
    try:
        pieces = core_api.outbox(call.conn, call.account_id, call.params["name"])
    except TracklyError as err:
        err.field = err.field or "name"
        raise
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", call.params["name"])[:100]
    return _Stream(pieces, "text/csv; charset=utf-8", f"{name}.csv")


def list_campaigns(call: Call):
    return campaigns.listing(call.conn, str(call.account_id))


def list_lists(call: Call):
    return lists.list_all(call.conn, str(call.account_id)).rows


def report(call: Call):
    return core_api.report_rows(call.conn, call.account_id, **call.query)


def clicks(call: Call):
    return core_api.click_page(call.conn, call.account_id, **call.query)


def conversions(call: Call):
    return core_api.conversion_page(call.conn, call.account_id, **call.query)


_SECRETS = ("postback_secret", "postback_url")


def list_offers(call: Call):
    """As `trackly offer list --format json`: no secrets (`offer show` has them)."""
    found = offers.list_all(call.conn, str(call.account_id)).rows
    return [{k: v for k, v in o.items() if k not in _SECRETS} for o in found]


def _offer_options(body: dict) -> dict:
    options = {k: v for k, v in body.items() if k not in ("name", "meta", "postback_ips")}
    for money in ("payout", "max_revenue"):
        if options.get(money) is not None:
            options[money] = str(options[money]).strip()
    if "meta" in body:
        options["meta"] = [f"{k}={v}" for k, v in body["meta"].items()]
    return options


def create_offer(call: Call):
    body = call.body
    options = _offer_options(body)
    options.pop("url")
    if "postback_ips" in body:
        options["postback_ips"] = body["postback_ips"]
    return offers.create(call.conn, str(call.account_id), body["name"], body["url"], **options)


def update_offer(call: Call):
    body = call.body
    options = _offer_options(body)
    if "postback_ips" in body:
        options["postback_ips"] = body["postback_ips"]
        options["clear_postback_ips"] = not body["postback_ips"]
    if "max_revenue" in body and body["max_revenue"] is None:
        options["max_revenue"] = "none"
    for text in ("title", "description", "cta"):  # ("" clears it, as on the command line)
        if text in body and body[text] is None:
            options[text] = ""
    ref = call.params["name"]
    try:
        return offers.update(call.conn, str(call.account_id), ref, name=body.get("name"), **options)
    except NotFound as err:  # (the offer of the path)
        err.field = err.field or "name"
        raise


def openapi_document(call: Call):
    from trackly_cli.dashboard import openapi

    return openapi.document(ENDPOINTS)


def index_page(call: Call):
    from trackly_cli.dashboard import openapi

    return HTTPResponse(openapi.index(ENDPOINTS), 200, headers={"Content-Type": "text/html"})


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", f"{PREFIX}/", "This list of the endpoints (HTML)", index_page, None,
             answers="text/html"),
    Endpoint("GET", f"{PREFIX}/openapi.json", "The OpenAPI 3.1 document of this API",
             openapi_document, None),
    Endpoint("POST", f"{PREFIX}/shorten", "Shorten one message (as trackly shorten --phone)",
             shorten_one, "write", body=SHORTEN_BODY, status=201),
    Endpoint("POST", f"{PREFIX}/campaigns", "Shorten for a list (as trackly shorten --list)",
             create_campaign, "write", body=CAMPAIGN_BODY, status=201),
    Endpoint("GET", f"{PREFIX}/campaigns", "The campaigns (as trackly campaign list)",
             list_campaigns),
    Endpoint("GET", f"{PREFIX}/campaigns/{{name}}/outbox.csv",
             "A campaign's outbox CSV (as trackly campaign outbox), streamed", campaign_outbox,
             answers="text/csv", path_params=("name",)),
    Endpoint("GET", f"{PREFIX}/reports", "Report rows (as trackly report --format json)", report,
             query=REPORT_PARAMS),
    Endpoint("GET", f"{PREFIX}/clicks", "Raw clicks, newest first, a page at a time", clicks,
             query=CURSOR_PARAMS),
    Endpoint("GET", f"{PREFIX}/conversions", "Conversions, newest first, a page at a time",
             conversions, query=CURSOR_PARAMS),
    Endpoint("GET", f"{PREFIX}/offers", "The offers in use (as trackly offer list)", list_offers),
    Endpoint("POST", f"{PREFIX}/offers", "Create an offer (as trackly offer create)",
             create_offer, "write", body=OFFER_BODY, status=201),
    Endpoint("PATCH", f"{PREFIX}/offers/{{name}}", "Change an offer (as trackly offer update)",
             update_offer, "write", body=OFFER_CHANGES, path_params=("name",)),
    Endpoint("GET", f"{PREFIX}/lists", "The sending lists (as trackly list list)", list_lists),
]  # fmt: skip


def register(app, target) -> None:
    """The API's routes on the dashboard's app, from ENDPOINTS."""
    api = Api(target)
    for endpoint in ENDPOINTS:
        app.route(endpoint.route, method=endpoint.method)(api.run(endpoint))


def is_api(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def not_routed(status: int) -> HTTPResponse:
    """The JSON answer to a path or method of /api/v1 that no route has (Bottle's 404/405)."""
    if status == 405:
        return error(405, f"{request.method} is not allowed here")
    return error(404, f"no endpoint {request.path[:100]!r} (see {PREFIX}/openapi.json)")
