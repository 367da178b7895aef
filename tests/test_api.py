"""The JSON API (/api/v1 of `trackly dashboard`) in-process (WebTest) on SQLite and PostgreSQL,
and as a real waitress server for concurrent retries: keys and scopes, one account per key,
every endpoint against the CLI's output for the same thing, idempotent shorten, hostile bodies,
and the error shape."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import subprocess
import sys
from pathlib import Path

import pytest
import webtest
from conftest import HUMAN_HEADERS, execute, free_port, query, snapshot

from trackly_cli.core import clock, store
from trackly_cli.dashboard import api
from trackly_cli.dashboard.app import CONTENT_SECURITY_POLICY, create_app

HOST = {"HTTP_HOST": "127.0.0.1:8081", "REMOTE_ADDR": "127.0.0.1"}
SHORTEN = {
    "text": "Hi {{first_name}}, 20% off: {{link1}}",
    "links": {"link1": "Summer Sale"},
    "phone": "+1 202 555 0150",
    "fields": {"first_name": "Ann"},
}


def _key(cli, *args) -> str:
    return cli.json("apikey", "create", *args)["key"]


@pytest.fixture
def built(cli, target: str, tmp_path: Path) -> dict:
    """acme (domain go.acme.test, offers Summer Sale and Old (archived), list vip of 3, campaign
    spring with two clicks and a sale) and other (offer Theirs, list quiet, campaign zeta);
    keys: acme's write and read keys, other's write key."""
    cli("account", "create", "acme")
    cli("domain", "add", "go.acme.test", "--account", "acme")
    cli("offer", "create", "Summer Sale", "--url", "https://shop.example/?s={link_id}",
        "--payout", "2.50", "--account", "acme")  # fmt: skip
    cli("offer", "create", "Old", "--url", "https://old.example/", "--account", "acme")
    (tmp_path / "c.csv").write_text(
        "phone,first_name\n+12025550143,Ann\n+12025550144,Bob\n+12025550145,Cy\n",
        encoding="utf-8",
    )
    cli("list", "create", "vip", "--account", "acme")
    cli("contacts", "import", "vip", tmp_path / "c.csv", "--account", "acme")
    (tmp_path / "a.txt").write_text("Hi {{first_name}} {{link1}}", encoding="utf-8")
    cli("shorten", "a.txt", "--list", "vip", "--link", "link1=Summer Sale",
        "--campaign", "spring", "--account", "acme", "--output", "spring.csv")  # fmt: skip
    cli("offer", "archive", "Old", "--account", "acme")
    cli("account", "create", "other")
    cli("domain", "add", "go.other.test", "--account", "other")
    cli("offer", "create", "Theirs", "--url", "https://theirs.example/", "--account", "other")
    cli("list", "create", "quiet", "--account", "other")
    cli("contacts", "import", "quiet", tmp_path / "c.csv", "--account", "other")
    cli("shorten", "a.txt", "--list", "quiet", "--link", "link1=Theirs", "--campaign", "zeta",
        "--account", "other")  # fmt: skip
    conn = store.connect(target)
    try:
        conn.execute("UPDATE messages SET created_at = '2026-01-01T00:00:00.000000Z'")
        spring = [
            r[0]
            for r in conn.execute(
                "SELECT l.id FROM short_links l JOIN messages m ON m.id = l.message_id"
                " JOIN campaigns k ON k.id = m.campaign_id WHERE k.name = 'spring' ORDER BY m.id"
            )
        ]
        ids = {r["name"]: r["id"] for r in store.rows(conn, "SELECT name, id FROM campaigns")}
        offer_ids = {r["name"]: r["id"] for r in store.rows(conn, "SELECT name, id FROM offers")}
    finally:
        conn.close()
    from trackly_cli.server import Tracker
    from trackly_cli.server import create_app as tracking_app

    tracker = Tracker(target, journal=tmp_path / "journal")
    tracking = webtest.TestApp(
        tracking_app(target, tracker=tracker),
        extra_environ={"HTTP_HOST": "go.acme.test", "REMOTE_ADDR": "198.51.100.7"},
    )
    try:
        for link in (spring[0], spring[1], spring[0]):
            tracking.get(f"/{link}", headers=HUMAN_HEADERS, status=302)
            tracker.sync()
        tracking.get(f"/conv?link_id={spring[0]}&revenue=49.90&txn_id=T-1", status=200)
        tracking.get(f"/conv?link_id={spring[1]}&revenue=5&txn_id=T-2", status=200)
        tracker.sync()
    finally:
        tracker.close()
    return {
        "target": target,
        "write": _key(cli, "--account", "acme", "--scope", "write", "--name", "crm"),
        "read": _key(cli, "--account", "acme"),
        "other": _key(cli, "--account", "other", "--scope", "write"),
        "campaigns": ids,
        "offers": offer_ids,
        "spring_csv": tmp_path / "spring.csv",
    }


def client(target: str) -> webtest.TestApp:
    return webtest.TestApp(create_app(target), extra_environ=HOST)


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def error_of(response, status: int, field: str | None = "?") -> str:
    """The error's message, after checking the answer's shape (and its field, unless "?")."""
    assert response.status_int == status, response.text
    assert response.content_type == "application/json"
    found = response.json["error"]
    assert set(found) == {"code", "message", "field"}
    assert found["code"] == api.CODES[status]
    assert "Traceback" not in response.text
    if field != "?":
        assert found["field"] == field, found
    return found["message"]


def messages(target: str) -> int:
    return query(target, "SELECT count(*) AS n FROM messages")[0]["n"]


# -- keys and scopes -------------------------------------------------------------------------------


def test_every_request_needs_a_valid_key_of_the_right_scope(built, cli):
    app = client(built["target"])
    for header in (
        {},
        {"Authorization": "Basic YWRtaW46cGFzcw=="},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Bearer trk_" + "x" * 43},
        {"Authorization": "Bearer " + built["write"][:-1] + "!"},
        {"Authorization": "Bearer " + "trk_" + "é" * 10},
    ):
        for method, path in (("GET", "/api/v1/offers"), ("POST", "/api/v1/shorten")):
            found = app.request(path, method=method, headers=header, expect_errors=True)
            error_of(found, 401)
            assert found.headers["WWW-Authenticate"].startswith("Bearer")
    # a read key reads, and may not write
    app.get("/api/v1/offers", headers=bearer(built["read"]), status=200)
    before = messages(built["target"])
    found = app.post_json("/api/v1/shorten", SHORTEN, headers=bearer(built["read"]), status=403)
    assert "read" in error_of(found, 403)
    found = app.post_json("/api/v1/offers", {"name": "X", "url": "https://x.example/"},
                          headers=bearer(built["read"]), status=403)  # fmt: skip
    assert messages(built["target"]) == before
    # a revoked key answers 401 from the next request on
    key_id = cli.json("apikey", "list", "--account", "acme")[0]["id"]
    cli("apikey", "revoke", key_id)
    found = app.get("/api/v1/offers", headers=bearer(built["write"]), status=401)
    assert "revoked" in error_of(found, 401)


def test_a_key_sees_its_own_account_only(built):
    app = client(built["target"])
    other = bearer(built["other"])
    zeta, spring = built["campaigns"]["zeta"], built["campaigns"]["spring"]
    # other's names and ids are not found for acme's key, in paths, queries and bodies alike
    mine = bearer(built["write"])
    for path, field in (
        (f"/api/v1/campaigns/{zeta}/outbox.csv", "name"),
        ("/api/v1/campaigns/zeta/outbox.csv", "name"),
        ("/api/v1/reports?campaign=zeta", "campaign"),
        ("/api/v1/clicks?campaign=zeta", "campaign"),
        ("/api/v1/conversions?campaign=zeta", "campaign"),
    ):
        error_of(app.get(path, headers=mine, status=404), 404, field)
    theirs = built["offers"]["Theirs"]
    for ref in ("Theirs", str(theirs)):
        found = app.patch_json(f"/api/v1/offers/{ref}", {"payout": "9"}, headers=mine, status=404)
        error_of(found, 404, "name")
        body = {**SHORTEN, "links": {"link1": ref}}
        error_of(app.post_json("/api/v1/shorten", body, headers=mine, status=404), 404,
                 "links.link1")  # fmt: skip
    body = {"list": "quiet", "text": "Hi {{link1}}", "links": {"link1": "Summer Sale"}}
    error_of(app.post_json("/api/v1/campaigns", body, headers=mine, status=404), 404, "list")
    # and the listings are of the key's account
    assert [c["name"] for c in app.get("/api/v1/campaigns", headers=other).json] == ["zeta"]
    assert [o["name"] for o in app.get("/api/v1/offers", headers=other).json] == ["Theirs"]
    assert [r["campaign"] for r in app.get("/api/v1/reports", headers=other).json] == ["zeta"]
    assert app.get("/api/v1/clicks", headers=other).json == {"data": [], "next_cursor": None}
    error_of(app.get(f"/api/v1/campaigns/{spring}/outbox.csv", headers=other, status=404), 404)
    theirs_offer = app.patch_json(f"/api/v1/offers/{theirs}", {"payout": "9"}, headers=other)
    assert theirs_offer.json["payout"] == "9.00"


def test_last_used_is_written_at_most_once_a_minute(built):
    app = client(built["target"])

    def last_used() -> str | None:
        rows = query(built["target"], "SELECT last_used_at FROM api_keys WHERE name = 'crm'")
        return rows[0]["last_used_at"]

    assert last_used() is None
    app.get("/api/v1/offers", headers=bearer(built["write"]))
    first = last_used()
    assert first is not None
    for _ in range(3):
        app.get("/api/v1/offers", headers=bearer(built["write"]))
    assert last_used() == first  # (no write on every GET)
    conn = store.connect(built["target"])
    try:
        conn.execute("UPDATE api_keys SET last_used_at = '2026-01-01T00:00:00.000000Z'")
    finally:
        conn.close()
    app.get("/api/v1/offers", headers=bearer(built["write"]))
    assert last_used() > first


def test_the_api_keeps_the_host_check_and_headers_and_ignores_cookies(built, cli):
    app = client(built["target"])
    for host in ("go.acme.test", "GO.OTHER.TEST:8081"):
        found = app.get("/api/v1/offers", headers={**bearer(built["read"]), "Host": host},
                        status=404)  # fmt: skip
        error_of(found, 404)
        app.get("/api/v1/openapi.json", headers={"Host": host}, status=404)
    found = app.get("/api/v1/offers", headers=bearer(built["read"]))
    assert found.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert found.headers["Cache-Control"] == "no-store"
    assert found.headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in found.headers
    # a dashboard session is no key (and no open mode on this machine without users either)
    cli("user", "add", "admin", "--admin", "--password-stdin", input="correct horse battery\n")
    app.post("/login", {"username": "admin", "password": "correct horse battery"},
             headers={"Origin": "http://127.0.0.1:8081"}, status=303)  # fmt: skip
    app.get("/", status=200)
    error_of(app.get("/api/v1/offers", status=401), 401)
    fresh = webtest.TestApp(create_app(built["target"]), extra_environ=HOST)
    error_of(fresh.get("/api/v1/campaigns", status=401), 401)


# -- shorten and idempotency ----------------------------------------------------------------------


def test_shorten_one_message(built):
    app = client(built["target"])
    found = app.post_json("/api/v1/shorten", SHORTEN, headers=bearer(built["write"]), status=201)
    body = found.json
    assert {"message_id", "text", "links", "segments", "encoding"} <= set(body)
    (link,) = body["links"]
    assert link["slot"] == "link1" and link["url"] == f"https://go.acme.test/{link['id']}"
    assert body["text"] == f"Hi Ann, 20% off: {link['url']}"
    assert body["phone"] == "+12025550150"
    assert (body["segments"], body["encoding"]) == (1, "GSM-7")
    stored = query(built["target"], "SELECT body, account_id FROM messages WHERE id = ?",
                   body["message_id"])  # fmt: skip
    assert stored == [{"body": body["text"], "account_id": 1}]
    # a plain URL, a saved creative, a campaign of one message
    plain = {"text": "Go {{link1}}", "links": {"link1": "https://plain.example/a"},
             "campaign": "one-off"}  # fmt: skip
    found = app.post_json("/api/v1/shorten", plain, headers=bearer(built["write"]), status=201)
    assert found.json["campaign"] == "one-off"
    assert found.json["links"][0]["destination"] == "https://plain.example/a"
    creative = {"creative": "a", "links": {"link1": "Summer Sale"}, "fields": {"first_name": "Z"}}
    found = app.post_json("/api/v1/shorten", creative, headers=bearer(built["write"]), status=201)
    assert found.json["text"].startswith("Hi Z https://go.acme.test/")


def test_rendered_texts_make_no_creatives_and_a_campaign_gathers_one_offs(built, cli):
    """A platform renders each message itself: its texts are not saved as creatives (the
    account's creatives would grow by one a message), and the messages it sends under one
    campaign name gather in that campaign, created by the first."""
    app = client(built["target"])
    creatives = len(cli.json("creative", "list", "--account", "acme"))
    for name in ("Ann", "Bob", "Cy"):
        body = {"text": f"Hi {name}: {{{{link1}}}}", "links": {"link1": "Summer Sale"}}
        app.post_json("/api/v1/shorten", body, headers=bearer(built["write"]), status=201)
    assert len(cli.json("creative", "list", "--account", "acme")) == creatives
    (none,) = [
        r
        for r in cli.json("report", "--by", "creative", "--account", "acme")
        if r["creative"] == "(none)"
    ]
    assert none["sent"] == 3
    ids = set()
    for name in ("Dee", "Eve"):
        body = {"text": f"Welcome {name} {{{{link1}}}}", "links": {"link1": "Summer Sale"},
                "campaign": "welcome"}  # fmt: skip
        found = app.post_json("/api/v1/shorten", body, headers=bearer(built["write"]), status=201)
        ids.add(found.json["campaign"])
    assert ids == {"welcome"}
    (welcome,) = cli.json("report", "--campaign", "welcome", "--account", "acme")
    assert welcome["sent"] == 2
    # (the campaign's first message named its creative, as a campaign needs one; no more)
    assert len(cli.json("creative", "list", "--account", "acme")) == creatives + 1


def test_concurrent_one_offs_naming_a_new_campaign_make_one_campaign(built):
    """Sixteen one-off messages at once, each naming the same new campaign: one makes it, the
    others join it (on PostgreSQL a second insert of the name waits for the first's commit)."""
    from trackly_cli.core import api as core_api

    def send(n: int) -> int:
        conn = store.connect(built["target"])
        try:
            return core_api.shorten_message(
                conn,
                1,
                template=("text", f"Hi {n} {{{{link1}}}}"),
                links={"link1": "Summer Sale"},
                campaign="burst",
            ).status
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(send, range(16))) == [201] * 16
    (found,) = query(
        built["target"],
        "SELECT count(DISTINCT c.id) AS campaigns, count(*) AS messages FROM campaigns c"
        " JOIN messages m ON m.campaign_id = c.id WHERE c.name = 'burst'",
    )
    assert (found["campaigns"], found["messages"]) == (1, 16)


REFUSED = [
    ({"links": {"link1": "Summer Sale"}}, 400, "text", "text or creative"),
    ({"text": "x", "creative": "a"}, 400, "creative", "not text and creative"),
    ({"text": "Hi {{link1}}"}, 400, "links", "not bound"),
    ({"text": "Hi {{link1}}", "links": {"link1": "Old"}}, 400, "links", "archived"),
    ({"text": "Hi {{link1}}", "links": {"link1": "javascript:alert(1)"}}, 400, "links", ""),
    ({"text": "Hi {{link1}}", "links": {"slot": "Summer Sale"}}, 400, "links.slot", "slot"),
    ({"text": "Hi {{link1}}", "links": {"link1": "Nope"}}, 404, "links.link1", "no offer"),
    ({"creative": "nope", "links": {}}, 404, "creative", "no creative"),
    ({**SHORTEN, "phone": "not a phone"}, 400, "phone", "phone"),
    ({**SHORTEN, "phone": "+1 202 555 0199"}, 409, None, "opted out"),
    ({"text": "Hi {{first_name}}"}, 400, "fields", "first_name"),
    ({**SHORTEN, "campaign": "spring"}, 400, "campaign", "was sent to a list"),
    ({**SHORTEN, "campaign": "12345"}, 400, "campaign", "digits"),
]


def test_shorten_refuses_what_the_cli_refuses(built, cli):
    cli("optout", "add", "+1 202 555 0199", "--account", "acme")
    for body, status, field, says in REFUSED:
        sqlite = not built["target"].startswith("postgres")
        before = snapshot(Path(built["target"])) if sqlite else None
        found = client(built["target"]).post_json(
            "/api/v1/shorten", body, headers=bearer(built["write"]), expect_errors=True
        )
        assert says in error_of(found, status, field)
        if before is not None:  # (but for the key's last use)
            after = snapshot(Path(built["target"]))
            assert {**after, "api_keys": None} == {**before, "api_keys": None}


def test_an_idempotency_key_replays_the_first_answer(built):
    app = client(built["target"])
    headers = {**bearer(built["write"]), "Idempotency-Key": "order-1001"}
    first = app.post_json("/api/v1/shorten", SHORTEN, headers=headers, status=201)
    assert "Idempotent-Replayed" not in first.headers
    before = messages(built["target"])
    # the same body with its keys in another order and other spacing is the same request
    again = app.post("/api/v1/shorten", json.dumps(dict(reversed(SHORTEN.items())), indent=4),
                     headers=headers, status=201)  # fmt: skip
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.body == first.body
    assert messages(built["target"]) == before
    # the same key for another body: 409, nothing made
    other = {**SHORTEN, "fields": {"first_name": "Bob"}}
    found = app.post_json("/api/v1/shorten", other, headers=headers, status=409)
    assert "different request" in error_of(found, 409, "Idempotency-Key")
    assert messages(built["target"]) == before
    # another account's key may use the same Idempotency-Key for its own message
    theirs = {**SHORTEN, "links": {"link1": "Theirs"}}
    app.post_json("/api/v1/shorten", theirs,
                  headers={**bearer(built["other"]), "Idempotency-Key": "order-1001"},
                  status=201)  # fmt: skip
    # a request that failed is not remembered: fixed, the same key works
    headers["Idempotency-Key"] = "order-1002"
    bad = {**SHORTEN, "links": {"link1": "Old"}}
    app.post_json("/api/v1/shorten", bad, headers=headers, status=400)
    app.post_json("/api/v1/shorten", SHORTEN, headers=headers, status=201)
    for bad_key in ("", "x" * 256, "tab\there"):
        found = app.post_json("/api/v1/shorten", SHORTEN, headers={**headers,
                              "Idempotency-Key": bad_key}, status=400)  # fmt: skip
        error_of(found, 400, "Idempotency-Key")


def _dashboard_server(target: str, log: Path) -> tuple[subprocess.Popen, int]:
    """`trackly dashboard` (waitress, 8 threads) in a subprocess on a free port."""
    import time

    port = free_port()
    handle = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trackly_cli", "--db", target, "dashboard", "--port", str(port),
         "--threads", "8"],
        stdout=handle, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return proc, port
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)


