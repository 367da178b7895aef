"""Conversions: GET /conv, /conv/offer and /pixel/<link_id>.gif in-process (WebTest) over the real
app and database; attribution, dedup, refunds, payout, the postback secret and IP allowlist; and
`trackly conversions` (listing and import) through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import HUMAN_HEADERS, execute, query

CURL = {"User-Agent": "curl/8.5.0"}
CLICKED_AT = "2026-03-01T12:00:00.000000Z"


# --- helpers ------------------------------------------------------------------------------------


def conversions(db_path: Path) -> list[dict]:
    return query(db_path, "SELECT * FROM conversions ORDER BY id")


def message_clicks(db_path: Path, message_id: int) -> list[dict]:
    return query(
        db_path, "SELECT * FROM message_clicks WHERE message_id = ? ORDER BY id", message_id
    )


def offer_id(db_path: Path, name: str = "Summer Sale") -> int:
    return query(db_path, "SELECT id FROM offers WHERE name = ?", name)[0]["id"]


def rollup(db_path: Path, offer: int) -> dict:
    """report_rollups summed for one offer."""
    return query(
        db_path,
        "SELECT sum(conversions) AS conversions, sum(revenue_micros) AS revenue_micros,"
        " sum(payout_micros) AS payout_micros,"
        " sum(unattributed_conversions) AS unattributed_conversions,"
        " sum(unattributed_revenue_micros) AS unattributed_revenue_micros"
        " FROM report_rollups WHERE offer_id = ?",
        offer,
    )[0]


def conv(app, params: dict | str, *, status: int = 200, path: str = "/conv", **kw) -> dict:
    """A postback; returns its JSON answer after checking the status."""
    qs = params if isinstance(params, str) else urlencode(params)
    response = app.get(f"{path}?{qs}", status=status, **kw)
    assert response.content_type == "application/json", response
    return response.json


def refused(app, db_path: Path, params: dict | str, status: int = 400, **kw) -> str:
    """A postback that must be refused with `status`, a reason, and nothing recorded."""
    before = conversions(db_path)
    answer = conv(app, params, status=status, **kw)
    assert answer["status"] == "error", answer
    assert answer["error"], answer
    assert conversions(db_path) == before
    return answer["error"]


def click(app, link_id: str, headers: dict | None = None, **kw):
    response = app.get(f"/{link_id}", headers=headers or HUMAN_HEADERS, **kw)
    assert response.status_int in (200, 302), response
    return response


def secret(cli, name: str = "Summer Sale", *extra: str) -> str:
    return cli.json("offer", "show", name, *extra)["postback_secret"]


@pytest.fixture
def links(campaign) -> dict:
    """link1 (Summer Sale) and link2 (a plain URL) of each of the three messages."""
    return campaign["by_slot"]


# --- the Must-show ------------------------------------------------------------------------------


def test_click_then_the_same_postback_twice_records_one_attributed_conversion(
    webapp, links, db_path
):
    app = webapp()
    link = links["link1"][0]
    click(app, link["id"])
    first_clicks = message_clicks(db_path, link["message_id"])
    assert len(first_clicks) == 1

    first = conv(app, f"cid={link['id']}&amount=24.99&txid=A1")
    second = conv(app, f"cid={link['id']}&amount=24.99&txid=A1")

    assert first["status"] == "recorded"
    assert first["attribution"] == "attributed"
    assert second["status"] == "duplicate"
    assert second["conversion_id"] == first["conversion_id"]
    rows = conversions(db_path)
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == first["conversion_id"]
    assert row["revenue_micros"] == 24_990_000
    assert row["payout_micros"] == 2_500_000
    assert row["txn_id"] == "A1"
    assert row["event"] == "sale"
    assert row["is_reversal"] == 0
    assert row["source"] == "conv"
    assert row["attribution"] == "attributed"
    assert row["message_click_id"] == first_clicks[0]["id"]
    assert row["link_id"] == link["id"]
    assert row["message_id"] == link["message_id"]
    assert row["contact_id"] == link["contact_id"]
    assert row["offer_id"] == offer_id(db_path)
    assert row["ip"] == "198.51.100.7"
    totals = rollup(db_path, offer_id(db_path))
    assert totals["conversions"] == 1
    assert totals["revenue_micros"] == 24_990_000
    assert totals["payout_micros"] == 2_500_000
    assert totals["unattributed_conversions"] == 0


def test_the_first_click_of_the_message_is_the_one_attributed(webapp, links, db_path):
    """A second (repeat) click does not become the MessageClick; the conversion goes to the
    first, even when it came through the message's other link."""
    app = webapp()
    link1, link2 = links["link1"][1], links["link2"][1]
    click(app, link2["id"])
    click(app, link1["id"])
    click(app, link1["id"])
    (first,) = message_clicks(db_path, link1["message_id"])
    assert first["link_id"] == link2["id"]
    answer = conv(app, {"link_id": link1["id"], "revenue": "5", "txn_id": "F1"})
    assert answer["attribution"] == "attributed"
    assert conversions(db_path)[0]["message_click_id"] == first["id"]


# --- aliases ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["link_id", "click_id", "clickid", "cid", "subid"])
def test_link_id_aliases(webapp, links, db_path, alias):
    app = webapp()
    link = links["link1"][0]
    answer = conv(app, {alias: link["id"], "txn_id": f"T-{alias}"})
    assert answer["status"] == "recorded"
    assert conversions(db_path)[0]["link_id"] == link["id"]


@pytest.mark.parametrize("alias", ["revenue", "amount"])
def test_revenue_aliases(webapp, links, db_path, alias):
    app = webapp()
    conv(app, {"link_id": links["link1"][0]["id"], alias: "12.34", "txn_id": "R"})
    assert conversions(db_path)[0]["revenue_micros"] == 12_340_000


@pytest.mark.parametrize("alias", ["txn_id", "txid", "tid", "order_id"])
def test_txn_id_aliases(webapp, links, db_path, alias):
    app = webapp()
    link_id = links["link1"][0]["id"]
    first = conv(app, {"link_id": link_id, alias: "ORD-77"})
    assert first["status"] == "recorded"
    assert conversions(db_path)[0]["txn_id"] == "ORD-77"
    # the same transaction under the canonical name is the same conversion
    again = conv(app, {"link_id": link_id, "txn_id": "ORD-77"})
    assert again == {**first, "status": "duplicate"}


@pytest.mark.parametrize("alias", ["event", "goal", "type"])
def test_event_aliases(webapp, links, db_path, alias):
    app = webapp()
    conv(app, {"link_id": links["link1"][0]["id"], alias: "lead", "txn_id": "E"})
    assert conversions(db_path)[0]["event"] == "lead"


@pytest.mark.parametrize(
    "params",
    [
        "link_id={a}&txid=A&txn_id=B",
        "link_id={a}&tid=A&order_id=B",
        "link_id={a}&cid={b}",
        "click_id={a}&subid={b}",
        "link_id={a}&revenue=1&amount=2",
        "link_id={a}&event=lead&goal=sale",
        "link_id={a}&txn_id=A&txn_id=B",
    ],
)
def test_conflicting_duplicate_parameters_are_refused(webapp, links, db_path, params):
    app = webapp()
    a, b = links["link1"][0]["id"], links["link1"][1]["id"]
    error = refused(app, db_path, params.format(a=a, b=b))
    assert "twice" in error


def test_the_same_value_under_two_aliases_is_fine(webapp, links, db_path):
    app = webapp()
    link_id = links["link1"][0]["id"]
    answer = conv(app, f"link_id={link_id}&cid={link_id}&txid=A&txn_id=A&amount=3&revenue=3")
    assert answer["status"] == "recorded"
    row = conversions(db_path)[0]
    assert (row["txn_id"], row["revenue_micros"]) == ("A", 3_000_000)


