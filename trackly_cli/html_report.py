"""`trackly report --html`: one self-contained HTML file (inline CSS and SVG, no external
assets) with the report's table and a chart of unique clicks and revenue by day."""

from __future__ import annotations

from decimal import Decimal
from html import escape

from trackly_cli.core.reports import Report

CSS = (
    "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;"
    "color:#1d2330}h1{font-size:1.4rem;margin:0 0 .25rem}p.meta{color:#667;margin:0 0 1.5rem}"
    "table{border-collapse:collapse;margin:1rem 0 2rem}th,td{padding:.35rem .7rem;"
    "border-bottom:1px solid #e3e6ec;text-align:right;white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left}th{background:#f5f6f8}"
    "tfoot td{font-weight:600;border-top:2px solid #c9ced8}"
    ".legend span{display:inline-block;margin-right:1.2rem}.sw{display:inline-block;width:.8rem;"
    "height:.8rem;margin-right:.3rem;vertical-align:-.05rem}"
)
CLICKS_COLOUR = "#2457d6"
REVENUE_COLOUR = "#e07a1f"


def _cell(value) -> str:
    return "" if value is None else escape(str(value))


def table(report: Report, columns: list[str]) -> str:
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>"
        for row in report.rows
    )
    totals = report.totals | {columns[0]: "Total"}
    foot = "<tr>" + "".join(f"<td>{_cell(totals.get(c))}</td>" for c in columns) + "</tr>"
    return (
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody><tfoot>{foot}</tfoot></table>"
    )


def chart(days: Report, width: int = 860, height: int = 260) -> str:
    """Bars of unique clicks per day and a line of revenue per day, in inline SVG."""
    if not days.rows:
        return "<p>No activity in this range.</p>"
    left, right, top, bottom = 48, 56, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    clicks = [r["unique_clicks"] for r in days.rows]
    revenue = [Decimal(r["revenue"]) for r in days.rows]
    max_clicks = max(max(clicks), 1)
    max_revenue = max(max(revenue), Decimal(1))
    step = plot_w / len(days.rows)
    bar = max(step * 0.7, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img"'
        ' aria-label="Unique clicks and revenue by day">'
    ]
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}"'
        f' y2="{top + plot_h}" stroke="#c9ced8"/>'
    )
    points = []
    for index, row in enumerate(days.rows):
        x = left + index * step + (step - bar) / 2
        h = plot_h * clicks[index] / max_clicks
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}"'
            f' fill="{CLICKS_COLOUR}"><title>{escape(row["day"])}: {clicks[index]} unique'
            f" clicks, {escape(row['revenue'])} revenue</title></rect>"
        )
        cy = top + plot_h - float(plot_h * revenue[index] / max_revenue)
        points.append(f"{left + index * step + step / 2:.1f},{cy:.1f}")
        if len(days.rows) <= 31 or index % max(1, len(days.rows) // 15) == 0:
            parts.append(
                f'<text x="{left + index * step + step / 2:.1f}" y="{height - 20}"'
                f' font-size="10" text-anchor="middle" fill="#667">'
                f"{escape(row['day'][5:])}</text>"
            )
    parts.append(
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{REVENUE_COLOUR}"'
        ' stroke-width="2"/>'
    )
    parts.append(
        f'<text x="{left - 6}" y="{top + 10}" font-size="10" text-anchor="end"'
        f' fill="{CLICKS_COLOUR}">{max_clicks}</text>'
    )
    parts.append(
        f'<text x="{left + plot_w + 6}" y="{top + 10}" font-size="10"'
        f' fill="{REVENUE_COLOUR}">{escape(str(max_revenue))}</text>'
    )
    parts.append("</svg>")
    legend = (
        f'<p class="legend"><span><i class="sw" style="background:{CLICKS_COLOUR}"></i>'
        f'unique clicks</span><span><i class="sw" style="background:{REVENUE_COLOUR}">'
        "</i>revenue</span></p>"
    )
    return "".join(parts) + legend


def page(title: str, subtitle: str, report: Report, columns: list[str], days: Report) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<p class="meta">{escape(subtitle)}</p>
<h2>Unique clicks and revenue by day</h2>
{chart(days)}
<h2>By {escape(report.by)}</h2>
{table(report, columns)}
</body>
</html>
"""