@pytest.mark.slow
def test_twenty_concurrent_retries_make_one_message(built, tmp_path):
    """20 clients send the same request with one Idempotency-Key at once to a real `trackly
    dashboard`: exactly one message, and every client gets its answer."""
    proc, port = _dashboard_server(built["target"], tmp_path / "dashboard.log")
    before = messages(built["target"])
    payload = json.dumps(SHORTEN)

    def send(_):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(
                "POST",
                "/api/v1/shorten",
                payload,
                {
                    "Host": f"127.0.0.1:{port}",
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {built['write']}",
                    "Idempotency-Key": "same-20",
                },
            )
            answer = conn.getresponse()
            return answer.status, answer.getheader("Idempotent-Replayed"), answer.read()
        finally:
            conn.close()

    try:
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(send, range(20)))
    finally:
        proc.terminate()
        proc.wait(20)
    assert [status for status, _, _ in answers] == [201] * 20, answers
    assert sorted(replayed or "" for _, replayed, _ in answers) == [""] + ["true"] * 19
    assert len({body for _, _, body in answers}) == 1
    assert messages(built["target"]) == before + 1
    rows = query(built["target"], "SELECT key, status FROM api_idempotency")
    assert rows == [{"key": "same-20", "status": 201}]
    assert "Traceback" not in (tmp_path / "dashboard.log").read_text()


