"""An account with history, built the same way on SQLite and PostgreSQL for the erase and
delete tests (tests/test_erase.py, tests/test_delete.py): contacts imported, a campaign sent,
clicks stored by the server's own writer (clicks.record_many) and a conversion recorded as a
postback is (conversions.record), so that the schema's triggers keep the report counters."""

from __future__ import annotations

from pathlib import Path

from conftest import BROWSER_UA

from trackly_cli.core import clicks, clock, conversions, dialect, store, webhooks

# Ann's number and merge fields are what an erase must leave no trace of.
ANN = "+12025550143"
ANN_DIGITS = b"2025550143"
ANN_NAME = "Quillonia"
ANN_CITY = "Xanadumbria"
ANN_IP = "198.51.100.77"
ANN_UA = BROWSER_UA + " QuilloniaPhone"
REFERER = "https://mail.example/inbox/quillonia"
BOB = "+12025550144"
BOB_IP = "203.0.113.44"
# An A/B assignment that gives both variants a message.
SEED = "3"  # (Ann and Cy get A, Bob B)
HOOK_URL = "http://127.0.0.1:9/trackly"
DIMENSIONS = ("campaign", "offer", "creative", "list", "variant", "day", "domain")


def build(cli, tmp_path: Path, target: str) -> None:
    """acme: list vip (Ann, Bob, Cy), campaign 'spring' (an A/B test; link1 = Summer Sale,
    link2 = a URL) to it; Ann clicked both links (and a scanner hit link1), converted; Bob
    clicked once. A webhook subscribed to every event type (to a port nobody listens on: no
    sender runs here) holds each event in its outbox."""
    cli("account", "create", "acme")
    cli("webhook", "add", HOOK_URL, "--events", ",".join(webhooks.EVENT_TYPES))
    cli("domain", "add", "go.acme.test", "--account", "acme")
    cli("offer", "create", "Summer Sale", "--url", "https://shop.example/s?sub={link_id}")
    cli("offer", "create", "Spare", "--url", "https://shop.example/spare")
    cli("list", "create", "vip")
    (tmp_path / "c.csv").write_text(
        f"phone,first_name,city\n{ANN},{ANN_NAME},{ANN_CITY}\n{BOB},Bob,Denver\n"
        "+12025550145,Cy,Austin\n",
        encoding="utf-8",
    )
    cli("contacts", "import", "vip", tmp_path / "c.csv")
    (tmp_path / "msg.txt").write_text(
        "Hi {{first_name}} ({{phone}}) {{link1}} {{link2}}", encoding="utf-8"
    )
    (tmp_path / "msg-b.txt").write_text(
        "{{first_name}}, for {{phone}}: {{link1}} {{link2}}", encoding="utf-8"
    )
    (tmp_path / "spare.txt").write_text("Nothing sent with this {{link1}}", encoding="utf-8")
    cli("creative", "add", "spare", tmp_path / "spare.txt")
    cli(
        "shorten",
        "msg.txt",
        "msg-b.txt",
        "--list",
        "vip",
        "--link",
        "link1=Summer Sale",
        "--link",
        "link2=https://plain.example/page",
        "--campaign",
        "spring",
        "--seed",
        SEED,
        "--output",
        tmp_path / "outbox.csv",
    )
    conn = store.connect(target)
    try:
        # sent long enough ago that no click is too fast to be a person's
        conn.execute("UPDATE messages SET created_at = ?", ("2026-01-01T00:00:00.000000Z",))
        found = store.rows(
            conn,
            "SELECT l.id, l.slot, c.phone FROM short_links l JOIN contacts c"
            " ON c.id = l.contact_id ORDER BY l.id",
        )
        link = {(r["phone"], r["slot"]): r["id"] for r in found}
        clicks.prepare_click_input(conn)
        with store.write(conn):
            clicks.record_many(
                conn,
                [
                    _click(conn, link[ANN, "link1"], ANN_IP, ANN_UA),
                    _click(conn, link[ANN, "link1"], ANN_IP, ANN_UA),
                    _click(conn, link[ANN, "link2"], ANN_IP, ANN_UA),
                    _click(conn, link[ANN, "link1"], "192.0.2.9", "curl/8.0", bot=True),
                    _click(conn, link[BOB, "link1"], BOB_IP, BROWSER_UA),
                ],
            )
        ann = clicks.load_link(conn, link[ANN, "link1"])
        with store.write(conn):
            conversions.record(
                conn,
                account_id=ann.account_id,
                postback=conversions.parse(
                    {"link_id": ann.id, "event": "sale", "revenue": "49.90", "txn_id": "T-1"}
                ),
                link=ann,
                offer=clicks.load_offer(conn, ann.offer_id),
                source="conv",
                ip=ANN_IP,
            )
    finally:
        conn.close()


def _click(conn, link_id: str, ip: str, agent: str, bot: bool = False) -> clicks.Click:
    """A hit; Ann's (with her IP) came from a mail whose address names her."""
    link = clicks.load_link(conn, link_id)
    return clicks.Click(
        link,
        clock.now_text(),
        "GET",
        ip,
        agent,
        REFERER if ip == ANN_IP else "https://mail.example/inbox",
        "en-US,en;q=0.9",
        clicks.visitor(link, ip, agent, b"secret"),
        bot,
        "user agent: curl (test)" if bot else "",
        not bot,
    )


def reports(cli) -> dict[str, list]:
    """Every `trackly report --by …` as JSON (by message: without the phone column), and the
    campaign's A/B verdict."""
    found = {by: cli.json("report", "--by", by) for by in DIMENSIONS}
    found["ab"] = cli.json("ab", "spring")
    found["message"] = [
        {k: v for k, v in row.items() if k != "phone"}
        for row in cli.json("report", "--by", "message", "--campaign", "spring")
    ]
    return found


def everything(target: str) -> dict[str, list]:
    """Every row of every table (on either store), to check that a refused command wrote
    nothing."""
    conn = store.connect(target)
    try:
        if conn.dialect == dialect.SQLITE:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        else:
            sql = (
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() ORDER BY table_name"
            )
        names = [r[0] for r in conn.execute(sql).fetchall()]
        return {n: sorted(map(repr, conn.execute(f"SELECT * FROM {n}").fetchall())) for n in names}
    finally:
        conn.close()
