"""Webhooks (#17): events written with the rows they describe, on both stores and by every
path that writes those rows; signed posts to a real HTTP receiver on a loopback port, from a
real `trackly serve`; retries, a SIGKILLed sender, a dead receiver; the `webhook` commands."""

from __future__ import annotations

import http.server
import json
import re
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import BROWSER_UA, HUMAN_HEADERS, LiveServer, free_port, make_click, query

from trackly_cli.core import clicks, clock, conversions, delivery, store, webhooks
from trackly_cli.housekeeping import WebhookSender

README = Path(__file__).resolve().parents[1] / "README.md"
EVERY = ",".join(webhooks.EVENT_TYPES)
BOT_HEADERS = {"User-Agent": "facebookexternalhit/1.1"}


def readme_verify():
    """The README's receiver example (its Webhooks section's Python block): its `verify`."""
    section = README.read_text(encoding="utf-8").split("\n### Webhooks", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["verify"]


class Receiver:
    """A real HTTP receiver on a free loopback port. Records every POST (headers, body);
    answers with the statuses of `answers` in turn, then 200; with `hold`, the first POST gets
    no answer until `release()`."""

    def __init__(self, answers: tuple[int, ...] = (), hold: bool = False) -> None:
        self.requests: list[tuple[dict, bytes, float]] = []
        self.answers = list(answers)
        self.held = threading.Event() if hold else None
        self.arrived = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.arrived:
                    outer.requests.append((dict(self.headers), body, time.monotonic()))
                    first = len(outer.requests) == 1
                    status = outer.answers.pop(0) if outer.answers else 200
                    outer.arrived.notify_all()
                if outer.held is not None and first:
                    outer.held.wait(60)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/trackly"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)
        assert len(self.requests) >= count, f"{len(self.requests)} of {count} posts arrived"
        return self.events()

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body, _ in self.requests]

    def release(self) -> None:
        if self.held is not None:
            self.held.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(*answers: int, hold: bool = False) -> Receiver:
        made.append(Receiver(answers, hold))
        return made[-1]

    yield make
    for r in made:
        r.close()


def add_hook(cli, url: str, events: str = EVERY) -> dict:
    return cli.json("webhook", "add", url, "--events", events)


def outbox(target) -> list[dict]:
    return query(target, "SELECT * FROM webhook_events ORDER BY id")


# -- the commands ---------------------------------------------------------------------------


def test_add_list_enable_remove(cli, receiver):
    cli("account", "create", "acme")
    added = add_hook(cli, "https://crm.example/hooks?x=1", "conversion.created, click.first")
    assert added["id"] == 1 and re.fullmatch(r"whsec_[\w-]{32}", added["secret"])
    assert set(added) == {"id", "secret"}
    chosen = add_hook(cli, "http://127.0.0.1:9/h", "click.bot")
    listed = cli.json("webhook", "list")
    assert [h["events"] for h in listed] == [["click.first", "conversion.created"], ["click.bot"]]
    assert all("secret" not in h and h["enabled"] is True for h in listed)
    assert cli.json("webhook", "list", "--account", "acme") == listed
    table = cli("webhook", "list").stdout
    assert "https://crm.example/hooks?x=1" in table and "whsec_" not in table
    own = "s" * 20
    shown = cli("webhook", "add", "https://b.example/h", "--events", "click.bot", "--secret", own)
    assert shown.stdout == "s" * 20 + "\n" and "Added webhook 3 for acme" in shown.stderr
    assert query(cli_db(), "SELECT secret FROM webhooks WHERE id = 3")[0]["secret"] == "s" * 20

    cli("webhook", "enable", str(chosen["id"]))
    removed = cli.json("webhook", "remove", "1")
    assert removed["url"] == "https://crm.example/hooks?x=1" and removed["events_deleted"] == 0
    assert [h["id"] for h in cli.json("webhook", "list")] == [2, 3]
    assert cli.json("webhook", "deliveries") == []