def test_an_affiliate_network_template_works_unchanged(webapp, links, db_path):
    """https://go.brand.link/conv?cid={sub1}&payout={payout}&txid={transaction_id}&goal=…"""
    app = webapp()
    link_id = links["link1"][2]["id"]
    answer = conv(app, f"cid={link_id}&payout=3.10&txid=NET-1&goal=install&amount=0")
    assert answer["status"] == "recorded"
    row = conversions(db_path)[0]
    assert (row["link_id"], row["event"], row["txn_id"]) == (link_id, "install", "NET-1")
    assert (row["revenue_micros"], row["payout_micros"]) == (0, 3_100_000)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount",
    [
        "abc",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        "1e400",
        "1e3",
        "1.23456",
        "0.00001",
        "99999999999",
        "10000000.01",
        "1,5",
        "0x10",
        "1.2.3",
        " x ",
        "1 000",
    ],
)
@pytest.mark.parametrize("name", ["revenue", "amount", "payout"])
def test_bad_amounts_are_refused(webapp, links, db_path, name, amount):
    app = webapp()
    error = refused(app, db_path, {"link_id": links["link1"][0]["id"], name: amount})
    assert ("payout" if name == "payout" else "revenue") in error


@pytest.mark.parametrize("name", ["revenue", "amount", "payout"])
def test_a_negative_amount_on_a_sale_is_refused(webapp, links, db_path, name):
    app = webapp()
    error = refused(app, db_path, {"link_id": links["link1"][0]["id"], name: "-5"})
    assert "negative" in error
    assert ("payout" if name == "payout" else "revenue") in error


@pytest.mark.parametrize("event", ["lead", "refund"])
def test_a_negative_amount_on_a_non_reversal_event_is_refused(acme, webapp, links, db_path, event):
    """Negative amounts only through refund/chargeback."""
    app = webapp()
    params = {"link_id": links["link1"][0]["id"], "revenue": "-5", "event": event}
    if event == "refund":
        params["postback_secret"] = secret(acme)
        answer = conv(app, params)
        assert answer["status"] == "recorded"
        assert conversions(db_path)[0]["revenue_micros"] == -5_000_000
    else:
        refused(app, db_path, params)


def test_amounts_at_the_limits_are_stored_exactly(webapp, links, db_path):
    app = webapp()
    link_id = links["link1"][0]["id"]
    conv(app, {"link_id": link_id, "revenue": "0.0001", "txn_id": "small"})
    conv(app, {"link_id": link_id, "revenue": "10000000", "txn_id": "large"})
    conv(app, {"link_id": link_id, "revenue": "+19.9900", "txn_id": "plus"})
    assert [r["revenue_micros"] for r in conversions(db_path)] == [
        100,
        10_000_000_000_000,
        19_990_000,
    ]


def test_an_over_long_txn_id_is_refused_not_truncated(webapp, links, db_path):
    app = webapp()
    link_id = links["link1"][0]["id"]
    error = refused(app, db_path, {"link_id": link_id, "txn_id": "x" * 129})
    assert "txn_id" in error and "128" in error
    answer = conv(app, {"link_id": link_id, "txn_id": "y" * 128})
    assert answer["status"] == "recorded"
    assert conversions(db_path)[0]["txn_id"] == "y" * 128


def test_a_non_ascii_txn_id_is_stored_as_sent(acme, webapp, links, db_path, tmp_path):
    """Query strings are UTF-8: txid=caf%C3%A9 is the transaction 'café', the same one a
    network's CSV report names, so importing that report finds it a duplicate."""
    app = webapp()
    link_id = links["link1"][0]["id"]
    answer = conv(app, f"link_id={link_id}&txid=caf%C3%A9-%E2%82%AC1&amount=5")
    assert answer["status"] == "recorded"
    assert conversions(db_path)[0]["txn_id"] == "café-€1"
    result = import_csv(
        acme, tmp_path, f"link_id,txn_id,revenue\n{link_id},café-€1,5\n", "--format", "json"
    )
    assert json.loads(result.stdout)["duplicates"] == 1
    assert len(conversions(db_path)) == 1


def test_the_length_limit_counts_characters_not_bytes(webapp, links, db_path):
    app = webapp()
    link_id = links["link1"][0]["id"]
    answer = conv(app, {"link_id": link_id, "txn_id": "é" * 128})
    assert answer["status"] == "recorded"
    assert conversions(db_path)[0]["txn_id"] == "é" * 128


def test_a_txn_id_with_control_characters_is_refused(webapp, links, db_path):
    app = webapp()
    refused(app, db_path, {"link_id": links["link1"][0]["id"], "txn_id": "A\n1"})


@pytest.mark.parametrize(
    "name",
    ["link_id", "cid", "revenue", "amount", "payout", "txn_id", "txid", "event", "goal", "type"],
)
def test_any_parameter_over_256_characters_is_refused(webapp, links, db_path, name):
    app = webapp()
    params = {"link_id": links["link1"][0]["id"], "txn_id": "L"}
    params[name] = ("1" if name in ("revenue", "amount", "payout") else "a") * 257
    error = refused(app, db_path, params)
    assert name in error and "256" in error


@pytest.mark.parametrize("event", ["Sale!", "s" * 33, "sale-1", "two words", "caf\u00e9", ""])
def test_bad_event_names_are_refused(webapp, links, db_path, event):
    app = webapp()
    params = {"link_id": links["link1"][0]["id"], "event": event}
    if event == "":
        # an empty event is the default one
        assert conv(app, params)["status"] == "recorded"
        assert conversions(db_path)[0]["event"] == "sale"
        return
    error = refused(app, db_path, params)
    assert "event" in error


@pytest.mark.parametrize("link_id", ["abc", "abcdefgh", "abc!def", "abc%20de", "\u00e9bcdefg"])
def test_a_malformed_link_id_is_refused(webapp, campaign, db_path, link_id):
    app = webapp()
    error = refused(app, db_path, f"link_id={link_id}&txn_id=M")
    # 'é' sent as a raw Latin-1 byte makes the whole query string invalid UTF-8
    assert "link_id" in error or "not UTF-8" in error


def test_a_missing_link_id_is_refused(webapp, campaign, db_path):
    app = webapp()
    error = refused(app, db_path, {"revenue": "1", "txn_id": "M"})
    assert "link_id" in error


def test_an_unknown_link_is_404(webapp, campaign, db_path):
    app = webapp()
    error = refused(app, db_path, {"link_id": "ZZZZZZZ", "txn_id": "U"}, status=404)
    assert "ZZZZZZZ" in error


def test_a_link_of_another_accounts_domain_is_404(webapp, acme, links, db_path):
    acme("account", "create", "globex")
    acme("domain", "add", "go.globex.test", "--account", "globex")
    app = webapp()
    link_id = links["link1"][0]["id"]
    refused(
        app,
        db_path,
        {"link_id": link_id, "txn_id": "G"},
        status=404,
        extra_environ={"HTTP_HOST": "go.globex.test"},
    )
    # on its own domain the same postback is recorded
    assert conv(app, {"link_id": link_id, "txn_id": "G"})["status"] == "recorded"


@pytest.mark.parametrize("host", ["evil.example", "localhost", "127.0.0.1", "go.acme.test..", ""])
def test_a_non_tracking_host_is_404(webapp, links, db_path, host):
    app = webapp()
    refused(
        app,
        db_path,
        {"link_id": links["link1"][0]["id"], "txn_id": "H"},
        status=404 if host else 400,  # (no Host header at all: a bad request)
        extra_environ={"HTTP_HOST": host},
    )


def test_the_tracking_host_is_matched_case_insensitively_and_with_a_port(webapp, links, db_path):
    app = webapp()
    answer = conv(
        app,
        {"link_id": links["link1"][0]["id"], "txn_id": "P"},
        extra_environ={"HTTP_HOST": "GO.Acme.test:8080"},
    )
    assert answer["status"] == "recorded"


