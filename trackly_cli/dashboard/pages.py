"""The dashboard's pages. Every report table is `core.reports.report` for the page's filters,
so its numbers are those of `trackly report --format json` with the same filters."""

from __future__ import annotations

import dataclasses
import json
import shlex
from datetime import timedelta

from bottle import request, response

from trackly_cli.core import abtest, activity, clock, contacts, exports, lists, lookup, reports
from trackly_cli.core.errors import InvalidInput
from trackly_cli.dashboard import views
from trackly_cli.dashboard.answers import see_other
from trackly_cli.dashboard.views import Page, Table, e

# The columns a report table shows (CSV has every column of `trackly report --format json`).
SHOWN = [
    "sent",
    "clicks",
    "bot_clicks",
    "bot_pct",
    "unique_clicks",
    "click_rate",
    "conversions",
    "conversion_rate",
    "revenue",
    "payout",
    "epc",
]
TIMELINE = ["at", "human_clicks", "bot_clicks", "clicks", "revenue"]
CLICK_COLUMNS = [
    "clicked_at",
    "link_id",
    "campaign",
    "offer",
    "phone",
    "verdict",
    "reasons",
    "ip",
    "user_agent",
]
CONVERSION_COLUMNS = [
    "converted_at",
    "link_id",
    "campaign",
    "offer",
    "phone",
    "event",
    "revenue",
    "attribution",
    "ip",
]


def _range_label(req) -> str:
    chosen = req.chosen
    span = reports.day_range_label(chosen) if chosen.since or chosen.until else "all time"
    return f"{req.view.account['name']} · {span} · times in UTC"


def report_table(req, by: str, *, chosen=None, name: str | None = None, title: str = "") -> Table:
    result = reports.report(req.conn, chosen or req.chosen, by)
    labels = {"variant": ["campaign", "variant"], "day": ["day"]}.get(by, [by])
    table = Table(
        name or by,
        labels + SHOWN,
        result.rows,
        totals=result.totals,
        csv_columns=reports.columns(by),
        title=title,
    )
    if by == "campaign":
        table.links["campaign"] = "the campaign's page"
        for row in result.rows:
            if row.get("campaign_id"):
                row["_href_campaign"] = req.view.href(f"/campaigns/{row['campaign_id']}")
    return table


def overview(req):
    result = reports.report(req.conn, req.chosen, "campaign")
    step = "hour" if req.view.range_key == "today" else "day"
    points = reports.timeline(req.conn, req.chosen, step)
    totals = Table("totals", reports.COLUMNS, [result.totals], title="Totals")
    return Page(
        "Overview",
        [
            views.cards(result.totals),
            views.chart(
                views.filled(points, step, 24 if step == "hour" else 14),
                f"Clicks and revenue per {step}",
            ),
            totals,
            Table("timeline", TIMELINE, points, title=f"Per {step}"),
        ],
        _range_label(req),
    )


def campaigns_page(req):
    table = report_table(req, "campaign", title="By campaign")
    sort = request.query.get("sort", "")
    if sort:
        if sort not in table.columns:
            raise InvalidInput(f"sort must be one of {', '.join(table.columns)}")
        descending = request.query.get("dir", "desc") != "asc"
        present = [r for r in table.rows if r.get(sort) is not None]
        missing = [r for r in table.rows if r.get(sort) is None]
        present.sort(key=lambda r: _sort_key(r[sort]), reverse=descending)
        table.rows = present + missing
    table.sortable = True
    return Page("Campaigns", [table], _range_label(req))


def _sort_key(value):
    try:
        return (0, float(str(value)), "")
    except ValueError:
        return (1, 0.0, str(value).casefold())


def campaign_page(req, campaign_id: int):
    found = lookup.find(
        req.conn, "campaigns", str(campaign_id), req.view.account["id"], retired=True
    )
    chosen = dataclasses.replace(req.chosen, campaign=found)
    parts: list = []
    summary = reports.report(req.conn, chosen, "campaign")
    parts.append(views.cards(summary.totals))
    age = clock.utcnow() - clock.from_text(found["created_at"])
    step = "hour" if age <= timedelta(days=3) or req.view.range_key == "today" else "day"
    points = views.filled(
        reports.timeline(req.conn, chosen, step), step, 24 if step == "hour" else 14
    )
    parts.append(views.chart(points, f"Clicks since sending, per {step}"))
    parts.append(report_table(req, "variant", chosen=chosen, name="variants", title="Variants"))
    try:
        verdict = abtest.ab(req.conn, found)
    except InvalidInput as err:
        parts.append(f'<p class="verdict">{e(err.message)}</p>')
    else:
        parts.append(
            Table(
                "ab",
                [
                    "variant",
                    "creative",
                    "sent",
                    "unique_clicks",
                    "click_rate",
                    "click_rate_low",
                    "click_rate_high",
                    "conversions",
                    "conversion_rate",
                    "revenue",
                    "epc",
                ],
                verdict["variants"],
                title="A/B test",
            )
        )
        for item in verdict["verdicts"]:
            kind = "win" if item["winner"] else "wait"
            parts.append(
                f'<p class="verdict {kind}"><b>{e(item["metric"])}:</b> {e(item["message"])}</p>'
            )
    parts.append(report_table(req, "offer", chosen=chosen, name="offers", title="Offers"))
    links = activity.campaign_links(req.conn, found["id"])
    for row in links:
        row["offer"] = row["offer"] or "(plain URL)"
    parts.append(Table("links", ["slot", "offer", "destination", "links"], links, title="Links"))
    parts.append(
        Table(
            "bot_reasons",
            ["reasons", "clicks"],
            activity.bot_reasons(req.conn, found["id"]),
            title="Top bot reasons (raw clicks kept)",
        )
    )
    return Page(f"Campaign {found['name']}", parts, _range_label(req))