def test_prune_removes_idempotency_keys_kept_over_a_day(built, cli):
    """The keys of an account that stopped calling the API go with `trackly prune`; a key of
    the last day stays (a retry still gets its first answer)."""
    for key, created in (("old", "2020-01-01T00:00:00.000000Z"), ("new", clock.now_text())):
        execute(
            built["target"],
            "INSERT INTO api_idempotency (account_id, key, fingerprint, status, response,"
            " created_at) VALUES (1, ?, 'f', 201, '{}', ?)",
            key,
            created,
        )
    cli("prune")
    assert [r["key"] for r in query(built["target"], "SELECT key FROM api_idempotency")] == ["new"]


# -- campaigns, reports, feeds, offers, lists: the CLI's answers -----------------------------------


def test_a_campaign_for_a_list_and_its_streamed_outbox(built, cli, tmp_path):
    app = client(built["target"])
    body = {"list": "vip", "variants": [{"text": "A {{first_name}} {{link1}}"},
            {"creative": "a"}], "links": {"link1": "Summer Sale"}, "campaign": "api-june",
            "split": [50, 50], "seed": "7"}  # fmt: skip
    found = app.post_json("/api/v1/campaigns", body, headers=bearer(built["write"]), status=201)
    summary = found.json["campaign"]
    assert summary["campaign"] == "api-june" and summary["recipients"] == 3
    assert summary["outbox"] is None and summary["list"] == "vip"
    assert [v["weight"] for v in summary["variants"]] == [50, 50]
    # the keys of `trackly shorten --format json`
    cli_summary = cli.json("shorten", "a.txt", "--list", "vip", "--link", "link1=Summer Sale",
                           "--account", "acme", "--campaign", "cli-june")  # fmt: skip
    assert set(summary) == set(cli_summary)
    url = found.json["outbox_url"]
    assert found.headers["Location"] == url
    outbox = app.get(url, headers=bearer(built["read"]))
    assert outbox.content_type == "text/csv"
    cli("campaign", "outbox", "api-june", "--output", tmp_path / "again.csv", "--account", "acme")
    assert outbox.body == (tmp_path / "again.csv").read_bytes()
    by_name = app.get("/api/v1/campaigns/spring/outbox.csv", headers=bearer(built["read"]))
    assert by_name.body == built["spring_csv"].read_bytes()
    # the same name again, an unknown creative, a bad split: refused as by the CLI
    found = app.post_json("/api/v1/campaigns", body, headers=bearer(built["write"]), status=400)
    assert "already exists" in error_of(found, 400, "campaign")
    bad = {**body, "campaign": "x2", "split": [1]}
    assert "split" in error_of(
        app.post_json("/api/v1/campaigns", bad, headers=bearer(built["write"]), status=400), 400
    )
    both = {**body, "text": "x"}
    error_of(app.post_json("/api/v1/campaigns", both, headers=bearer(built["write"]),
                           status=400), 400, "variants")  # fmt: skip