# --- events -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event", ["lead", "sale", "rebill", "install", "signup", "trial_day_7", "x", "a" * 32, "LEAD"]
)
def test_events(webapp, links, db_path, event):
    app = webapp()
    answer = conv(app, {"link_id": links["link1"][0]["id"], "event": event, "revenue": "4"})
    assert answer["status"] == "recorded"
    row = conversions(db_path)[0]
    assert row["event"] == event.lower()
    assert row["is_reversal"] == 0
    assert row["revenue_micros"] == 4_000_000


def test_the_default_event_is_sale(webapp, links, db_path):
    app = webapp()
    conv(app, {"link_id": links["link1"][0]["id"]})
    row = conversions(db_path)[0]
    assert row["event"] == "sale"
    assert row["revenue_micros"] == 0


def test_a_refund_reusing_the_sale_txn_id_reverses_it(acme, webapp, links, db_path):
    app = webapp()
    link = links["link1"][0]
    click(app, link["id"])
    sale = conv(app, {"link_id": link["id"], "revenue": "30", "txn_id": "S1"})
    refund = conv(
        app,
        {"postback_secret": secret(acme), "link_id": link["id"], "event": "refund", "txn_id": "S1"},
    )
    again = conv(
        app,
        {"postback_secret": secret(acme), "link_id": link["id"], "event": "refund", "txn_id": "S1"},
    )

    assert sale["status"] == "recorded"
    assert refund["status"] == "recorded"
    assert refund["conversion_id"] != sale["conversion_id"]
    assert refund["attribution"] == "attributed"
    assert again["status"] == "duplicate"
    assert again["conversion_id"] == refund["conversion_id"]
    rows = conversions(db_path)
    assert len(rows) == 2
    reversal = rows[1]
    assert reversal["event"] == "refund"
    assert reversal["is_reversal"] == 1
    assert reversal["revenue_micros"] == -30_000_000
    assert reversal["payout_micros"] == -2_500_000
    for key in ("link_id", "offer_id", "message_id", "message_click_id", "attribution"):
        assert reversal[key] == rows[0][key], key
    totals = rollup(db_path, offer_id(db_path))
    assert totals["conversions"] == 1  # a reversal is not a conversion
    assert totals["revenue_micros"] == 0
    assert totals["payout_micros"] == 0


def test_a_refund_of_a_sale_through_another_route_inherits_it(webapp, links, db_path):
    """The network refunds through /conv/offer without a link: it still reverses the sale of
    the link, with that sale's attribution."""
    app = webapp()
    link = links["link1"][0]
    click(app, link["id"])
    conv(app, {"link_id": link["id"], "revenue": "20", "txn_id": "S9"})
    refund = conv(
        app,
        {
            "offer_id": offer_id(db_path),
            "postback_secret": query(db_path, "SELECT postback_secret FROM offers")[0][
                "postback_secret"
            ],
            "event": "refund",
            "revenue": "5",
            "txn_id": "S9",
        },
        path="/conv/offer",
    )
    assert refund == {**refund, "status": "recorded", "attribution": "attributed"}
    rows = conversions(db_path)
    assert rows[1]["link_id"] == link["id"]
    assert rows[1]["revenue_micros"] == -5_000_000
    assert rollup(db_path, offer_id(db_path))["revenue_micros"] == 15_000_000


def test_chargebacks_subtract_and_reports_show_net_revenue(acme, webapp, links, db_path):
    app = webapp()
    link = links["link1"][1]
    click(app, link["id"])
    conv(app, {"link_id": link["id"], "revenue": "50", "txn_id": "C1"})
    conv(app, {"link_id": link["id"], "revenue": "10.5", "txn_id": "C2"})
    answer = conv(
        app,
        {
            "link_id": link["id"],
            "postback_secret": secret(acme),
            "event": "chargeback",
            "amount": "20",
            "txn_id": "C1",
        },
    )
    assert answer["status"] == "recorded"
    rows = conversions(db_path)
    assert [(r["event"], r["revenue_micros"]) for r in rows] == [
        ("sale", 50_000_000),
        ("sale", 10_500_000),
        ("chargeback", -20_000_000),
    ]
    totals = rollup(db_path, offer_id(db_path))
    assert totals["conversions"] == 2
    assert totals["revenue_micros"] == 40_500_000
    assert totals["payout_micros"] == 2_500_000  # 2 × 2.50 − 2.50


def test_a_refund_without_a_txn_id_subtracts_its_amount_at_once(acme, webapp, links, db_path):
    """(A refund naming a txn_id whose sale is unknown waits for it: see the end of this file.)"""
    app = webapp()
    link = links["link1"][0]
    click(app, link["id"])
    conv(app, {"link_id": link["id"], "revenue": "8", "txn_id": "K1"})
    waiting = conv(
        app,
        {
            "postback_secret": secret(acme),
            "link_id": link["id"],
            "event": "refund",
            "revenue": "3",
            "txn_id": "X",
        },
    )
    assert waiting["status"] == "pending"
    conv(
        app,
        {"postback_secret": secret(acme), "link_id": link["id"], "event": "refund", "revenue": "3"},
    )
    rows = conversions(db_path)
    assert len(rows) == 2
    assert rows[1]["revenue_micros"] == -3_000_000
    assert rows[1]["is_reversal"] == 1
    totals = rollup(db_path, offer_id(db_path))
    assert totals["revenue_micros"] == 5_000_000
    assert totals["conversions"] == 1


def test_a_sale_reusing_a_refund_txn_id_is_still_a_duplicate_of_the_sale(
    acme, webapp, links, db_path
):
    app = webapp()
    link_id = links["link1"][0]["id"]
    sale = conv(app, {"link_id": link_id, "revenue": "8", "txn_id": "D1"})
    conv(
        app,
        {"postback_secret": secret(acme), "link_id": link_id, "event": "refund", "txn_id": "D1"},
    )
    again = conv(app, {"link_id": link_id, "revenue": "8", "txn_id": "D1"})
    assert again["status"] == "duplicate"
    assert again["conversion_id"] == sale["conversion_id"]
    assert len(conversions(db_path)) == 2


# --- dedup without txn_id -----------------------------------------------------------------------


def test_without_txn_id_one_conversion_per_link_and_event(webapp, links, db_path):
    app = webapp()
    link_id = links["link1"][0]["id"]
    first = conv(app, {"link_id": link_id, "revenue": "9"})
    again = conv(app, {"link_id": link_id, "revenue": "9"})
    other_amount = conv(app, {"link_id": link_id, "revenue": "11"})
    lead = conv(app, {"link_id": link_id, "event": "lead"})
    other_link = conv(app, {"link_id": links["link1"][1]["id"], "revenue": "9"})

    assert first["status"] == "recorded"
    assert again == {**first, "status": "duplicate"}
    assert other_amount == {**first, "status": "duplicate"}
    assert lead["status"] == "recorded"
    assert other_link["status"] == "recorded"
    rows = conversions(db_path)
    assert [(r["link_id"], r["event"], r["revenue_micros"]) for r in rows] == [
        (link_id, "sale", 9_000_000),
        (link_id, "lead", 0),
        (links["link1"][1]["id"], "sale", 9_000_000),
    ]


def test_txn_ids_are_unique_per_account_across_links(webapp, links, db_path):
    app = webapp()
    first = conv(app, {"link_id": links["link1"][0]["id"], "txn_id": "X"})
    other = conv(app, {"link_id": links["link1"][1]["id"], "txn_id": "X"})
    assert other == {**first, "status": "duplicate"}
    assert len(conversions(db_path)) == 1


# --- payout -------------------------------------------------------------------------------------


