"""Postbacks an operator can trust (#15): per offer, --require-secret for /conv, a maximum
revenue, no pixel where an IP allowlist names the network's servers, the secret for every
refund, and at most so many conversions on one link in an hour."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import HUMAN_HEADERS
from test_conversions import conv, conversions, import_csv, refused, secret


@pytest.fixture
def link(campaign) -> str:
    return campaign["by_slot"]["link1"][0]["id"]


def test_a_refund_through_conv_needs_the_offers_secret(acme, webapp, link, db_path):
    app = webapp()
    conv(app, {"link_id": link, "revenue": "30", "txn_id": "S1"})
    error = refused(app, db_path, {"link_id": link, "event": "refund", "txn_id": "S1"}, 403)
    assert "postback_secret" in error
    wrong = {"link_id": link, "event": "refund", "txn_id": "S1", "postback_secret": "x" * 43}
    refused(app, db_path, wrong, 403)
    right = {**wrong, "postback_secret": secret(acme)}
    assert conv(app, right)["status"] == "recorded"


def test_require_secret_makes_conv_ask_for_it(acme, webapp, link, db_path):
    acme("offer", "update", "Summer Sale", "--require-secret")
    assert acme.json("offer", "show", "Summer Sale")["require_secret"] is True
    app = webapp()
    refused(app, db_path, {"link_id": link, "revenue": "5", "txn_id": "A"}, 403)
    sale = {"link_id": link, "revenue": "5", "txn_id": "A", "postback_secret": secret(acme)}
    assert conv(app, sale)["status"] == "recorded"
    acme("offer", "update", "Summer Sale", "--no-require-secret")
    app = webapp()  # (a new server: this one has not seen the change yet)
    assert conv(app, {"link_id": link, "revenue": "5", "txn_id": "B"})["status"] == "recorded"


def test_revenue_above_the_offers_maximum_is_refused_and_logged(
    acme, webapp, link, db_path, tmp_path, caplog
):
    acme("offer", "update", "Summer Sale", "--max-revenue", "100")
    assert acme.json("offer", "show", "Summer Sale")["max_revenue"] == "100.00"
    app = webapp()
    with caplog.at_level(logging.ERROR, logger="trackly.server"):
        error = refused(app, db_path, {"link_id": link, "revenue": "100.01", "txn_id": "M"})
    assert "above the offer's maximum of 100.00" in error
    assert any("postback refused" in r.message for r in caplog.records)
    assert conv(app, {"link_id": link, "revenue": "100", "txn_id": "M"})["status"] == "recorded"
    # a network's report goes through the same rule, row by row
    result = import_csv(
        acme,
        tmp_path,
        f"link_id,revenue,txn_id\n{link},9999999,I1\n{link},1,I2\n",
        "--format",
        "json",
    )
    assert json.loads(result.stdout)["invalid"] == 1
    assert "line 2:" in result.stderr and "maximum" in result.stderr
    assert sorted(c["txn_id"] for c in conversions(db_path)) == ["I2", "M"]
    acme("offer", "update", "Summer Sale", "--max-revenue", "none")
    assert acme.json("offer", "show", "Summer Sale")["max_revenue"] is None


def test_a_pixel_records_nothing_for_an_offer_with_an_ip_allowlist(acme, webapp, link, db_path):
    acme("offer", "update", "Summer Sale", "--postback-ip", "192.0.2.0/24")
    app = webapp()
    response = app.get(f"/pixel/{link}.gif?revenue=50&txn_id=P", headers=HUMAN_HEADERS)
    assert response.body.startswith(b"GIF89a")  # the page still shows its image
    assert conversions(db_path) == []
    acme("offer", "update", "Summer Sale", "--any-postback-ip")
    app = webapp()
    app.get(f"/pixel/{link}.gif?revenue=50&txn_id=P", headers=HUMAN_HEADERS)
    assert [c["txn_id"] for c in conversions(db_path)] == ["P"]


def test_a_link_takes_at_most_so_many_conversions_an_hour(acme, webapp, link, db_path):
    acme("offer", "update", "Summer Sale", "--link-conversions-per-hour", "3")
    app = webapp()
    for n in range(3):
        assert conv(app, {"link_id": link, "revenue": "1", "txn_id": f"T{n}"})["status"] == (
            "recorded"
        )
    error = refused(app, db_path, {"link_id": link, "revenue": "1", "txn_id": "T3"}, 429)
    assert "limit" in error
    # a repeat is still answered as one, and a refund still reverses
    assert conv(app, {"link_id": link, "revenue": "1", "txn_id": "T0"})["status"] == "duplicate"
    refund = {"link_id": link, "event": "refund", "txn_id": "T0", "postback_secret": secret(acme)}
    assert conv(app, refund)["status"] == "recorded"
    # the pixel too (its record is dropped by the drain, its GIF served)
    app.get(f"/pixel/{link}.gif?txn_id=T9", headers=HUMAN_HEADERS)
    assert "T9" not in {c["txn_id"] for c in conversions(db_path)}
    # 0: no limit
    acme("offer", "update", "Summer Sale", "--link-conversions-per-hour", "0")
    app = webapp()
    assert conv(app, {"link_id": link, "revenue": "1", "txn_id": "T4"})["status"] == "recorded"


def test_new_offers_take_the_defaults_and_bad_values_are_refused(acme):
    shown = acme.json("offer", "show", "Summer Sale")
    assert (shown["require_secret"], shown["max_revenue"], shown["link_conversions_per_hour"]) == (
        False,
        None,
        20,
    )
    created = acme.json(
        "offer",
        "create",
        "Strict",
        "--url",
        "https://strict.example/",
        "--require-secret",
        "--max-revenue",
        "250.5",
        "--link-conversions-per-hour",
        "5",
        "--format",
        "json",
    )
    assert (created["require_secret"], created["max_revenue"]) == (True, "250.50")
    assert created["link_conversions_per_hour"] == 5
    assert "--max-revenue" in acme.error("offer", "update", "Strict", "--max-revenue", "abc")
    acme.error("offer", "update", "Strict", "--link-conversions-per-hour", "-1", code=2)
    assert acme.json("offer", "show", "Strict")["max_revenue"] == "250.50"


def test_revoking_changes_hold_at_once_on_a_running_server(acme, webapp, link, db_path):
    """The server ran before the change: the old secret fails on the very next postback, and a
    new allowlist applies to it (#15 saw both still accepted for seconds)."""
    from test_conversions import offer_id

    app = webapp()
    old = secret(acme)
    params = {"offer_id": offer_id(db_path), "postback_secret": old, "txn_id": "R0"}
    assert conv(app, params, path="/conv/offer")["status"] == "recorded"
    acme("offer", "rotate-secret", "Summer Sale")
    refused(app, db_path, {**params, "txn_id": "R1"}, 403, path="/conv/offer")
    new = {**params, "postback_secret": secret(acme), "txn_id": "R2"}
    assert conv(app, new, path="/conv/offer")["status"] == "recorded"
    acme("offer", "update", "Summer Sale", "--postback-ip", "192.0.2.0/24")
    refused(app, db_path, {**new, "txn_id": "R3"}, 403, path="/conv/offer")
    allowed = {**new, "txn_id": "R4"}
    answer = conv(app, allowed, path="/conv/offer", extra_environ={"REMOTE_ADDR": "192.0.2.9"})
    assert answer["status"] == "recorded"


@pytest.mark.parametrize(
    "params",
    [
        {"revenue": "٤٢"},  # Arabic-Indic digits
        {"revenue": "４２"},  # fullwidth digits
        {"payout": "1.٥"},
        {"txn_id": "abc\u202edcba"},  # right-to-left override: displays as another id
        {"txn_id": "a\u200bb"},  # zero-width space
        {"txn_id": "a\u2066b"},
        {"txn_id": "a\x00b"},
    ],
)
def test_amounts_take_ascii_digits_and_ids_no_invisible_characters(webapp, link, db_path, params):
    app = webapp()
    refused(app, db_path, {"link_id": link, "txn_id": "T", **params}, 400)


def test_an_id_in_another_script_is_fine(webapp, link, db_path):
    app = webapp()
    assert conv(app, {"link_id": link, "txn_id": "café-№7", "revenue": "1"})["status"] == (
        "recorded"
    )