REPORTS = [
    "",
    "by=offer",
    "by=day",
    "by=variant",
    "by=message&campaign=spring",
    "by=campaign&campaign=spring",
    "by=day&since=2026-01-01&until=2099-01-01",
]


def test_reports_are_the_rows_of_trackly_report_json(built, cli):
    for params in REPORTS:
        found = client(built["target"]).get(
            f"/api/v1/reports?{params}", headers=bearer(built["read"])
        )
        args = []
        for part in filter(None, params.split("&")):
            name, _, value = part.partition("=")
            args += [f"--{name}", value]
        assert found.json == cli.json("report", "--account", "acme", *args)
        assert found.json


BAD_REPORTS = [
    ("by=nope", "by"),
    ("since=yesterday-ish", "since"),
    ("since=2026-02-01&until=2026-01-01", "since"),
    ("campaign=nope", "campaign"),
    ("format=csv", "format"),
    ("by=day&by=", "by"),
]


def test_bad_report_parameters_are_4xx_naming_them(built):
    for params, field in BAD_REPORTS:
        found = client(built["target"]).get(
            f"/api/v1/reports?{params}", headers=bearer(built["read"]), expect_errors=True
        )
        assert found.status_int in (400, 404)
        error_of(found, found.status_int, field)


@pytest.mark.parametrize("kind", ["clicks", "conversions"])
def test_clicks_and_conversions_page_newest_first(built, cli, kind):
    app = client(built["target"])
    everything = cli.json(kind, "list", "--account", "acme", "--campaign", "spring")
    assert len(everything) >= 2
    pages, cursor = [], None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        found = app.get(f"/api/v1/{kind}?limit=1&campaign=spring{suffix}",
                        headers=bearer(built["read"])).json  # fmt: skip
        pages.append(found["data"])
        cursor = found["next_cursor"]
        if cursor is None:
            break
    assert all(len(page) == 1 for page in pages)
    assert [row for page in pages for row in page] == list(reversed(everything))
    whole = app.get(f"/api/v1/{kind}?limit=500", headers=bearer(built["read"])).json
    assert whole["data"] == list(reversed(everything)) and whole["next_cursor"] is None
    later = app.get(f"/api/v1/{kind}?since=2099-01-01", headers=bearer(built["read"])).json
    assert later == {"data": [], "next_cursor": None}
    for bad, field in (
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=x", "limit"),
        ("cursor=zzz", "cursor"),
        ("cursor=W10", "cursor"),
        ("bots=1", "bots"),
    ):
        found = app.get(f"/api/v1/{kind}?{bad}", headers=bearer(built["read"]), status=400)
        error_of(found, 400, field)