def test_payout_is_the_offers_unless_the_postback_carries_one(webapp, links, db_path):
    app = webapp()
    link_id = links["link1"][0]["id"]
    conv(app, {"link_id": link_id, "revenue": "10", "txn_id": "P1"})
    conv(app, {"link_id": link_id, "revenue": "10", "payout": "1.25", "txn_id": "P2"})
    conv(app, {"link_id": link_id, "revenue": "10", "payout": "0", "txn_id": "P3"})
    conv(app, {"link_id": links["link2"][0]["id"], "revenue": "10", "txn_id": "P4"})
    payouts = [r["payout_micros"] for r in conversions(db_path)]
    assert payouts == [2_500_000, 1_250_000, 0, 0]  # a plain-URL link has no offer to pay


def test_a_new_offer_payout_applies_to_later_conversions(acme, webapp, links, db_path):
    acme("offer", "update", "Summer Sale", "--payout", "4")
    app = webapp()
    conv(app, {"link_id": links["link1"][0]["id"], "txn_id": "NP"})
    assert conversions(db_path)[0]["payout_micros"] == 4_000_000


# --- attribution window -------------------------------------------------------------------------


def import_csv(cli, tmp_path: Path, text: str, *args: str, code: int = 0, name: str = "in.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return cli("conversions", "import", path, *args, code=code)


def test_attribution_window_edges(acme, webapp, links, db_path, tmp_path):
    acme("offer", "update", "Summer Sale", "--attribution-days", "1")
    app = webapp()
    clicked, never = links["link1"][0], links["link1"][1]
    click(app, clicked["id"])
    (first,) = message_clicks(db_path, clicked["message_id"])
    execute(
        db_path, "UPDATE message_clicks SET clicked_at = ? WHERE id = ?", CLICKED_AT, first["id"]
    )

    result = import_csv(
        acme,
        tmp_path,
        "cid,event,amount,txid,time\n"
        f"{clicked['id']},sale,10,IN,2026-03-02T11:59:00Z\n"
        f"{clicked['id']},sale,20,OUT,2026-03-02T12:01:00Z\n"
        f"{clicked['id']},sale,40,BEFORE,2026-03-01T11:59:00Z\n"
        f"{never['id']},sale,30,NONE,2026-03-02T11:00:00Z\n",
        "--format",
        "json",
    )
    assert json.loads(result.stdout) == {
        "rows": 4,
        "recorded": 4,
        "duplicates": 0,
        "pending": 0,
        "invalid": 0,
    }
    rows = {r["txn_id"]: r for r in conversions(db_path)}
    assert rows["IN"]["attribution"] == "attributed"
    assert rows["IN"]["message_click_id"] == first["id"]
    assert rows["IN"]["converted_at"] == "2026-03-02T11:59:00.000000Z"
    assert rows["OUT"]["attribution"] == "outside_window"
    assert rows["BEFORE"]["attribution"] == "outside_window"
    assert rows["NONE"]["attribution"] == "no_click"
    assert rows["NONE"]["message_click_id"] is None
    assert {r["source"] for r in rows.values()} == {"import"}

    totals = rollup(db_path, offer_id(db_path))
    assert totals["conversions"] == 1
    assert totals["revenue_micros"] == 10_000_000
    assert totals["payout_micros"] == 2_500_000
    assert totals["unattributed_conversions"] == 3
    assert totals["unattributed_revenue_micros"] == 90_000_000

    listed = acme.json("conversions")
    assert {r["txn_id"]: r["attribution"] for r in listed} == {
        "IN": "attributed",
        "OUT": "outside_window",
        "BEFORE": "outside_window",
        "NONE": "no_click",
    }


def test_the_default_window_is_seven_days(acme, webapp, links, db_path, tmp_path):
    app = webapp()
    link = links["link1"][0]
    click(app, link["id"])
    (first,) = message_clicks(db_path, link["message_id"])
    execute(
        db_path, "UPDATE message_clicks SET clicked_at = ? WHERE id = ?", CLICKED_AT, first["id"]
    )
    import_csv(
        acme,
        tmp_path,
        "link_id,revenue,txn_id,time\n"
        f"{link['id']},1,IN,2026-03-08T11:59:00Z\n"
        f"{link['id']},1,OUT,2026-03-08T12:01:00Z\n",
    )
    rows = {r["txn_id"]: r["attribution"] for r in conversions(db_path)}
    assert rows == {"IN": "attributed", "OUT": "outside_window"}


def test_a_live_postback_for_a_link_never_clicked_is_no_click(webapp, links, db_path):
    app = webapp()
    answer = conv(app, {"link_id": links["link1"][2]["id"], "revenue": "7", "txn_id": "NC"})
    assert answer["attribution"] == "no_click"
    totals = rollup(db_path, offer_id(db_path))
    assert totals["conversions"] == 0
    assert totals["revenue_micros"] == 0
    assert totals["unattributed_conversions"] == 1
    assert totals["unattributed_revenue_micros"] == 7_000_000


# --- promotion of a bot-flagged click -----------------------------------------------------------


def test_a_conversion_promotes_the_earliest_bot_click(webapp, links, db_path):
    app = webapp()
    link = links["link1"][0]
    click(app, link["id"], headers=CURL)
    click(app, link["id"], headers=CURL)
    hits = query(
        db_path, "SELECT * FROM message_short_link_clicks WHERE link_id = ? ORDER BY id", link["id"]
    )
    assert [h["is_bot"] for h in hits] == [1, 1]
    assert message_clicks(db_path, link["message_id"]) == []

    answer = conv(app, {"link_id": link["id"], "revenue": "15", "txn_id": "B1"})

    assert answer["attribution"] == "attributed"
    (promoted,) = message_clicks(db_path, link["message_id"])
    earliest = min(hits, key=lambda h: (h["clicked_at"], h["id"]))
    assert promoted["source"] == "promoted"
    assert promoted["reason"]
    assert promoted["click_id"] == earliest["id"]
    assert promoted["clicked_at"] == earliest["clicked_at"]
    assert promoted["contact_id"] == link["contact_id"]
    assert promoted["link_id"] == link["id"]
    assert conversions(db_path)[0]["message_click_id"] == promoted["id"]
    assert rollup(db_path, offer_id(db_path))["conversions"] == 1


def test_no_promotion_when_a_human_clicked(webapp, links, db_path):
    app = webapp()
    link = links["link1"][0]
    click(app, link["id"], headers=CURL)
    click(app, link["id"])
    (human,) = message_clicks(db_path, link["message_id"])
    assert human["source"] == "click"
    conv(app, {"link_id": link["id"], "txn_id": "B2"})
    assert message_clicks(db_path, link["message_id"]) == [human]
    assert conversions(db_path)[0]["message_click_id"] == human["id"]


# --- /conv/offer --------------------------------------------------------------------------------


def offer_postback(db_path: Path, cli, **extra) -> dict:
    return {"offer_id": offer_id(db_path), "postback_secret": secret(cli), **extra}


def test_offer_postback_without_a_message(acme, webapp, campaign, db_path):
    params = offer_postback(db_path, acme, revenue="19.99", txn_id="O1", event="lead")
    app = webapp()
    answer = conv(app, params, path="/conv/offer")
    assert answer["status"] == "recorded"
    assert answer["attribution"] == "no_message"
    assert conv(app, params, path="/conv/offer") == {**answer, "status": "duplicate"}
    (row,) = conversions(db_path)
    assert row["offer_id"] == offer_id(db_path)
    assert row["link_id"] is None and row["message_id"] is None
    assert row["message_click_id"] is None
    assert (row["event"], row["revenue_micros"], row["payout_micros"]) == (
        "lead",
        19_990_000,
        2_500_000,
    )
    assert row["source"] == "conv_offer"
    totals = rollup(db_path, offer_id(db_path))
    assert totals["unattributed_conversions"] == 1
    assert totals["conversions"] == 0


def test_offer_postback_with_a_message_id_is_attributed_to_its_first_click(
    acme, webapp, links, db_path
):
    app = webapp()
    link = links["link1"][1]
    click(app, link["id"])
    (first,) = message_clicks(db_path, link["message_id"])
    params = offer_postback(db_path, acme, message_id=str(link["message_id"]), txn_id="O2")
    answer = conv(app, params, path="/conv/offer")
    assert answer["attribution"] == "attributed"
    (row,) = conversions(db_path)
    assert row["message_id"] == link["message_id"]
    assert row["link_id"] == link["id"]
    assert row["contact_id"] == link["contact_id"]
    assert row["message_click_id"] == first["id"]


def test_offer_postback_with_a_link_id(acme, webapp, links, db_path):
    app = webapp()
    link = links["link1"][2]
    click(app, link["id"])
    for name in ("link_id", "cid"):
        params = offer_postback(db_path, acme, **{name: link["id"], "txn_id": f"O-{name}"})
        answer = conv(app, params, path="/conv/offer")
        assert answer["status"] == "recorded"
        assert answer["attribution"] == "attributed"
    assert [r["link_id"] for r in conversions(db_path)] == [link["id"], link["id"]]


@pytest.mark.parametrize("given", [None, "", "wrong", "x" * 64, "SECRET-upper"])
def test_offer_postback_with_a_missing_or_wrong_secret_is_403(acme, webapp, links, db_path, given):
    real = secret(acme)
    params = {"offer_id": offer_id(db_path), "txn_id": "W", "revenue": "5"}
    if given == "SECRET-upper":
        given = real.upper() if real.upper() != real else real + "x"
    if given is not None:
        params["postback_secret"] = given
    app = webapp()
    error = refused(app, db_path, params, status=403, path="/conv/offer")
    assert "secret" in error
    # with a link or message it is refused all the same
    params["link_id"] = links["link1"][0]["id"]
    refused(app, db_path, params, status=403, path="/conv/offer")


def test_the_secret_of_another_offer_is_403(acme, webapp, campaign, db_path):
    acme("offer", "create", "Winter", "--url", "https://shop.example/winter", "--payout", "1")
    app = webapp()
    params = {
        "offer_id": offer_id(db_path),
        "postback_secret": secret(acme, "Winter"),
        "txn_id": "OS",
    }
    refused(app, db_path, params, status=403, path="/conv/offer")
    # and each secret works for its own offer
    params["offer_id"] = offer_id(db_path, "Winter")
    assert conv(app, params, path="/conv/offer")["status"] == "recorded"


def test_a_rotated_secret_replaces_the_old_one(acme, webapp, campaign, db_path):
    old = secret(acme)
    acme("offer", "rotate-secret", "Summer Sale")
    new = secret(acme)
    assert new != old
    app = webapp()
    params = {"offer_id": offer_id(db_path), "txn_id": "RS"}
    refused(app, db_path, {**params, "postback_secret": old}, status=403, path="/conv/offer")
    answer = conv(app, {**params, "postback_secret": new}, path="/conv/offer")
    assert answer["status"] == "recorded"


@pytest.mark.parametrize("ref", ["99999", "", "abc", "1.0", "-1", "1" * 30])
def test_an_unknown_offer_id_is_404(acme, webapp, campaign, db_path, ref):
    app = webapp()
    params = {"postback_secret": secret(acme), "txn_id": "U"}
    if ref:
        params["offer_id"] = ref
    refused(app, db_path, params, status=404, path="/conv/offer")


def test_the_offer_of_another_account_is_404(acme, webapp, campaign, db_path):
    acme("account", "create", "globex")
    acme("domain", "add", "go.globex.test", "--account", "globex")
    acme(
        "offer", "create", "Globex Deal", "--url", "https://globex.example/", "--account", "globex"
    )
    globex = acme.json("offer", "show", "Globex Deal", "--account", "globex")
    app = webapp()
    params = {"offer_id": globex["id"], "postback_secret": globex["postback_secret"], "txn_id": "G"}
    refused(app, db_path, params, status=404, path="/conv/offer")
    answer = conv(app, params, path="/conv/offer", extra_environ={"HTTP_HOST": "go.globex.test"})
    assert answer["status"] == "recorded"


def test_an_offer_postback_for_a_link_without_the_offer_is_400(acme, webapp, links, db_path):
    app = webapp()
    params = offer_postback(db_path, acme, link_id=links["link2"][0]["id"], txn_id="NL")
    error = refused(app, db_path, params, path="/conv/offer")
    assert links["link2"][0]["id"] in error


def test_an_offer_postback_for_an_unknown_message_is_404(acme, webapp, campaign, db_path):
    app = webapp()
    params = offer_postback(db_path, acme, message_id="999999", txn_id="UM")
    refused(app, db_path, params, status=404, path="/conv/offer")
    refused(
        app,
        db_path,
        offer_postback(db_path, acme, message_id="12a", txn_id="UM"),
        path="/conv/offer",
    )


def test_a_message_of_another_account_is_404(acme, webapp, campaign, db_path, tmp_path):
    """Another account's message id must not leak that account's click into this offer."""
    acme("account", "create", "globex")
    acme("domain", "add", "go.globex.test", "--account", "globex")
    (tmp_path / "one.txt").write_text("Deal {{link1}}", encoding="utf-8")
    acme(
        "offer", "create", "Globex Deal", "--url", "https://globex.example/", "--account", "globex"
    )
    acme(
        "shorten",
        "one.txt",
        "--link",
        "link1=Globex Deal",
        "--account",
        "globex",
        "--output",
        "globex.csv",
    )
    foreign = query(db_path, "SELECT id FROM messages WHERE account_id <> 1")[0]["id"]
    app = webapp()
    params = {
        "offer_id": offer_id(db_path),
        "postback_secret": secret(acme, "Summer Sale", "--account", "acme"),
        "message_id": str(foreign),
        "txn_id": "FM",
    }
    refused(app, db_path, params, status=404, path="/conv/offer")


# --- postback IP allowlist ----------------------------------------------------------------------


def test_postback_ip_allowlist(acme, webapp, links, db_path):
    acme("offer", "update", "Summer Sale", "--postback-ip", "203.0.113.0/24")
    app = webapp()
    link_id = links["link1"][0]["id"]
    offer_params = offer_postback(db_path, acme, txn_id="IPO")

    error = refused(app, db_path, {"link_id": link_id, "txn_id": "IP1"}, status=403)
    assert "198.51.100.7" in error
    refused(app, db_path, offer_params, status=403, path="/conv/offer")

    allowed = {"REMOTE_ADDR": "203.0.113.5"}
    answer = conv(app, {"link_id": link_id, "txn_id": "IP1"}, extra_environ=allowed)
    assert answer["status"] == "recorded"
    assert conversions(db_path)[0]["ip"] == "203.0.113.5"
    answer = conv(app, offer_params, path="/conv/offer", extra_environ=allowed)
    assert answer["status"] == "recorded"

    # a link without the offer is not under its allowlist
    assert conv(app, {"link_id": links["link2"][0]["id"], "txn_id": "IP2"})["status"] == "recorded"

    acme("offer", "update", "Summer Sale", "--any-postback-ip")
    assert acme.json("offer", "show", "Summer Sale")["postback_ips"] == []
    app = webapp()
    assert conv(app, {"link_id": link_id, "txn_id": "IP3"})["status"] == "recorded"


def test_several_postback_ranges_and_ipv6(acme, webapp, links, db_path):
    acme(
        "offer",
        "update",
        "Summer Sale",
        "--postback-ip",
        "203.0.113.0/24",
        "--postback-ip",
        "2001:db8::/32",
    )
    app = webapp()
    link_id = links["link1"][0]["id"]
    for n, ip in enumerate(["203.0.113.200", "2001:db8::1"]):
        answer = conv(
            app, {"link_id": link_id, "txn_id": f"V{n}"}, extra_environ={"REMOTE_ADDR": ip}
        )
        assert answer["status"] == "recorded"
    for ip in ["203.0.114.1", "2001:db9::1", ""]:
        refused(
            app,
            db_path,
            {"link_id": link_id, "txn_id": "V9"},
            status=403,
            extra_environ={"REMOTE_ADDR": ip},
        )


# --- the pixel ----------------------------------------------------------------------------------


def assert_pixel(response) -> None:
    assert response.status_int == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.body
    assert len(body) == 43
    assert body.startswith(b"GIF89a")
    assert int.from_bytes(body[6:8], "little") == 1  # width
    assert int.from_bytes(body[8:10], "little") == 1  # height
    assert body.endswith(b";")
    assert response.headers["Content-Length"] == "43"


def test_a_pixel_records_a_conversion(webapp, links, db_path):
    app = webapp()
    link = links["link1"][0]
    click(app, link["id"])
    response = app.get(f"/pixel/{link['id']}.gif?event=signup&revenue=3.5", headers=HUMAN_HEADERS)
    assert_pixel(response)
    (row,) = conversions(db_path)
    assert row["source"] == "pixel"
    assert (row["event"], row["revenue_micros"]) == ("signup", 3_500_000)
    assert row["attribution"] == "attributed"
    assert row["link_id"] == link["id"]


def test_reloading_a_pixel_records_once(webapp, links, db_path):
    app = webapp()
    link_id = links["link1"][0]["id"]
    for _ in range(3):
        assert_pixel(app.get(f"/pixel/{link_id}.gif?revenue=9"))
    assert len(conversions(db_path)) == 1
    for _ in range(2):
        assert_pixel(app.get(f"/pixel/{link_id}.gif?txn_id=PX1&revenue=9"))
    assert [r["txn_id"] for r in conversions(db_path)] == [None, "PX1"]


@pytest.mark.parametrize(
    "path",
    [
        "/pixel/ZZZZZZZ.gif",
        "/pixel/{link}.gif?revenue=abc",
        "/pixel/{link}.gif?revenue=NaN",
        "/pixel/{link}.gif?revenue=-1",
        "/pixel/{link}.gif?event=Sale!",
        "/pixel/{link}.gif?txn_id=" + "t" * 129,
        "/pixel/{link}.gif?link_id={other}",
        "/pixel/abc.gif",
        "/pixel/abc!def.gif",
        "/pixel/{link}.png",
        "/pixel/{link}",
    ],
)
def test_a_bad_pixel_is_still_a_gif_and_records_nothing(webapp, links, db_path, path):
    app = webapp()
    url = path.format(link=links["link1"][0]["id"], other=links["link1"][1]["id"])
    assert_pixel(app.get(url))
    assert conversions(db_path) == []


@pytest.mark.parametrize("host", ["evil.example", ""])
def test_a_pixel_on_a_foreign_host_is_a_gif_and_records_nothing(webapp, links, db_path, host):
    app = webapp()
    response = app.get(
        f"/pixel/{links['link1'][0]['id']}.gif?revenue=1", extra_environ={"HTTP_HOST": host}
    )
    assert_pixel(response)
    assert conversions(db_path) == []


def test_a_pixel_of_another_accounts_link_records_nothing(acme, webapp, links, db_path):
    acme("account", "create", "globex")
    acme("domain", "add", "go.globex.test", "--account", "globex")
    app = webapp()
    response = app.get(
        f"/pixel/{links['link1'][0]['id']}.gif", extra_environ={"HTTP_HOST": "go.globex.test"}
    )
    assert_pixel(response)
    assert conversions(db_path) == []


# --- trackly conversions (listing) --------------------------------------------------------------


@pytest.fixture
def recorded(acme, webapp, links, db_path, tmp_path) -> dict:
    """Three conversions at known times: link1 (Summer Sale) on 1 March, link2 (no offer) on
    5 March, both in campaign spring; and an offer postback without a message on 9 March."""
    link1, link2 = links["link1"][0], links["link2"][0]
    import_csv(
        acme,
        tmp_path,
        "link_id,event,revenue,txn_id,time\n"
        f"{link1['id']},sale,24.99,L1,2026-03-01T10:00:00Z\n"
        f"{link2['id']},lead,0,L2,2026-03-05T10:00:00Z\n",
    )
    app = webapp()
    conv(app, offer_postback(db_path, acme, txn_id="L3", revenue="7"), path="/conv/offer")
    execute(
        db_path,
        "UPDATE conversions SET converted_at = '2026-03-09T10:00:00.000000Z' WHERE txn_id = 'L3'",
    )
    return {"link1": link1, "link2": link2}


def test_conversions_lists_them_with_their_attribution(acme, recorded):
    listed = acme.json("conversions")
    assert [r["txn_id"] for r in listed] == ["L1", "L2", "L3"]
    first = listed[0]
    assert first["revenue"] == "24.99"
    assert first["payout"] == "2.50"
    assert first["offer"] == "Summer Sale"
    assert first["campaign"] == "spring"
    assert first["link_id"] == recorded["link1"]["id"]
    assert first["phone"] == recorded["link1"]["phone"]
    assert first["attribution"] == "no_click"
    assert first["source"] == "import"
    assert listed[2]["attribution"] == "no_message"
    assert listed[2]["source"] == "conv_offer"
    table = acme("conversions").stdout
    assert "L1" in table and "no_click" in table


def test_conversions_filters(acme, recorded):
    def txns(*args):
        return [r["txn_id"] for r in acme.json("conversions", *args)]

    assert txns("--campaign", "spring") == ["L1", "L2"]
    assert txns("--offer", "Summer Sale") == ["L1", "L3"]
    assert txns("--since", "2026-03-02") == ["L2", "L3"]
    assert txns("--until", "2026-03-05") == ["L1", "L2"]
    assert txns("--since", "2026-03-02", "--until", "2026-03-08") == ["L2"]
    assert txns("--since", "2026-03-05T10:00:00Z", "--until", "2026-03-05T10:00:01Z") == ["L2"]
    assert txns("--campaign", "spring", "--offer", "Summer Sale", "--until", "2026-03-01") == ["L1"]
    assert txns("--since", "2026-04-01") == []


def test_conversions_csv_and_output_file(acme, recorded, tmp_path):
    import csv
    import io

    text = acme("conversions", "--format", "csv").stdout
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["txn_id"] for r in parsed] == ["L1", "L2", "L3"]
    assert parsed[0]["revenue"] == "24.99"
    assert parsed[0]["attribution"] == "no_click"

    out = tmp_path / "conv.json"
    result = acme("conversions", "--offer", "Summer Sale", "--format", "json", "--output", out)
    assert result.stdout.strip() == ""
    assert [r["txn_id"] for r in json.loads(out.read_text(encoding="utf-8"))] == ["L1", "L3"]
    out_csv = tmp_path / "conv.csv"
    acme("conversions", "--format", "csv", "--output", out_csv)
    assert out_csv.read_text(encoding="utf-8") == text