def simple_report(by: str, title: str):
    def handler(req):
        return Page(title, [report_table(req, by, title=f"By {by}")], _range_label(req))

    return handler


def lists_page(req):
    account = req.view.account
    settings = []
    for item in lists.list_all(req.conn, str(account["id"])).rows:
        command = [
            "trackly",
            "list",
            "update",
            item["name"],
            "--account",
            account["name"],
            "--bot-filter",
            item["bot_filter"],
            "--min-human-seconds",
            f"{item['min_human_seconds']:g}",
        ]
        settings.append(
            {
                "list": item["name"],
                "members": item["members"],
                "bot_filter": item["bot_filter"],
                "min_human_seconds": f"{item['min_human_seconds']:g}",
                "command": shlex.join(command),
            }
        )
    return Page(
        "Lists",
        [
            report_table(req, "list", title="By list"),
            Table(
                "bot_settings",
                ["list", "members", "bot_filter", "min_human_seconds", "command"],
                settings,
                title="Bot detection (edit the command's values to change them)",
            ),
        ],
        _range_label(req),
    )


def _live_rows(req) -> dict:
    account_id = req.view.account["id"]
    clicks = activity.recent_clicks(req.conn, account_id)
    conversions = activity.recent_conversions(req.conn, account_id)
    for row in clicks:
        row["verdict"] = "bot" if row["is_bot"] else "person"
        row["reasons"] = row.pop("bot_reasons")
    for row in clicks + conversions:
        row["phone"] = views.mask_phone(row["phone"])
        if row.get("contact_id"):
            row["_href_phone"] = req.view.href(f"/contacts/{row['contact_id']}")
    return {"clicks": clicks, "conversions": conversions}


def live_page(req):
    found = _live_rows(req)
    links = {"phone": "contact"}
    return Page(
        "Live",
        [
            '<p class="live" id="live-status" data-source="'
            f'{e(req.view.href("/live.json"))}">Updated every 1.5 s.</p>',
            Table(
                "clicks",
                CLICK_COLUMNS,
                found["clicks"],
                links=links,
                title="Newest clicks",
                empty="No clicks yet.",
            ),
            Table(
                "conversions",
                CONVERSION_COLUMNS,
                found["conversions"],
                links=links,
                title="Newest conversions",
                empty="No conversions yet.",
            ),
            '<script src="/static/live.js"></script>',
        ],
        f"{req.view.account['name']} · newest first · times in UTC",
    )


def live_json(req) -> str:
    found = _live_rows(req)
    response.content_type = "application/json"
    keep = {
        "clicks": [*CLICK_COLUMNS, "id", "_href_phone"],
        "conversions": [*CONVERSION_COLUMNS, "id", "_href_phone"],
    }
    return json.dumps(
        {
            kind: [{k.lstrip("_"): _shown(k, row.get(k)) for k in keep[kind]} for row in rows]
            for kind, rows in found.items()
        }
    )


def _shown(column: str, value):
    return value if column in ("id", "_href_phone") else views.number(column, value)


def contact_search(req):
    phone = request.query.get("phone", "").strip()
    if phone:
        found = contacts.find_contact(req.conn, req.view.account["id"], phone)
        see_other(req.view.href(f"/contacts/{found['id']}"))
    form = (
        '<form class="search" method="get" action="/contacts">'
        f'<input type="hidden" name="account" value="{e(req.view.account["id"])}">'
        '<label>Phone <input name="phone" placeholder="+12025550143" required></label>'
        '<button type="submit">Show</button></form>'
    )
    return Page("Contact", [form], _range_label(req))


def contact_page(req, contact_id: int):
    found = contacts.find_contact(req.conn, req.view.account["id"], str(contact_id))
    journey = exports.journey(req.conn, found)
    facts = {
        "phone": journey["phone"],
        "lists": ", ".join(journey["lists"]),
        "clicks": journey["clicks"],
        "bot_clicks": journey["bot_clicks"],
        "unique_clicks": journey["unique_clicks"],
        "revenue": journey["revenue"],
    }
    fields = [{"field": k, "value": v} for k, v in journey["fields"].items()]
    return Page(
        f"Contact {journey['phone']}",
        [
            Table("contact", list(facts), [facts], title="Summary"),
            Table("fields", ["field", "value"], fields, title="Fields"),
            Table(
                "messages",
                [
                    "message_id",
                    "sent_at",
                    "campaign",
                    "variant",
                    "text",
                    "delivery",
                    "clicks",
                    "bot_clicks",
                    "first_click_at",
                    "conversions",
                    "revenue",
                ],
                journey["messages"],
                title="Messages",
            ),
            Table(
                "conversions",
                ["id", "converted_at", "event", "revenue", "txn_id", "offer", "attribution"],
                journey["conversions"],
                title="Conversions",
            ),
        ],
        f"{req.view.account['name']} · the contact's whole history · times in UTC",
    )


def register(app, page) -> None:
    app.get("/")(page(overview))
    app.get("/campaigns")(page(campaigns_page))
    app.get("/campaigns/<campaign_id:int>")(page(campaign_page))
    app.get("/offers")(page(simple_report("offer", "Offers")))
    app.get("/creatives")(page(simple_report("creative", "Creatives")))
    app.get("/lists")(page(lists_page))
    app.get("/domains")(page(simple_report("domain", "Domains")))
    app.get("/live")(page(live_page))
    app.get("/live.json")(page(live_json))
    app.get("/contacts")(page(contact_search))
    app.get("/contacts/<contact_id:int>")(page(contact_page))