def test_offers_campaigns_and_lists_are_the_clis(built, cli):
    app = client(built["target"])
    read = bearer(built["read"])
    assert app.get("/api/v1/offers", headers=read).json == cli.json(
        "offer", "list", "--account", "acme"
    )
    assert app.get("/api/v1/campaigns", headers=read).json == cli.json(
        "campaign", "list", "--account", "acme"
    )
    assert app.get("/api/v1/lists", headers=read).json == cli.json("list", "list",
                                                                   "--account", "acme")  # fmt: skip
    write = bearer(built["write"])
    made = app.post_json(
        "/api/v1/offers",
        {
            "name": "Fall",
            "url": "https://shop.example/f",
            "payout": 1.25,
            "meta": {"og:title": "Fall"},
            "postback_ips": ["203.0.113.0/24"],
        },
        headers=write,
        status=201,
    ).json
    assert made == cli.json("offer", "show", "Fall", "--account", "acme")
    assert made["payout"] == "1.25" and made["postback_secret"]
    changed = app.patch_json("/api/v1/offers/Fall", {"payout": "3", "name": "Autumn",
                             "postback_ips": [], "title": "T"}, headers=write).json  # fmt: skip
    assert (changed["name"], changed["payout"], changed["postback_ips"]) == ("Autumn", "3.00", [])
    assert changed == cli.json("offer", "show", "Autumn", "--account", "acme")
    for body, status, field in (
        ({"name": "Autumn", "url": "https://x.example/"}, 409, None),
        ({"name": "Bad", "url": "javascript:alert(1)"}, 400, None),
        ({"name": "Bad", "url": "https://x.example/", "payout": "1.2.3"}, 400, "payout"),
        ({"name": "Bad", "url": "https://x.example/", "payout": True}, 400, "payout"),
        ({"name": "Bad", "url": "https://x.example/", "interstitial": "custom"}, 400,
         "interstitial"),
        ({"name": "Bad", "url": "https://x.example/", "attribution_days": 0}, 400,
         "attribution_days"),
        ({"name": "Bad", "url": "https://x.example/", "postback_ips": ["nope"]}, 400, None),
        ({"url": "https://x.example/"}, 400, "name"),
        ({"name": "Bad", "url": "https://x.example/", "colour": "red"}, 400, "colour"),
    ):  # fmt: skip
        found = app.post_json("/api/v1/offers", body, headers=write, expect_errors=True)
        error_of(found, status, field)
    error_of(app.patch_json("/api/v1/offers/Nope", {"payout": "1"}, headers=write,
                            status=404), 404, "name")  # fmt: skip
    assert [o["name"] for o in app.get("/api/v1/offers", headers=read).json] == [
        "Summer Sale",
        "Autumn",
    ]