def test_conversions_with_none_is_an_empty_listing(acme, campaign):
    assert acme.json("conversions") == []
    result = acme("conversions")
    assert "No conversions" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--campaign", "nope"],
        ["--offer", "nope"],
        ["--since", "2026-03-05", "--until", "2026-03-01"],
        ["--since", "2026-03-05", "--until", "2026-03-04"],
        ["--since", "yesterday-ish"],
        ["--until", "2026-02-30"],
        ["--since", "2026-13-01"],
        ["--account", "nope"],
    ],
)
def test_bad_conversion_filters_are_one_line_errors(acme, campaign, args):
    acme.error("conversions", *args)


# --- trackly conversions import -----------------------------------------------------------------


def test_import_records_counts_duplicates_and_reports_bad_rows(acme, links, db_path, tmp_path):
    a, b = links["link1"][0]["id"], links["link1"][1]["id"]
    result = import_csv(
        acme,
        tmp_path,
        "click_id,event,revenue,payout,txn_id,time\n"  # line 1
        f"{a},sale,10,,I1,2026-03-01T10:00:00Z\n"  # 2: recorded
        f"{a},sale,10,,I1,2026-03-01T10:00:00Z\n"  # 3: duplicate in the file
        f"{b},sale,abc,,I2,2026-03-01T10:00:00Z\n"  # 4: bad revenue
        f"ZZZZZZZ,sale,1,,I3,2026-03-01T10:00:00Z\n"  # 5: unknown link
        f"{b},Sale!,1,,I4,2026-03-01T10:00:00Z\n"  # 6: bad event
        f"{b},sale,1,,I5,not a time\n"  # 7: bad time
        f",sale,1,,I6,2026-03-01T10:00:00Z\n"  # 8: no link, no message
        f"{b},lead,2.5,1.75,I7,2026-03-02 09:30\n",  # 9: recorded
        "--format",
        "json",
    )
    assert json.loads(result.stdout) == {
        "rows": 8,
        "recorded": 2,
        "duplicates": 1,
        "pending": 0,
        "invalid": 5,
    }
    warnings = result.stderr
    for line in (4, 5, 6, 7, 8):
        assert f"line {line}:" in warnings, warnings
    for line in (2, 3, 9):
        assert f"line {line}:" not in warnings, warnings
    assert "revenue" in warnings and "ZZZZZZZ" in warnings
    rows = conversions(db_path)
    assert [(r["txn_id"], r["revenue_micros"], r["payout_micros"]) for r in rows] == [
        ("I1", 10_000_000, 2_500_000),
        ("I7", 2_500_000, 1_750_000),
    ]
    assert rows[1]["converted_at"] == "2026-03-02T09:30:00.000000Z"

    again = import_csv(
        acme, tmp_path, f"link_id,txn_id\n{a},I1\n", "--format", "json", name="again.csv"
    )
    assert json.loads(again.stdout) == {
        "rows": 1,
        "recorded": 0,
        "duplicates": 1,
        "pending": 0,
        "invalid": 0,
    }
    assert len(conversions(db_path)) == 2