def cli_db() -> str:
    import os

    return os.environ["TRACKLY_DB"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "ftp://x.example/", "--events", "click.first"], "must be http:// or https://"),
        (["add", "not a url", "--events", "click.first"], "spaces or control characters"),
        (["add", "https://", "--events", "click.first"], "with a host"),
        (["add", "http://x.example:99999/", "--events", "click.first"], "is not a URL"),
        (["add", "https://x.example/", "--events", "click.last"], "unknown event type"),
        (["add", "https://x.example/", "--events", " , "], "no event types given"),
        (["add", "https://x.example/", "--events", "click.bot", "--secret", "short"], "16 to 200"),
        (["add", "https://x.example/", "--events", "click.bot", "--account", "nope"], "no account"),
        (["remove", "7"], "no webhook '7'"),
        (["remove", "abc"], "no webhook 'abc'"),
        (["enable", "7"], "no webhook '7'"),
        (["test", "7"], "no webhook '7'"),
        (["deliveries", "7"], "no webhook '7'"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(cli, args, message):
    cli("account", "create", "acme")
    add_hook(cli, "https://crm.example/h")
    before = query(cli_db(), "SELECT * FROM webhooks")
    assert message in cli.error("webhook", *args)
    assert query(cli_db(), "SELECT * FROM webhooks") == before


def test_two_accounts_need_one_named(cli):
    cli("account", "create", "acme")
    cli("account", "create", "other")
    assert "choose one with --account" in cli.error(
        "webhook", "add", "https://x.example/", "--events", "click.bot"
    )
    cli("webhook", "add", "https://x.example/", "--events", "click.bot", "--account", "other")
    assert [h["account"] for h in cli.json("webhook", "list")] == ["other"]


def test_webhook_test_posts_a_signed_event_or_fails(cli, receiver):
    cli("account", "create", "acme")
    ok = receiver()
    hook = add_hook(cli, ok.url)
    done = cli("webhook", "test", str(hook["id"]))
    assert re.search(r"answered 200 in \d+ ms", done.stderr)
    ((headers, body, _),) = ok.requests
    event = json.loads(body)
    assert event["type"] == "webhook.test" and event["data"]["webhook_id"] == hook["id"]
    assert readme_verify()(hook["secret"], body, headers["Trackly-Signature"])
    assert not readme_verify()("whsec_another", body, headers["Trackly-Signature"])

    failing = receiver(503)
    broken = add_hook(cli, failing.url)
    assert "HTTP 503: ok" in cli.error("webhook", "test", str(broken["id"]))
    dead = add_hook(cli, f"http://127.0.0.1:{free_port()}/h")
    assert "connection refused" in cli.error("webhook", "test", str(dead["id"]))
    assert cli.json("webhook", "deliveries") == []  # (a test is not stored)


# -- the triggers, by every path, on both stores --------------------------------------------


def _send(cli, tmp_path: Path, target: str) -> dict:
    """acme: five contacts sent a two-link message; their links by (first name, slot)."""
    cli("account", "create", "acme")
    cli("domain", "add", "go.acme.test")
    cli("offer", "create", "Summer Sale", "--url", "https://shop.example/s", "--payout", "2.50")
    cli("list", "create", "vip")
    (tmp_path / "c.csv").write_text(
        "phone,first_name\n+12025550141,Ann\n+12025550142,Bob\n+12025550143,Cy\n"
        "+12025550144,Dee\n+12025550145,Eve\n",
        encoding="utf-8",
    )
    cli("contacts", "import", "vip", tmp_path / "c.csv")
    (tmp_path / "m.txt").write_text("Hi {{first_name}} {{link1}} {{link2}}", encoding="utf-8")
    bindings = ["--link", "link1=Summer Sale", "--link", "link2=https://plain.example/"]
    cli("shorten", "m.txt", "--list", "vip", *bindings, "--campaign", "spring", "-o", "o.csv")
    conn = store.connect(target)
    try:
        conn.execute("UPDATE messages SET created_at = ?", ("2026-01-01T00:00:00.000000Z",))
        rows = store.rows(
            conn,
            "SELECT l.id, l.slot, c.fields FROM short_links l JOIN contacts c"
            " ON c.id = l.contact_id",
        )
        return {
            (json.loads(r["fields"])["first_name"], r["slot"]): clicks.load_link(conn, r["id"])
            for r in rows
        }
    finally:
        conn.close()


def _postback(conn, link, event: str, txn_id: str, revenue: str = "49.90"):
    with store.write(conn):
        return conversions.record(
            conn,
            account_id=link.account_id,
            postback=conversions.parse(
                {"link_id": link.id, "event": event, "revenue": revenue, "txn_id": txn_id}
            ),
            link=link,
            offer=clicks.load_offer(conn, link.offer_id) if link.offer_id else None,
            source="conv",
            ip="203.0.113.9",
        )


def test_every_path_writes_its_event_once(cli, target, tmp_path):
    link = _send(cli, tmp_path, target)
    conn = store.connect(target)
    clicks.prepare_click_input(conn)
    try:
        # an account without hooks: its clicks write no event
        with store.write(conn):
            clicks.record_many(conn, [make_click(link["Cy", "link2"])])
        assert outbox(target) == []

        hook = add_hook(cli, "https://crm.example/h")
        add_hook(cli, "https://bots.example/h", "click.bot")
        cli("webhook", "add", "https://off.example/h", "--events", EVERY)
        conn.execute("UPDATE webhooks SET enabled = 0 WHERE id = 3")  # (a disabled hook)
        # the drain: a person's first click, a repeat, a bot's
        with store.write(conn):
            clicks.record_many(
                conn,
                [
                    make_click(link["Ann", "link1"]),
                    make_click(link["Ann", "link2"]),
                    make_click(link["Bob", "link1"], ip="192.0.2.1", is_bot=True),
                ],
            )
        # a conversion on a message only a bot clicked promotes that click
        _postback(conn, link["Bob", "link1"], "sale", "T-B")
        # the Continue button of an interstitial
        with store.write(conn):
            dee = link["Dee", "link1"]
            visitor = clicks.contact_visitor(dee.contact_id)
            clicks.confirm(conn, dee, visitor, "192.0.2.4", BROWSER_UA)
        # a click stored as a bot's that `bots rescan` finds a person's
        with store.write(conn):
            clicks.record_many(conn, [make_click(link["Eve", "link1"], is_bot=True)])
        # a refund before its sale is held; the sale applies it
        assert _postback(conn, link["Ann", "link1"], "refund", "T-A", "20").status == "pending"
        _postback(conn, link["Ann", "link1"], "sale", "T-A", "20")
    finally:
        conn.close()
    cli("bots", "rescan")
    (tmp_path / "conv.csv").write_text(
        f"link_id,event,revenue,txn_id\n{link['Cy', 'link1'].id},lead,0.5,I-1\n", encoding="utf-8"
    )
    cli("conversions", "import", tmp_path / "conv.csv")

    events = outbox(target)
    seen = sorted((e["webhook_id"], e["type"], json.loads(e["data"]).get("source")) for e in events)
    assert seen == sorted(
        [
            (1, "click.first", "click"),  # Ann
            (1, "click.bot", None),  # Bob
            (2, "click.bot", None),
            (1, "click.first", "promoted"),  # Bob
            (1, "conversion.created", "conv"),  # T-B
            (1, "click.first", "confirm"),  # Dee
            (1, "click.bot", None),  # Eve, judged a bot when stored
            (2, "click.bot", None),
            (1, "conversion.created", "conv"),  # T-A
            (1, "conversion.reversed", "conv"),  # T-A's held refund
            (1, "click.first", "rescan"),  # Eve
            (1, "conversion.created", "import"),  # I-1
        ]
    )
    # one event per row: every MessageClick since the hook, every conversion
    assert len([e for e in events if e["type"] == "click.first" and e["webhook_id"] == 1]) == (
        len(query(target, "SELECT id FROM message_clicks")) - 1  # (Cy's, before the hook)
    )
    assert len([e for e in events if e["type"].startswith("conversion.")]) == len(
        query(target, "SELECT id FROM conversions")
    )
    sale = next(
        json.loads(e["data"])
        for e in events
        if e["type"] == "conversion.created" and json.loads(e["data"])["txn_id"] == "T-A"
    )
    refund = next(json.loads(e["data"]) for e in events if e["type"] == "conversion.reversed")
    assert (sale["revenue"], sale["payout"], sale["event"]) == ("20.00", "2.50", "sale")
    assert (refund["revenue"], refund["payout"], refund["event"]) == ("-20.00", "-2.50", "refund")
    assert sale["phone"] == "+12025550141" and sale["campaign"] == "spring"
    assert sale["offer"] == "Summer Sale" and sale["link_id"] == link["Ann", "link1"].id
    assert sale["click_id"] is not None and sale["attribution"] == "attributed"
    first = next(json.loads(e["data"]) for e in events if e["type"] == "click.first")
    assert first["ip"] == "198.51.100.7" and first["user_agent"] == BROWSER_UA
    assert all(re.fullmatch(r"evt_[0-9a-f]{32}", e["event_id"]) for e in events)
    assert len({e["event_id"] for e in events}) == len(events)
    # and the deliveries listing shows them waiting
    listed = cli.json("webhook", "deliveries", str(hook["id"]), "--limit", "3")
    assert [d["status"] for d in listed] == ["pending"] * 3
    assert listed[0]["id"] == events[-1]["event_id"]


# -- delivery: the core, with an explicit clock ----------------------------------------------


def _bot_events(cli, links, url: str, count: int) -> None:
    add_hook(cli, url, "click.bot")
    conn = store.connect(cli_db())
    clicks.prepare_click_input(conn)
    try:
        with store.write(conn):
            clicks.record_many(
                conn, [make_click(links[i % len(links)], is_bot=True) for i in range(count)]
            )
    finally:
        conn.close()


def test_a_dead_receiver_is_retried_on_schedule_then_given_up_and_disabled(cli, links, db):
    _bot_events(cli, links, f"http://127.0.0.1:{free_port()}/h", 6)
    start = clock.from_text(store.scalar(db, "SELECT max(created_at) FROM webhook_events"))
    me = delivery.owner()

    claimed = delivery.claim(db, me, 4, start)
    assert len(claimed) == 4  # (at most what was asked: what a sender holds is bounded)
    assert len(delivery.claim(db, "other:1", 10, start)) == 2  # (the rest)
    assert delivery.claim(db, "third:1", 10, start) == []  # (none is sent twice at once)
    hooks = delivery.hooks(db, {e["webhook_id"] for e in claimed})
    outcome = delivery.deliver(claimed[0], hooks[1])
    assert (outcome.status, outcome.error) == (None, "connection refused")

    event = claimed[0]
    now = start
    waits = []
    while True:
        done = delivery.record(db, event, outcome, now)
        row = store.row(db, "SELECT * FROM webhook_events WHERE id = ?", (event["id"],))
        if done.given_up:
            break
        then = clock.from_text(row["next_attempt_at"])
        waits.append((then - now).total_seconds())
        now = then
        (event,) = [e for e in delivery.claim(db, me, 10, now) if e["id"] == event["id"]]
    assert waits[:4] == [1, 5, 20, 60]  # within a minute, then growing
    assert waits[: len(delivery.SCHEDULE)] == list(delivery.SCHEDULE)
    # (the last attempt: 24 hours after the event)
    assert now == clock.from_text(event["created_at"]) + timedelta(hours=24)
    assert row["given_up_at"] and row["next_attempt_at"] is None
    assert row["attempts"] == len(waits) + 1 and row["last_error"] == "connection refused"
    # the next failure comes 24 hours after the first: the hook is disabled, its waiting
    # events given up
    assert done.disabled is None
    later = now + delivery.LEASE + timedelta(seconds=1)  # (their claims above ran out)
    (other,) = delivery.claim(db, me, 1, later)
    assert store.scalar(db, "SELECT count(*) FROM webhook_events WHERE given_up_at IS NULL") == 5
    done = delivery.record(db, other, outcome, later)
    assert done.disabled is not None and done.disabled["id"] == 1
    hook = cli.json("webhook", "list")[0]
    assert hook["enabled"] is False
    assert hook["disabled_reason"].startswith("every delivery failed for 24 hours")
    assert store.scalar(db, "SELECT count(*) FROM webhook_events WHERE given_up_at IS NULL") == 0
    assert {d["status"] for d in cli.json("webhook", "deliveries", "--failed")} == {"given up"}
    # enabled again, it starts afresh; a success clears failing_since
    cli("webhook", "enable", "1")
    assert cli.json("webhook", "list")[0]["failing_since"] is None


def test_a_success_ends_the_failing_streak(cli, links, db, receiver):
    ok = receiver()
    _bot_events(cli, links, ok.url, 2)
    now = clock.utcnow() + timedelta(seconds=1)
    first, second = delivery.claim(db, delivery.owner(), 2, now)
    delivery.record(db, first, delivery.Outcome(500, "HTTP 500", 3), now)
    assert store.scalar(db, "SELECT failing_since FROM webhooks") is not None
    hooks = delivery.hooks(db, {1})
    assert delivery.record(db, second, delivery.deliver(second, hooks[1]), now).delivered
    assert store.scalar(db, "SELECT failing_since FROM webhooks") is None
    assert len(ok.requests) == 1


def test_prune_keeps_a_month_of_sent_events(cli, links, db):
    _bot_events(cli, links, "https://crm.example/h", 5)
    db.execute("UPDATE webhook_events SET next_attempt_at = NULL, delivered_at = created_at")
    db.execute("UPDATE webhook_events SET created_at = ? WHERE id <= 3", ("2020-01-01T00:00:00Z",))
    db.execute("UPDATE webhook_events SET next_attempt_at = created_at WHERE id = 3")
    assert webhooks.prune(db) == 2  # (not one still to send)
    assert [r[0] for r in db.execute("SELECT id FROM webhook_events ORDER BY id")] == [3, 4, 5]


# -- delivery: the sender, against a real receiver ------------------------------------------


@pytest.mark.slow
def test_a_receiver_failing_twice_gets_the_event_acknowledged_once(cli, links, db, receiver):
    flaky = receiver(500, 500)
    _bot_events(cli, links, flaky.url, 1)
    with WebhookSender(cli_db(), poll=0.1):
        flaky.wait_for(3, timeout=20)
        time.sleep(1.5)  # (nothing more comes)
    assert len(flaky.requests) == 3
    bodies = {body for _, body, _ in flaky.requests}
    assert len(bodies) == 1  # the same bytes every time
    at = [t for _, _, t in flaky.requests]
    assert at[1] - at[0] >= 0.9 and at[2] - at[1] >= 4.9  # (1 s, then 5 s)
    (row,) = outbox(cli_db())
    assert (row["attempts"], row["last_status"], row["last_error"]) == (3, 200, None)
    assert row["delivered_at"] and row["next_attempt_at"] is None and row["claimed_by"] is None
    assert {h["Trackly-Event-Id"] for h, _, _ in flaky.requests} == {row["event_id"]}


def test_a_dead_receiver_never_has_more_claims_than_workers(cli, links, db):
    _bot_events(cli, links, f"http://127.0.0.1:{free_port()}/h", 40)
    sender = WebhookSender(cli_db(), workers=3, poll=0.05).start()
    try:
        most = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            held = store.scalar(
                db,
                "SELECT count(*) FROM webhook_events WHERE claimed_by IS NOT NULL",
            )
            most = max(most, held, sender._busy)
            time.sleep(0.01)
    finally:
        sender.stop()
    assert 1 <= most <= 3
    rows = outbox(cli_db())
    assert all(r["attempts"] >= 1 and r["last_error"] == "connection refused" for r in rows)
    assert all(r["claimed_by"] is None and r["next_attempt_at"] for r in rows)


# -- a real `trackly serve` ------------------------------------------------------------------


@pytest.mark.slow
def test_a_live_server_posts_each_event_signed(cli, campaign, db_path, receiver):
    hooks = receiver()
    hook = add_hook(cli, hooks.url)
    verify = readme_verify()
    ann, bob = campaign["by_slot"]["link1"][0], campaign["by_slot"]["link1"][1]
    server = LiveServer(db_path)
    try:
        assert server.request(f"/{ann['id']}", headers=HUMAN_HEADERS)[0] == 302
        (first,) = hooks.wait_for(1)
        assert server.request(f"/{bob['id']}", headers=BOT_HEADERS)[0] == 302
        bot = hooks.wait_for(2)[1]
        status, _, _ = server.request(f"/conv?link_id={ann['id']}&revenue=49.90&txn_id=S-1")
        assert status == 200
        sale = hooks.wait_for(3)[2]
        secret = query(db_path, "SELECT postback_secret FROM offers")[0]["postback_secret"]
        refund = f"/conv/offer?offer_id=1&postback_secret={secret}&event=refund&txn_id=S-1"
        assert server.request(refund)[0] == 200
        reversed_ = hooks.wait_for(4)[3]
    finally:
        server.stop()
    assert first["type"] == "click.first" and first["data"]["phone"] == ann["phone"]
    assert first["data"]["link_id"] == ann["id"] and first["data"]["campaign"] == "spring"
    assert first["data"]["user_agent"] == HUMAN_HEADERS["User-Agent"]
    assert bot["type"] == "click.bot" and bot["data"]["link_id"] == bob["id"]
    assert sale["type"] == "conversion.created"
    assert (sale["data"]["revenue"], sale["data"]["payout"]) == ("49.90", "2.50")
    assert reversed_["type"] == "conversion.reversed" and reversed_["data"]["revenue"] == "-49.90"
    for headers, body, _ in hooks.requests:
        assert verify(hook["secret"], body, headers["Trackly-Signature"])
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"].startswith("Trackly-Webhooks/")
        assert headers["Trackly-Event-Id"] == json.loads(body)["id"]
    assert [r["status"] for r in cli.json("webhook", "deliveries")] == ["delivered"] * 4


@pytest.mark.slow
def test_a_sigkilled_sender_loses_no_event(cli, campaign, db_path, receiver):
    """The receiver holds the first post; the server is killed (SIGKILL) while it waits, with
    the event claimed and not delivered; started again, it posts the event at once (its claim,
    of a dead process, is not waited out) and once more only."""
    hooks = receiver(hold=True)
    add_hook(cli, hooks.url, "click.first")
    ann = campaign["by_slot"]["link1"][0]
    server = LiveServer(db_path)
    try:
        assert server.request(f"/{ann['id']}", headers=HUMAN_HEADERS)[0] == 302
        (held,) = hooks.wait_for(1)
        (row,) = outbox(db_path)
        assert row["claimed_by"].endswith(f":{server.proc.pid}") and row["delivered_at"] is None
    finally:
        server.stop(signal.SIGKILL)
    started = time.monotonic()
    again = LiveServer(db_path)
    try:
        events = hooks.wait_for(2, timeout=10)
        assert time.monotonic() - started < delivery.LEASE.total_seconds() / 4
        hooks.release()
        time.sleep(1.5)  # (nothing more comes)
    finally:
        again.stop()
    assert len(hooks.requests) == 2
    assert events[1] == held  # the same event, the same id
    (row,) = outbox(db_path)
    assert row["delivered_at"] and row["attempts"] == 1 and row["event_id"] == held["id"]
    assert len(query(db_path, "SELECT id FROM message_clicks")) == 1  # (one click, one event)