# -- hostile requests ------------------------------------------------------------------------------


HOSTILE = [
    (b"", 400, None),
    (b"not json", 400, None),
    (b"\xff\xfe{}", 400, None),
    (b"[1, 2]", 400, None),
    (b"null", 400, None),
    (b'{"text": NaN}', 400, None),
    (b"[" * 50_000 + b"]" * 50_000, 413, None),
    (b"[" * 30_000 + b"]" * 30_000, 400, None),
    (b'{"text": ["Hi"]}', 400, "text"),
    (b'{"text": "Hi", "links": ["link1"]}', 400, "links"),
    (b'{"text": "Hi", "links": {"link1": 5}}', 400, "links.link1"),
    (b'{"text": "Hi", "fields": {"x": {"y": 1}}}', 400, "fields.x"),
    (b'{"text": "Hi", "phone": 12025550143}', 400, "phone"),
    (b'{"text": "Hi", "evil": true}', 400, "evil"),
    (b'{"text": "' + b"x" * 6000 + b'"}', 400, "text"),
    (b'{"text": "Hi\\u0000"}', 400, "text"),
    (b'{"text": "Hi", "fields": {"bad name": "x"}}', 400, "fields.bad name"),
    (b'{"text": "' + b"x" * (1 << 20) + b'"}', 413, None),
]