def test_import_table_output_summarises(acme, links, tmp_path):
    a = links["link1"][0]["id"]
    result = import_csv(acme, tmp_path, f"cid,amount,txid\n{a},1,T1\n{a},1,T1\nnope,1,T2\n")
    assert "line 4:" in result.stderr
    assert "Imported 1 of 3 rows: 1 duplicates, 1 invalid." in result.stderr


def test_import_strict_imports_nothing_when_a_row_is_bad(acme, links, db_path, tmp_path):
    a = links["link1"][0]["id"]
    path = tmp_path / "strict.csv"
    path.write_text(f"link_id,revenue,txn_id\n{a},1,S1\n{a},1e3,S2\n{a},2,S3\n", encoding="utf-8")
    error = acme.error("conversions", "import", path, "--strict")
    assert "line 3" in error
    assert conversions(db_path) == []
    assert rollup(db_path, offer_id(db_path))["unattributed_conversions"] in (None, 0)
    acme("conversions", "import", path)
    assert [r["txn_id"] for r in conversions(db_path)] == ["S1", "S3"]


def test_import_message_id_rows_need_an_offer(acme, webapp, links, db_path, tmp_path):
    link = links["link1"][0]
    app = webapp()
    click(app, link["id"])
    text = f"message_id,event,revenue,txn_id\n{link['message_id']},sale,12,M1\n"
    result = import_csv(acme, tmp_path, text, "--format", "json")
    assert json.loads(result.stdout)["invalid"] == 1
    assert "line 2:" in result.stderr and "--offer" in result.stderr
    assert conversions(db_path) == []

    result = import_csv(acme, tmp_path, text, "--offer", "Summer Sale", "--format", "json")
    assert json.loads(result.stdout)["recorded"] == 1
    (row,) = conversions(db_path)
    assert row["link_id"] == link["id"]
    assert row["message_id"] == link["message_id"]
    assert row["offer_id"] == offer_id(db_path)
    assert row["attribution"] == "attributed"
    assert row["payout_micros"] == 2_500_000


