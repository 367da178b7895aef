"""The dashboard's HTML: a layout, tables, number cards and an SVG chart.

Every value that reaches the page goes through `e()` (html.escape, quotes included): names,
user agents, referers and merge fields are typed by operators, visitors and list files. No
inline script or style anywhere (the Content-Security-Policy forbids them): the stylesheet and
the live page's script are static files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from html import escape
from urllib.parse import urlencode

NAV = (
    ("/", "Overview"),
    ("/campaigns", "Campaigns"),
    ("/offers", "Offers"),
    ("/creatives", "Creatives"),
    ("/lists", "Lists"),
    ("/domains", "Domains"),
    ("/live", "Live"),
    ("/contacts", "Contact"),
)
RANGES = (("all", "All time"), ("today", "Today"), ("7d", "7 days"), ("30d", "30 days"))
RATES = ("bot_pct", "click_rate", "conversion_rate")


def e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def number(column: str, value) -> str:
    """As the terminal reports show it: 1,234 · 12.50% · – for nothing."""
    if value is None:
        return "–"
    if column.endswith("_at") and isinstance(value, str) and len(value) >= 19:
        return value[:19].replace("T", " ")  # (UTC, to the second)
    if column in RATES:
        return f"{value}%"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def heading(column: str) -> str:
    return column.replace("_", " ")


@dataclass
class Table:
    """A table of a page, which its CSV download writes as it is."""

    name: str
    columns: list[str]
    rows: list[dict]
    totals: dict | None = None
    links: dict[str, str] = field(default_factory=dict)  # column -> what its link opens
    title: str = ""
    csv_columns: list[str] | None = None  # (default: the columns shown)
    sortable: bool = False
    empty: str = "Nothing in this range."


@dataclass
class Page:
    """What a page handler gives: the parts of the page (HTML, or tables that also download as
    CSV), top to bottom."""

    title: str
    parts: list[str | Table] = field(default_factory=list)
    status_line: str = ""


@dataclass
class View:
    """What every page knows: who is looking, at which account and range."""

    user_name: str
    open_local: bool
    accounts: list[dict]
    account: dict
    range_key: str
    since: str
    until: str
    path: str
    sort: str = ""
    direction: str = "desc"

    def query(self, **extra) -> str:
        params = {"account": self.account["id"], "range": self.range_key}
        if self.range_key == "custom":
            params |= {"since": self.since, "until": self.until}
        params |= {k: v for k, v in extra.items() if v is not None}
        return urlencode(params)

    def href(self, path: str, **extra) -> str:
        return f"{path}?{self.query(**extra)}"


def table(view: View, item: Table, numeric_from: int = 1) -> str:
    rows = item.rows + ([item.totals] if item.totals else [])
    numeric = {
        column
        for index, column in enumerate(item.columns)
        if index >= numeric_from
        and any(r.get(column) is not None for r in rows)
        and all(_numeric(r.get(column)) for r in rows if r.get(column) is not None)
    }

    def kind(column: str) -> str:
        return ' class="num"' if column in numeric else ""

    head = "".join(f"<th{kind(c)}>{_heading_cell(view, item, c)}</th>" for c in item.columns)
    body = []
    for row in item.rows:
        cells = []
        for column in item.columns:
            text = e(number(column, row.get(column)))
            if column in item.links and row.get("_href_" + column):
                text = f'<a href="{e(row["_href_" + column])}">{text}</a>'
            cells.append(f"<td{kind(column)}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    foot = ""
    if item.totals is not None:
        cells = [
            f"<td{kind(c)}>{e(number(c, item.totals.get(c))) if i else 'Total'}</td>"
            for i, c in enumerate(item.columns)
        ]
        foot = "<tfoot><tr>" + "".join(cells) + "</tr></tfoot>"
    empty = f'<p class="empty"{"" if not item.rows else " hidden"}>{e(item.empty)}</p>'
    download = f'<a class="csv" href="{e(view.href(view.path, csv=item.name))}">CSV</a>'
    return (
        f'<section class="table"><div class="head"><h2>{e(item.title)}</h2>{download}</div>'
        f'<div class="scroll"><table id="{e(item.name)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody>{foot}</table></div>{empty}</section>"
    )


def _heading_cell(view: View, item: Table, column: str) -> str:
    if not item.sortable:
        return e(heading(column))
    current = view.sort == column
    direction = "asc" if current and view.direction == "desc" else "desc"
    arrow = (" ▼" if view.direction == "desc" else " ▲") if current else ""
    href = view.href(view.path, sort=column, dir=direction)
    return f'<a href="{e(href)}">{e(heading(column))}{arrow}</a>'


def _numeric(value) -> bool:
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and value.replace(".", "", 1).lstrip("-").isdigit()


CARDS = (
    ("sent", "Sent"),
    ("clicks", "Raw clicks"),
    ("bot_clicks", "Bot clicks"),
    ("bot_pct", "Bot %"),
    ("unique_clicks", "Unique clicks"),
    ("click_rate", "Click rate"),
    ("conversions", "Conversions"),
    ("revenue", "Revenue"),
    ("payout", "Payout"),
    ("epc", "EPC"),
)


def cards(totals: dict) -> str:
    items = "".join(
        f'<div class="card" data-key="{e(key)}"><span class="label">{e(label)}</span>'
        f'<span class="value">{e(number(key, totals.get(key)))}</span></div>'
        for key, label in CARDS
    )
    return f'<section class="cards">{items}</section>'


def filled(points: list[dict], step: str, minimum: int) -> list[dict]:
    """The chart's steps with the empty ones between (and, for at least `minimum` steps, before)
    the ones that have clicks, so that time runs evenly along the axis."""
    if not points:
        return points
    unit = timedelta(hours=1) if step == "hour" else timedelta(days=1)
    shape = "%Y-%m-%d %H:00" if step == "hour" else "%Y-%m-%d"
    found = {p["at"]: p for p in points}
    last = datetime.strptime(points[-1]["at"], shape)
    first = min(datetime.strptime(points[0]["at"], shape), last - unit * (minimum - 1))
    if (last - first) / unit > 400:  # (a long range: only the steps that have clicks)
        return points
    result, moment = [], first
    while moment <= last:
        label = moment.strftime(shape)
        result.append(
            found.get(label)
            or {"at": label, "clicks": 0, "human_clicks": 0, "bot_clicks": 0, "revenue": "0.00"}
        )
        moment += unit
    return result


def chart(points: list[dict], title: str = "Clicks over time") -> str:
    """Stacked bars (people, bots) per step and revenue (a line with dots), as inline SVG."""
    if not points:
        return (
            f'<section class="chart"><h2>{e(title)}</h2>'
            '<p class="empty">No clicks yet.</p></section>'
        )
    width, height, pad = 720, 220, 28
    top = max(p["clicks"] for p in points) or 1
    money = [float(p["revenue"]) for p in points]
    top_money = max(money) or 1.0
    step = (width - 2 * pad) / len(points)
    bar = min(max(step * 0.7, 1.0), 40.0)
    base, tall = height - pad, height - 2 * pad
    parts, line = [], []
    for index, point in enumerate(points):
        x = pad + index * step + (step - bar) / 2
        human_h = tall * point["human_clicks"] / top
        bot_h = tall * point["bot_clicks"] / top
        label = (
            f"{point['at']}: {point['human_clicks']} people, {point['bot_clicks']} bots,"
            f" revenue {point['revenue']}"
        )
        parts.append(
            f"<g><title>{e(label)}</title>"
            f'<rect class="human" x="{x:.1f}" y="{base - human_h:.1f}" width="{bar:.1f}"'
            f' height="{human_h:.1f}"/>'
            f'<rect class="bot" x="{x:.1f}" y="{base - human_h - bot_h:.1f}" width="{bar:.1f}"'
            f' height="{bot_h:.1f}"/></g>'
        )
        line.append((x + bar / 2, base - tall * money[index] / top_money))
    revenue = ""
    if any(money):
        revenue = (
            f'<polyline class="revenue" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in line)}"/>'
        )
        revenue += "".join(
            f'<circle class="revenue" cx="{x:.1f}" cy="{y:.1f}" r="3.5"/>'
            for (x, y), amount in zip(line, money, strict=True)
            if amount
        )
        revenue += (
            f'<text x="{width - pad}" y="{pad - 8}" class="axis end">'
            f"{e(_money_label(top_money))} revenue</text>"
        )
    axis = (
        f'<line class="base" x1="{pad}" y1="{base}" x2="{width - pad}" y2="{base}"/>'
        f'<text x="{pad}" y="{pad - 8}" class="axis">{e(top)} clicks</text>'
        f'<text x="{pad}" y="{height - 8}" class="axis">{e(points[0]["at"])}</text>'
    )
    if len(points) > 1:
        axis += (
            f'<text x="{width - pad}" y="{height - 8}" class="axis end">'
            f"{e(points[-1]['at'])}</text>"
        )
    legend = (
        '<p class="legend"><span class="key human"></span>people '
        '<span class="key bot"></span>bots <span class="key revenue"></span>revenue</p>'
    )
    return (
        f'<section class="chart"><h2>{e(title)}</h2>{legend}'
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}">'
        f"{''.join(parts)}{revenue}{axis}</svg></section>"
    )


def _money_label(amount: float) -> str:
    return f"{amount:,.2f}"


def layout(view: View | None, title: str, body: str, status_line: str = "") -> str:
    nav = switcher = ranges = logout = banner = ""
    if view is not None:
        nav = "".join(
            f'<a href="{e(view.href(path))}"{here(_in_section(view.path, path))}>{e(label)}</a>'
            for path, label in NAV
        )
        options = "".join(
            f'<option value="{e(a["id"])}"{" selected" if a["id"] == view.account["id"] else ""}>'
            f"{e(a['name'])}</option>"
            for a in view.accounts
        )
        section = view.path.rsplit("/", 1)[0] if view.path.count("/") > 1 else view.path
        switcher = (
            f'<form class="switch" method="get" action="{e(section)}">'
            f'<label>Account <select name="account">{options}</select></label>'
            f'<input type="hidden" name="range" value="{e(view.range_key)}">'
            '<button type="submit">Go</button></form>'
        )
        links = "".join(
            f'<a href="{e(view.path)}?{e(_range_query(view, key))}"'
            f"{here(view.range_key == key)}>{e(label)}</a>"
            for key, label in RANGES
        )
        ranges = (
            ""
            if not _ranged(view.path)
            else (
                f'<div class="ranges">{links}'
                f'<form method="get" action="{e(view.path)}">'
                f'<input type="hidden" name="account" value="{e(view.account["id"])}">'
                '<input type="hidden" name="range" value="custom">'
                f'<input type="date" name="since" value="{e(view.since)}" aria-label="from">'
                f'<input type="date" name="until" value="{e(view.until)}" aria-label="to">'
                f'<button type="submit"{here(view.range_key == "custom")}>'
                "Custom</button></form></div>"
            )
        )
        if view.open_local:
            banner = (
                '<p class="banner">No dashboard user exists yet: this page is open to anyone'
                " on this machine. Add one with <code>trackly user add NAME --admin</code>.</p>"
            )
        else:
            logout = (
                '<form class="logout" method="post" action="/logout">'
                f"<span>{e(view.user_name)}</span>"
                '<button type="submit">Log out</button></form>'
            )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{e(title)} · Trackly</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<header><a class="brand" href="/">Trackly</a><nav>{nav}</nav>{logout}</header>
{banner}<div class="bar">{switcher}{ranges}</div>
<main>
<h1>{e(title)}</h1>
{f'<p class="sub">{e(status_line)}</p>' if status_line else ""}
{body}
</main>
</body>
</html>
"""