def test_hostile_bodies_are_4xx_naming_the_field_and_change_nothing(built):
    for raw, status, field in HOSTILE:
        before = messages(built["target"])
        found = client(built["target"]).post(
            "/api/v1/shorten",
            raw,
            headers={**bearer(built["write"]), "Content-Type": "application/json"},
            expect_errors=True,
        )
        error_of(found, status, field)
        assert messages(built["target"]) == before


def test_unknown_paths_and_methods_answer_json(built):
    app = client(built["target"])
    error_of(app.get("/api/v1/nope", headers=bearer(built["read"]), status=404), 404)
    found = app.delete("/api/v1/offers", headers=bearer(built["write"]), status=405)
    error_of(found, 405)
    assert "GET" in found.headers["Allow"]
    assert app.get("/nope", status=404).content_type == "text/html"


def test_an_unexpected_error_is_a_json_500_without_its_traceback(built, capsys):
    """A bug must not show its traceback to a client (it goes to the server's log); nothing
    in this module's other tests ends in one."""

    def broken(call):
        raise RuntimeError("secret detail")

    endpoint = api.Endpoint("GET", "/api/v1/broken", "a bug", broken)
    app = client(built["target"])
    app.app.route(endpoint.route, method="GET")(api.Api(built["target"]).run(endpoint))
    found = app.get("/api/v1/broken", headers=bearer(built["read"]), status=500)
    assert "secret detail" not in error_of(found, 500)
    assert "secret detail" in capsys.readouterr().err