def test_import_a_refund_row_reverses_the_sale(acme, links, db_path, tmp_path):
    a = links["link1"][0]["id"]
    import_csv(acme, tmp_path, f"link_id,event,revenue,txn_id\n{a},sale,40,R1\n{a},refund,,R1\n")
    rows = conversions(db_path)
    assert [(r["event"], r["revenue_micros"]) for r in rows] == [
        ("sale", 40_000_000),
        ("refund", -40_000_000),
    ]


def test_import_a_non_utf8_file_is_an_error(acme, links, db_path, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"link_id,txn_id\n{links['link1'][0]['id']},caf\xe9\n".encode("latin-1"))
    error = acme.error("conversions", "import", path)
    assert "UTF-8" in error
    assert conversions(db_path) == []


def test_import_a_bom_is_fine(acme, links, db_path, tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(f"link_id,txn_id\n{links['link1'][0]['id']},B1\n".encode("utf-8-sig"))
    acme("conversions", "import", path)
    assert [r["txn_id"] for r in conversions(db_path)] == ["B1"]


@pytest.mark.parametrize("content", [b"", b"\n"], ids=["empty", "blank"])
def test_import_an_empty_file_is_an_error(acme, campaign, tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    acme.error("conversions", "import", path)


def test_import_a_missing_file_is_an_error(acme, campaign, tmp_path):
    message = acme.error("conversions", "import", tmp_path / "nope.csv")
    assert "nope.csv" in message


# --- who may reverse a sale -------------------------------------------------------------------


def test_a_refund_may_only_reverse_a_sale_of_its_own_offer(acme, webapp, links, db_path):
    acme("offer", "create", "Other", "--url", "https://other.example/")
    app = webapp()
    conv(app, {"link_id": links["link1"][0]["id"], "revenue": "100", "txn_id": "X1"})
    other = secret(acme, "Other")
    other_id = offer_id(db_path, "Other")
    answer = conv(
        app,
        {"offer_id": other_id, "postback_secret": other, "event": "refund", "txn_id": "X1"},
        path="/conv/offer",
        status=403,
    )
    assert "another offer" in answer["error"]
    assert [c["event"] for c in conversions(db_path)] == ["sale"]
    # the sale's own offer may reverse it
    own = secret(acme)
    conv(
        app,
        {"offer_id": offer_id(db_path), "postback_secret": own, "event": "refund", "txn_id": "X1"},
        path="/conv/offer",
    )
    assert sorted(c["revenue_micros"] for c in conversions(db_path)) == [-100_000_000, 100_000_000]


def test_a_pixel_cannot_reverse_a_sale(webapp, links, db_path):
    app = webapp()
    link = links["link1"][0]["id"]
    conv(app, {"link_id": link, "revenue": "100", "txn_id": "X2"})
    response = app.get(f"/pixel/{link}.gif?event=refund&txn_id=X2")
    assert response.body.startswith(b"GIF89a")
    assert [c["event"] for c in conversions(db_path)] == ["sale"]


def test_a_duplicate_postback_promotes_no_bot_click(webapp, links, db_path):
    app = webapp()
    first, second = links["link1"][0], links["link1"][1]
    conv(app, {"link_id": first["id"], "revenue": "1", "txn_id": "D1"})
    click(app, second["id"], headers={"User-Agent": "curl/8.0"})  # a bot's click only
    answer = conv(app, {"link_id": second["id"], "revenue": "1", "txn_id": "D1"})
    assert answer["status"] == "duplicate"
    assert message_clicks(db_path, second["message_id"]) == []


# --- imports in short transactions ----------------------------------------------------------


def test_a_large_import_commits_in_chunks(acme, links, db, db_path, tmp_path):
    """Other writers (the server's postbacks) get the lock between chunks."""
    from trackly_cli.core.conversions import import_csv as core_import

    a = links["link1"][0]["id"]
    path = tmp_path / "big.csv"
    path.write_text(
        "link_id,revenue,txn_id\n" + "".join(f"{a},1,T{i}\n" for i in range(3000)),
        encoding="utf-8",
    )
    commits = []
    db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    with path.open("rb") as stream:
        result = core_import(db, None, stream)
    db.set_trace_callback(None)
    assert (result.rows, result.recorded, result.duplicates) == (3000, 3000, 0)
    assert len(commits) > 1
    assert len(conversions(db_path)) == 3000


def test_an_import_stopped_half_way_is_completed_by_running_it_again(
    acme, links, db_path, tmp_path
):
    """What a stopped import committed (here: the first half of the file) plus the same import
    again ends exactly where one whole import would: same rows, same report."""
    a, b = links["link1"][0]["id"], links["link1"][1]["id"]
    rows = [f"{a},sale,{i},T{i}\n" for i in range(40)]
    rows += [f"{b},lead,,\n", f"{a},refund,,T3\n"]  # no txn_id (link + event); a refund
    whole = "link_id,event,revenue,txn_id\n" + "".join(rows)
    saved = tmp_path / "before.db"
    copy_database(db_path, saved)
    import_csv(acme, tmp_path, whole, name="whole.csv")
    expected = acme.json("report", "--by", "offer")
    copy_database(saved, db_path)
    assert acme.json("report", "--by", "offer") != expected

    half = "link_id,event,revenue,txn_id\n" + "".join(rows[:21])
    import_csv(acme, tmp_path, half, name="half.csv")
    again = import_csv(acme, tmp_path, whole, "--format", "json", name="whole.csv")
    assert json.loads(again.stdout) == {
        "rows": 42,
        "recorded": 21,
        "duplicates": 21,
        "pending": 0,
        "invalid": 0,
    }
    assert acme.json("report", "--by", "offer") == expected
    assert len(conversions(db_path)) == 42


def test_an_import_row_reversing_another_offers_sale_is_a_bad_row(acme, links, db_path, tmp_path):
    acme("offer", "create", "Other", "--url", "https://other.example/")
    link = links["link1"][0]
    text = (
        "link_id,message_id,event,revenue,txn_id\n"
        f"{link['id']},,sale,100,X1\n"
        f",{link['message_id']},refund,,X1\n"
        f"{link['id']},,sale,5,X2\n"
    )
    result = import_csv(acme, tmp_path, text, "--offer", "Other", "--format", "json")
    assert json.loads(result.stdout) == {
        "rows": 3,
        "recorded": 2,
        "duplicates": 0,
        "pending": 0,
        "invalid": 1,
    }
    assert "line 3:" in result.stderr and "another offer" in result.stderr
    assert sorted(c["txn_id"] for c in conversions(db_path)) == ["X1", "X2"]


def copy_database(source: Path, target: Path) -> None:
    import sqlite3

    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


# --- a refund before its sale -----------------------------------------------------------------


def test_a_refund_before_its_sale_waits_and_reverses_the_sale_when_it_comes(
    acme, webapp, links, db_path
):
    app = webapp()
    link = links["link1"][0]["id"]
    early = conv(
        app, {"postback_secret": secret(acme), "link_id": link, "event": "refund", "txn_id": "R9"}
    )
    assert early == {"status": "pending", "conversion_id": None, "attribution": None}
    assert conversions(db_path) == []
    assert acme.json("db", "check")["refunds_waiting_for_their_sale"] == 1
    # the same refund again, still waiting: a duplicate
    assert (
        conv(
            app,
            {"postback_secret": secret(acme), "link_id": link, "event": "refund", "txn_id": "R9"},
        )["status"]
        == "duplicate"
    )

    sale = conv(app, {"link_id": link, "revenue": "40", "txn_id": "R9"})
    assert sale["status"] == "recorded"
    rows = conversions(db_path)
    assert [(r["event"], r["revenue_micros"], r["payout_micros"]) for r in rows] == [
        ("sale", 40_000_000, 2_500_000),
        ("refund", -40_000_000, -2_500_000),
    ]
    assert acme.json("db", "check")["refunds_waiting_for_their_sale"] == 0
    # the real refund, later: the sale is reversed already
    assert (
        conv(
            app,
            {"postback_secret": secret(acme), "link_id": link, "event": "refund", "txn_id": "R9"},
        )["status"]
        == "duplicate"
    )
    assert len(conversions(db_path)) == 2
    (offer,) = [r for r in acme.json("report", "--by", "offer") if r["offer"] == "Summer Sale"]
    assert (offer["revenue"], offer["payout"]) == ("0.00", "0.00")


def test_a_partial_refund_before_its_sale_keeps_its_amount(acme, webapp, links, db_path):
    app = webapp()
    link = links["link1"][0]["id"]
    conv(
        app,
        {
            "postback_secret": secret(acme),
            "link_id": link,
            "event": "chargeback",
            "amount": "15",
            "txn_id": "P1",
        },
    )
    conv(app, {"link_id": link, "revenue": "40", "txn_id": "P1"})
    rows = conversions(db_path)
    assert [(r["event"], r["revenue_micros"]) for r in rows] == [
        ("sale", 40_000_000),
        ("chargeback", -15_000_000),
    ]


def test_a_waiting_refund_of_another_offer_never_reverses_the_sale(acme, webapp, links, db_path):
    acme("offer", "create", "Other", "--url", "https://other.example/")
    app = webapp()
    other = {"offer_id": offer_id(db_path, "Other"), "postback_secret": secret(acme, "Other")}
    early = conv(app, {**other, "event": "refund", "txn_id": "X7"}, path="/conv/offer")
    assert early["status"] == "pending"
    conv(app, {"link_id": links["link1"][0]["id"], "revenue": "10", "txn_id": "X7"})
    assert [c["event"] for c in conversions(db_path)] == ["sale"]
    assert acme.json("db", "check")["refunds_waiting_for_their_sale"] == 1


def test_an_import_counts_refunds_that_wait_for_their_sale(acme, links, db_path, tmp_path):
    a = links["link1"][0]["id"]
    result = import_csv(
        acme,
        tmp_path,
        f"link_id,event,revenue,txn_id\n{a},refund,,E1\n{a},sale,30,E1\n{a},refund,,E2\n",
        "--format",
        "json",
    )
    assert json.loads(result.stdout) == {
        "rows": 3,
        "recorded": 1,
        "duplicates": 0,
        "pending": 2,
        "invalid": 0,
    }
    assert sorted(c["revenue_micros"] for c in conversions(db_path)) == [-30_000_000, 30_000_000]
    table = import_csv(acme, tmp_path, f"link_id,event,txn_id\n{a},refund,E3\n", name="t.csv")
    assert "1 refunds waiting for their sale." in table.stderr


def test_an_import_row_too_long_is_a_bad_row(acme, links, db_path, tmp_path):
    a = links["link1"][0]["id"]
    path = tmp_path / "long.csv"
    path.write_bytes(
        f"link_id,revenue,txn_id\r{a},1,L1\r{a},1,".encode()
        + b"z" * 2_000_000
        + f"\r{a},2,L3\r".encode()
    )
    result = acme("conversions", "import", path, "--format", "json")
    assert json.loads(result.stdout)["invalid"] == 1
    assert "line 3: the row is too long" in result.stderr
    assert sorted(c["txn_id"] for c in conversions(db_path)) == ["L1", "L3"]