def _in_section(current: str, path: str) -> bool:
    return current == path or (path != "/" and current.startswith(path + "/"))


def _ranged(path: str) -> bool:
    """Whether the page's figures depend on the date range (not the live page, nor a contact's
    whole history)."""
    return not (path == "/live" or path.startswith("/contacts"))


def here(yes: bool) -> str:
    return ' class="here"' if yes else ""


def _range_query(view: View, key: str) -> str:
    return urlencode({"account": view.account["id"], "range": key})


def login_page(message: str = "", username: str = "") -> str:
    error = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    body = (
        f'{error}<form class="login" method="post" action="/login">'
        f'<label>User <input name="username" autocomplete="username" value="{e(username)}"'
        " required autofocus></label>"
        '<label>Password <input name="password" type="password"'
        ' autocomplete="current-password" required></label>'
        '<button type="submit">Log in</button></form>'
    )
    return layout(None, "Log in", body)


def message_page(title: str, text: str) -> str:
    return layout(None, title, f'<p class="error">{e(text)}</p><p><a href="/">Back</a></p>')


def mask_phone(phone: str | None) -> str:
    """+12025550143 -> +1202•••••43: enough to tell contacts apart on a shared screen."""
    if not phone:
        return ""
    if len(phone) <= 6:
        return phone[:2] + "•" * (len(phone) - 2)
    return phone[:5] + "•" * (len(phone) - 7) + phone[-2:]
