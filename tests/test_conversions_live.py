"""Concurrent postbacks against a real `trackly serve`: the unique constraints, not a check
before the insert, decide what is a duplicate."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from urllib.parse import urlencode

import pytest

pytestmark = pytest.mark.slow


def conversions(db_path: Path) -> list[dict]:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM conversions ORDER BY id")]
    finally:
        conn.close()


def at_once(server, paths: list[str]) -> list[tuple[int, dict]]:
    """GET every path at the same moment, each from its own thread and connection; returns
    (status, JSON answer) per path, in order."""
    barrier = threading.Barrier(len(paths))
    answers: list = [None] * len(paths)

    def send(index: int, path: str) -> None:
        try:
            barrier.wait(timeout=30)
            status, _, body = server.request(path, timeout=60)
            answers[index] = (status, json.loads(body))
        except Exception as e:  # reported below, with the others
            answers[index] = (None, {"exception": repr(e)})

    threads = [threading.Thread(target=send, args=(i, p)) for i, p in enumerate(paths)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not any(t.is_alive() for t in threads), "some requests never finished"
    return answers


def test_200_identical_concurrent_postbacks_make_one_conversion(campaign, live_server, db_path):
    link_id = campaign["by_slot"]["link1"][0]["id"]
    server = live_server()
    path = "/conv?" + urlencode({"cid": link_id, "amount": "24.99", "txid": "SAME-1"})

    answers = at_once(server, [path] * 200)

    bad = [a for a in answers if a[0] != 200]
    assert not bad, bad[:5]
    statuses = [a[1]["status"] for a in answers]
    assert statuses.count("recorded") == 1, statuses
    assert statuses.count("duplicate") == 199, statuses
    ids = {a[1]["conversion_id"] for a in answers}
    assert len(ids) == 1
    rows = conversions(db_path)
    assert len(rows) == 1
    assert rows[0]["id"] == ids.pop()
    assert (rows[0]["txn_id"], rows[0]["revenue_micros"]) == ("SAME-1", 24_990_000)
    assert (rows[0]["link_id"], rows[0]["payout_micros"]) == (link_id, 2_500_000)


def test_identical_concurrent_postbacks_without_txn_id_make_one_conversion(
    campaign, live_server, db_path
):
    link_id = campaign["by_slot"]["link1"][1]["id"]
    server = live_server()
    path = "/conv?" + urlencode({"link_id": link_id, "revenue": "5", "event": "lead"})

    answers = at_once(server, [path] * 100)

    assert all(a[0] == 200 for a in answers), [a for a in answers if a[0] != 200][:5]
    statuses = [a[1]["status"] for a in answers]
    assert sorted(set(statuses)) == ["duplicate", "recorded"]
    assert statuses.count("recorded") == 1
    assert len({a[1]["conversion_id"] for a in answers}) == 1
    assert len(conversions(db_path)) == 1


def test_50_concurrent_distinct_postbacks_make_50_conversions(campaign, live_server, db_path):
    links = campaign["by_slot"]["link1"]
    server = live_server()
    paths = [
        "/conv?"
        + urlencode({"link_id": links[n % len(links)]["id"], "revenue": "1.5", "txn_id": f"D-{n}"})
        for n in range(50)
    ]

    answers = at_once(server, paths)

    assert all(a[0] == 200 for a in answers), [a for a in answers if a[0] != 200][:5]
    assert [a[1]["status"] for a in answers] == ["recorded"] * 50
    assert len({a[1]["conversion_id"] for a in answers}) == 50
    rows = conversions(db_path)
    assert sorted(r["txn_id"] for r in rows) == sorted(f"D-{n}" for n in range(50))
    assert sum(r["revenue_micros"] for r in rows) == 75_000_000


def test_concurrent_offer_postbacks_with_the_right_and_wrong_secret(
    acme, campaign, live_server, db_path
):
    offer = acme.json("offer", "show", "Summer Sale")
    server = live_server()
    good = "/conv/offer?" + urlencode(
        {"offer_id": offer["id"], "postback_secret": offer["postback_secret"], "txn_id": "OF-1"}
    )
    wrong = "/conv/offer?" + urlencode(
        {"offer_id": offer["id"], "postback_secret": "wrong", "txn_id": "OF-2"}
    )

    answers = at_once(server, [good, wrong] * 50)

    assert [a[0] for a in answers] == [200, 403] * 50
    assert sum(a[1]["status"] == "recorded" for a in answers[::2]) == 1
    assert {a[1]["status"] for a in answers[1::2]} == {"error"}
    rows = conversions(db_path)
    assert [(r["txn_id"], r["source"], r["attribution"]) for r in rows] == [
        ("OF-1", "conv_offer", "no_message")
    ]


def test_the_pixel_over_http(campaign, live_server, db_path):
    link_id = campaign["by_slot"]["link1"][2]["id"]
    server = live_server()
    for path in (f"/pixel/{link_id}.gif?revenue=2", "/pixel/ZZZZZZZ.gif", f"/pixel/{link_id}.gif"):
        status, headers, body = server.request(path)
        assert status == 200
        assert headers["Content-Type"] == "image/gif"
        assert headers["Cache-Control"] == "no-store"
        assert len(body) == 43 and body.startswith(b"GIF89a")
    status, headers, body = server.request(f"/pixel/{link_id}.gif", host="evil.example")
    assert (status, headers["Content-Type"], len(body)) == (200, "image/gif", 43)
    assert server.stop() == 0  # stores what its journal holds, then stops
    (row,) = conversions(db_path)
    assert (row["source"], row["revenue_micros"]) == ("pixel", 2_000_000)
