"""What the JSON API (`/api/v1` of the operator app) asks of the core beyond the CLI's own
calls: a one-off shorten that an Idempotency-Key makes safe to retry, a list send without an
outbox file, newest-first pages of clicks and conversions, and the rows of a report as
`trackly report --format json` gives them. Every function works within one account (the API
key's): another account's names and ids are not found.

The arguments are plain values, already checked for their JSON types by the API layer; the
rules (bindings, opt-outs, archived offers, names) are those of the CLI, from the same code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from trackly_cli.core import (
    campaigns,
    conversions,
    exports,
    filters,
    idempotency,
    lookup,
    paging,
    reports,
    shorten,
    store,
)
from trackly_cli.core import outbox as outbox_csv
from trackly_cli.core.errors import Conflict, InvalidInput, TracklyError

MAX_PAGE = 500  # rows a page of clicks or conversions may have
DEFAULT_PAGE = 100
# A list send's template text is saved as a creative of this name (the same text, the same
# creative; a different one is numbered api-2, api-3…). A one-off message's text is not saved: a
# platform renders each message itself, and a creative per message would fill the account's
# creatives (only the first message of a new campaign saves one: a campaign names its creative).
TEXT_CREATIVE = "api"


@dataclass(frozen=True)
class Shortened:
    status: int
    body: dict | str  # a dict when new, the stored JSON text when replayed
    replayed: bool = False


def _sources(
    conn: store.Store, account_id: int, texts: list[tuple[str, str]], *, one_off: bool = False
):
    """TemplateSources of ("text", TEXT) or ("creative", NAME) items."""
    sources = []
    for kind, value in texts:
        if kind == "text":
            sources.append(shorten.TemplateSource(TEXT_CREATIVE, value, save=not one_off))
        else:
            try:
                found = lookup.find(conn, "creatives", value, account_id)
            except TracklyError as e:
                e.field = e.field or "creative"
                raise
            sources.append(shorten.TemplateSource(found["name"], found["body"], found["id"]))
    return sources


def _bindings(conn: store.Store, account_id: int, links: dict[str, str]) -> list[str]:
    """The --link bindings of the API's `links`. An offer named there that the account does not
    have is NotFound (404, as every name of another account is), before the other checks."""
    for slot, target in links.items():
        if not shorten._URLISH.match(target):
            try:
                lookup.find(conn, "offers", target.strip(), account_id)
            except TracklyError as e:
                e.field = f"links.{slot}"
                raise
    return [f"{slot}={target}" for slot, target in links.items()]


def _message(summary: shorten.Summary) -> dict:
    """A one-off message as the API answers it."""
    made = summary.message
    body = {
        "message_id": made["message_id"],
        "text": made["text"],
        "links": [
            {
                "slot": link["slot"],
                "id": link["id"],
                "url": link["short_url"],
                "offer": link["offer"],
                "destination": link["destination"],
            }
            for link in made["links"]
        ],
        "segments": made["segments"],
        "encoding": made["encoding"],
    }
    if "phone" in made:
        body["phone"] = made["phone"]
    if summary.campaign is not None:
        body["campaign"] = summary.campaign
    return body


def shorten_message(
    db: store.Store,
    account_id: int,
    *,
    template: tuple[str, str],
    links: dict[str, str],
    phone: str | None = None,
    fields: dict[str, str] | None = None,
    campaign: str | None = None,
    idempotency_key: str | None = None,
    fingerprint: str = "",
) -> Shortened:
    """One message (as `trackly shorten --phone`), in one transaction with the claim of its
    Idempotency-Key, if it has one: a retry with that key gets the first answer."""
    with store.write(db) as conn:
        if idempotency_key is not None:
            found = idempotency.claim(conn, account_id, idempotency_key, fingerprint)
            if found is not None:
                return Shortened(found.status, found.body, replayed=True)
        plan = shorten.prepare(
            conn,
            account_ref=str(account_id),
            sources=_sources(conn, account_id, [template], one_off=True),
            bindings=_bindings(conn, account_id, links),
            campaign=campaign,
            phone=phone,
            fields=fields,
        )
        body = _message(shorten.run(conn, plan))
        if idempotency_key is not None:
            answer = idempotency.Answer(201, json.dumps(body, ensure_ascii=False))
            idempotency.remember(conn, account_id, idempotency_key, answer)
    return Shortened(201, body)


def shorten_list(
    db: store.Store,
    account_id: int,
    *,
    list_ref: str,
    templates: list[tuple[str, str]],
    links: dict[str, str],
    campaign: str | None = None,
    split: list[int] | None = None,
    seed: str | None = None,
    domain: str | None = None,
    keep_urls: bool = False,
    max_segments: int = 3,
) -> dict:
    """A campaign to a list (as `trackly shorten --list`), without an outbox file: its
    summary as `trackly shorten --format json` gives it (`outbox` is null; the API answers the
    outbox at a URL of its own)."""
    try:
        lookup.find(db, "lists", list_ref, account_id)
    except TracklyError as e:
        e.field = "list"
        raise
    plan = shorten.prepare(
        db,
        account_ref=str(account_id),
        sources=_sources(db, account_id, templates),
        bindings=_bindings(db, account_id, links),
        list_ref=list_ref,
        campaign=campaign,
        split=",".join(str(w) for w in split) if split is not None else None,
        seed=seed,
        domain=domain,
        keep_urls=keep_urls,
    )
    return shorten.run(db, plan, max_segments=max_segments).as_dict()


def report_rows(
    db: store.Store,
    account_id: int,
    *,
    by: str = "campaign",
    campaign: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> list[dict]:
    """The rows of `trackly report --by BY --format json` for the same filters."""
    chosen = _filters(db, account_id, campaign=campaign, since=since, until=until)
    found = reports.report(db, chosen, by)
    columns = reports.columns(by)
    return [{k: row.get(k) for k in columns} for row in found.rows]


def _filters(db: store.Store, account_id: int, **given) -> filters.Filters:
    """filters.resolve, its errors naming the query parameter they are about."""
    try:
        return filters.resolve(db, account=str(account_id), **given)
    except TracklyError as e:
        e.field = e.field or _flag_field(e.message) or _named(e.message, given)
        raise


def _named(message: str, given: dict) -> str | None:
    """The parameter whose value an error message quotes (`no campaign 'x' in this account`)."""
    for name, value in given.items():
        if value and repr(str(value).strip()) in message:
            return name
    return None


def _flag_field(message: str) -> str | None:
    found = re.search(r"--(since|until|campaign|by)\b", message)
    return found.group(1) if found else None


def click_page(
    db: store.Store,
    account_id: int,
    *,
    campaign: str | None = None,
    since: str | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> dict:
    """Raw clicks, newest first: {"data": [...], "next_cursor": … or None}."""

    def read(chosen, count, before):
        return list(exports.list_clicks(db, chosen, limit=count, newest=True, before=before))

    return _newest_first(db, account_id, read, "clicked_at", campaign, since, limit, cursor)


def conversion_page(
    db: store.Store,
    account_id: int,
    *,
    campaign: str | None = None,
    since: str | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> dict:
    """Conversions with their attribution, newest first: {"data": [...], "next_cursor": …}."""

    def read(chosen, count, before):
        return conversions.list_conversions(db, chosen, count, newest=True, before=before).rows

    return _newest_first(db, account_id, read, "converted_at", campaign, since, limit, cursor)


def _newest_first(db, account_id, read, time_key, campaign, since, limit, cursor) -> dict:
    """A page of `read(filters, count, before)`'s rows (newest first, from the cursor's
    position), with the cursor of the next page when there is one."""
    _check_limit(limit)
    before = paging.read_cursor(cursor) if cursor else None
    chosen = _filters(db, account_id, campaign=campaign, since=since)
    return _page(read(chosen, limit + 1, before), limit, time_key)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")


def _page(rows: list[dict], limit: int, time_key: str) -> dict:
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return {
        "data": rows,
        "next_cursor": paging.cursor(last[time_key], last["id"]) if more else None,
    }


def outbox(conn: store.Store, account_id: int, ref: str):
    """The outbox CSV of a complete campaign of the account, as a generator of text pieces
    (core.outbox: the same bytes as `trackly campaign outbox` writes)."""
    found = campaigns.find(conn, {"id": account_id}, ref)
    if found["building_pid"] is not None:
        raise Conflict(f"campaign {found['name']!r} is not complete yet: its outbox is not ready")
    return outbox_csv.campaign_text(conn, found["id"])
