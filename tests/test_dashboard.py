"""The operator's dashboard in-process (WebTest) and `trackly user`, on SQLite and PostgreSQL:
logins, sessions, CSRF, the rate limit, who sees which account, every page and CSV, the numbers
against `trackly report --format json`, escaping and the security headers."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
import webtest
from conftest import HUMAN_HEADERS, execute, query, snapshot

from trackly_cli.core import store
from trackly_cli.dashboard.app import CONTENT_SECURITY_POLICY, create_app

XSS_UA = "<img src=x onerror=alert(1)>"
PREVIEW_UA = "facebookexternalhit/1.1 Facebot Twitterbot/1.0"
PASSWORD = "correct horse battery"
PAGES = [
    "/",
    "/campaigns",
    "/offers",
    "/creatives",
    "/lists",
    "/domains",
    "/live",
    "/live.json",
    "/contacts",
]
ORIGIN = {"Origin": "http://dash.test"}


def _tracking_app(target: str, tmp_path: Path):
    from trackly_cli.server import Tracker
    from trackly_cli.server import create_app as tracking_app

    tracker = Tracker(target, journal=tmp_path / "journal")
    app = webtest.TestApp(
        tracking_app(target, tracker=tracker),
        extra_environ={"HTTP_HOST": "go.acme.test", "REMOTE_ADDR": "198.51.100.7"},
    )
    return app, tracker


@pytest.fixture
def built(cli, target: str, tmp_path: Path) -> dict:
    """acme (domain go.acme.test, offer Summer Sale, list vip of 3 with a merge field that is
    HTML, an A/B campaign 'spring' with a person's click, a bot's click whose user agent is
    HTML, and a sale) and other (its own campaign 'zeta'); users admin and bob (acme only)."""
    cli("account", "create", "acme")
    cli("domain", "add", "go.acme.test", "--account", "acme")
    cli("offer", "create", "Summer Sale", "--url", "https://shop.example/?s={link_id}",
        "--payout", "2.50", "--account", "acme")  # fmt: skip
    (tmp_path / "c.csv").write_text(
        "phone,first_name\n+12025550143,Ann\n+12025550144,<b>Bob</b>\n+12025550145,Cy\n",
        encoding="utf-8",
    )
    cli("list", "create", "vip", "--account", "acme")
    cli("contacts", "import", "vip", tmp_path / "c.csv", "--account", "acme")
    (tmp_path / "a.txt").write_text("Hi {{first_name}} {{link1}}", encoding="utf-8")
    (tmp_path / "b.txt").write_text("Hey {{first_name}}: {{link1}}", encoding="utf-8")
    # (seed s1 gives contacts 1-3 both variants, so that there is an A/B verdict)
    cli("shorten", "a.txt", "b.txt", "--list", "vip", "--link", "link1=Summer Sale",
        "--campaign", "spring", "--account", "acme", "--seed", "s1")  # fmt: skip
    cli("account", "create", "other")
    cli("domain", "add", "go.other.test", "--account", "other")
    cli("list", "create", "quiet", "--account", "other")
    cli("contacts", "import", "quiet", tmp_path / "c.csv", "--account", "other")
    (tmp_path / "o.txt").write_text("Psst https://other.example/x", encoding="utf-8")
    cli("shorten", "o.txt", "--list", "quiet", "--campaign", "zeta", "--account", "other")
    conn = store.connect(target)
    try:
        # sent long ago: no click is too fast to be a person's
        conn.execute("UPDATE messages SET created_at = '2026-01-01T00:00:00.000000Z'")
        links = store.rows(
            conn,
            "SELECT l.id, l.account_id, l.message_id, l.contact_id, k.name AS campaign"
            " FROM short_links l JOIN messages m ON m.id = l.message_id"
            " JOIN campaigns k ON k.id = m.campaign_id ORDER BY m.id",
        )
        ids = {r["name"]: r["id"] for r in store.rows(conn, "SELECT name, id FROM campaigns")}
        secret = store.scalar(conn, "SELECT postback_secret FROM offers")
    finally:
        conn.close()
    spring = [x for x in links if x["campaign"] == "spring"]
    app, tracker = _tracking_app(target, tmp_path)
    try:
        app.get(f"/{spring[0]['id']}", headers=HUMAN_HEADERS, status=302)
        app.get(f"/{spring[1]['id']}", headers={"User-Agent": XSS_UA}, status="*")
        app.get(f"/{spring[2]['id']}", headers={"User-Agent": PREVIEW_UA}, status="*")
        tracker.sync()
        app.get(f"/conv?link_id={spring[0]['id']}&revenue=49.90&txn_id=T-1", status=200)
        tracker.sync()
    finally:
        tracker.close()
    hidden_contact = next(x for x in links if x["campaign"] == "zeta")["contact_id"]
    cli("user", "add", "admin", "--admin", "--password-stdin", input=PASSWORD + "\n")
    cli("user", "add", "bob", "--account", "acme", "--password-stdin", input=PASSWORD + "\n")
    return {
        "target": target,
        "campaigns": ids,
        "spring": spring,
        "hidden_contact": hidden_contact,
        "secret": secret,
    }


def dashboard(target: str, **environ) -> webtest.TestApp:
    return webtest.TestApp(
        create_app(target),
        extra_environ={"HTTP_HOST": "dash.test", "REMOTE_ADDR": "203.0.113.9", **environ},
    )


def logged_in(target: str, name: str = "admin") -> webtest.TestApp:
    app = dashboard(target)
    app.post("/login", {"username": name, "password": PASSWORD}, headers=ORIGIN, status=303)
    return app


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def report_json(cli, *args) -> list[dict]:
    return cli.json("report", "--account", "acme", *args)


def as_csv(value) -> str:
    return "" if value is None else str(value)


# -- trackly user ----------------------------------------------------------------------------------


def test_user_commands(cli, target: str):
    cli("account", "create", "acme")
    cli("account", "create", "beta")
    cli("user", "add", "ann", "--account", "acme", "--account", "beta", "--password-stdin",
        input="first-password\n")  # fmt: skip
    cli("user", "add", "root", "--admin", "--password-stdin", input="second-password\n")
    listed = cli.json("user", "list")
    assert [(u["name"], u["admin"], u["accounts"]) for u in listed] == [
        ("ann", False, ["acme", "beta"]),
        ("root", True, ["(all)"]),
    ]
    table = cli("user", "list").stdout
    assert "ann" in table and "scrypt" not in table
    [stored] = query(target, "SELECT password_hash FROM users WHERE name = 'ann'")
    scheme, n, r, p, salt, digest = stored["password_hash"].split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32

    cli("user", "passwd", "ann", "--password-stdin", input="third-password\n")
    [changed] = query(target, "SELECT password_hash FROM users WHERE name = 'ann'")
    assert changed["password_hash"] != stored["password_hash"]
    cli("user", "remove", "root")
    assert [u["name"] for u in cli.json("user", "list")] == ["ann"]


def _users_rows(target: str) -> list[dict]:
    return query(target, "SELECT * FROM users ORDER BY id") + query(
        target, "SELECT * FROM user_accounts ORDER BY user_id, account_id"
    )


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("add", "x", "--account", "nope"), "good-password\n", "no account 'nope'"),
        (("add", "x", "--account", "acme", "--account", "nope"), "good-password\n", "nope"),
        (("add", "ann", "--admin"), "good-password\n", "user 'ann' already exists"),
        (("add", "ANN", "--admin"), "good-password\n", "already exists"),
        (("add", "x", "--admin"), "\n", "the password is empty"),
        (("add", "x", "--admin"), "", "the password is empty"),
        (("add", "x", "--admin"), "short\n", "shorter than 8"),
        (("add", "x"), "good-password\n", "--account A"),
        (("add", "123", "--admin"), "good-password\n", "only digits"),
        (("remove", "nobody"), None, "no user 'nobody'"),
        (("passwd", "nobody"), "good-password\n", "no user 'nobody'"),
        (("passwd", "ann"), "\n", "the password is empty"),
    ],
)
def test_user_bad_input_is_one_line_and_writes_nothing(cli, target, args, stdin, message):
    cli("account", "create", "acme")
    cli("user", "add", "ann", "--account", "acme", "--password-stdin", input="first-password\n")
    before = _users_rows(target)
    whole = snapshot(Path(target)) if not target.startswith("postgres") else None
    extra = ("--password-stdin",) if stdin is not None else ()
    error = cli.error("user", *args, *extra, input=stdin)
    assert message in error
    assert _users_rows(target) == before
    if whole is not None:
        assert snapshot(Path(target)) == whole


def test_user_add_prompts_twice_with_hidden_input(cli, db_path):
    cli("account", "create", "acme")
    result = cli("user", "add", "ann", "--admin", input="pass-word-1\npass-word-1\n")
    assert "pass-word-1" not in result.output  # (hidden)
    error = cli.error("user", "add", "bo", "--admin", input="pass-word-1\npass-word-2\n")
    assert "the two passwords differ" in error
    assert [u["name"] for u in cli.json("user", "list")] == ["ann"]


# -- logging in ---------------------------------------------------------------------------------


def test_every_page_sends_a_visitor_without_a_session_to_the_login(built):
    app = dashboard(built["target"])
    campaign = built["campaigns"]["spring"]
    for path in [*PAGES, f"/campaigns/{campaign}", "/contacts/1", "/?csv=totals"]:
        answer = app.get(path, status=303)
        assert answer.headers["Location"].endswith("/login"), path
    app.set_cookie("trackly_session", "not-a-session")
    assert app.get("/", status=303).headers["Location"].endswith("/login")


def test_login_sets_a_safe_cookie_and_logout_ends_the_session(built):
    target = built["target"]
    app = dashboard(target)
    form = app.get("/login")
    assert 'name="username"' in form and 'name="password"' in form
    answer = app.post(
        "/login", {"username": "admin", "password": PASSWORD}, headers=ORIGIN, status=303
    )
    assert answer.headers["Location"] == "/"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("trackly_session=")
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "path=/", "samesite=lax"} <= flags
    assert "secure" not in flags  # (plain http)
    token = cookie.split(";")[0].split("=", 1)[1]
    [session] = query(target, "SELECT token_hash FROM user_sessions")
    assert token not in session["token_hash"] and len(session["token_hash"]) == 64
    assert app.get("/").status_int == 200
    assert app.get("/login", status=303).headers["Location"] == "/"
    # (a forged X-Forwarded-Host moves no redirect elsewhere)
    forged = app.get("/login", headers={"X-Forwarded-Host": "evil.example"}, status=303)
    assert forged.headers["Location"] == "/"

    app.post("/logout", headers=ORIGIN, status=303)
    assert query(target, "SELECT token_hash FROM user_sessions") == []
    app.set_cookie("trackly_session", token)  # (the old cookie, kept by an attacker)
    assert app.get("/", status=303).headers["Location"].endswith("/login")


def test_the_cookie_is_secure_over_https(built):
    app = dashboard(built["target"], **{"wsgi.url_scheme": "https"})
    answer = app.post(
        "/login",
        {"username": "admin", "password": PASSWORD},
        headers={"Origin": "https://dash.test"},
        status=303,
    )
    assert "secure" in {p.strip().lower() for p in answer.headers["Set-Cookie"].split(";")}


def test_a_forged_x_forwarded_proto_makes_no_secure_cookie(built):
    """Only the WSGI server's scheme counts (waitress believes X-Forwarded-Proto only from a
    --trusted-proxy)."""
    app = dashboard(built["target"])
    answer = app.post(
        "/login",
        {"username": "admin", "password": PASSWORD},
        headers={**ORIGIN, "X-Forwarded-Proto": "https"},
        status=303,
    )
    assert "secure" not in {p.strip().lower() for p in answer.headers["Set-Cookie"].split(";")}


def test_a_wrong_password_shows_the_form_again(built):
    app = dashboard(built["target"])
    for name, password in (("admin", "wrong-password"), ("nobody", PASSWORD), ("", "")):
        answer = app.post(
            "/login", {"username": name, "password": password}, headers=ORIGIN, status=401
        )
        assert "Wrong user or password." in answer
        assert 'name="password"' in answer
        assert "Set-Cookie" not in answer.headers
    assert query(built["target"], "SELECT * FROM user_sessions") == []


def test_csrf_a_post_from_another_site_is_refused(built):
    target = built["target"]
    app = dashboard(target)
    good = {"username": "admin", "password": PASSWORD}
    for headers in ({}, {"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/login"},
                    {"Origin": "http://dash.test.evil.example"}):  # fmt: skip
        answer = app.post("/login", good, headers=headers, status=403)
        assert "Set-Cookie" not in answer.headers
    # a same-site Referer does (a browser that sends no Origin)
    app.post("/login", good, headers={"Referer": "http://dash.test/login"}, status=303)
    app.post("/logout", headers={"Origin": "https://evil.example"}, status=403)
    app.post("/logout", status=403)
    assert len(query(target, "SELECT * FROM user_sessions")) == 1
    assert app.get("/").status_int == 200  # still logged in
    app.post("/logout", headers=ORIGIN, status=303)
    assert query(target, "SELECT * FROM user_sessions") == []


def test_failed_logins_are_limited_per_ip(built):
    app = dashboard(built["target"])
    for _ in range(10):
        app.post("/login", {"username": "admin", "password": "nope-nope"}, headers=ORIGIN,
                 status=401)  # fmt: skip
    answer = app.post(
        "/login", {"username": "admin", "password": PASSWORD}, headers=ORIGIN, status=429
    )
    assert 0 < int(answer.headers["Retry-After"]) <= 15 * 60
    assert "Set-Cookie" not in answer.headers
    # another address is not held back (the limit is per IP, kept in memory)
    app.post(
        "/login",
        {"username": "admin", "password": PASSWORD},
        headers=ORIGIN,
        extra_environ={"REMOTE_ADDR": "203.0.113.10"},
        status=303,
    )


# -- pages, accounts, CSV -------------------------------------------------------------------------


def test_every_page_and_csv_answers_with_the_security_headers(built):
    app = logged_in(built["target"])
    spring = built["campaigns"]["spring"]
    pages = [*PAGES, f"/campaigns/{spring}", "/contacts/1", "/campaigns?sort=clicks&dir=asc"]
    for path in pages:
        answer = app.get(path)
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == "no-store"
        if path != "/live.json":
            assert "<script>" not in answer.text and "style=" not in answer.text, path
            assert "<h1>" in answer.text
    for path, table in (("/", "totals"), ("/", "timeline"), ("/campaigns", "campaign"),
                        (f"/campaigns/{spring}", "variants"), ("/lists", "bot_settings"),
                        ("/live", "clicks"), ("/contacts/1", "messages")):  # fmt: skip
        answer = app.get(path, {"csv": table})
        assert answer.content_type == "text/csv"
        assert f'filename="{table}.csv"' in answer.headers["Content-Disposition"]
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    for path, status in (
        ("/nothing", 404),
        ("/campaigns/99999", 404),
        ("/?range=year", 400),
        ("/login", 303),
        ("/static/style.css", 200),
        ("/static/x.js", 404),
    ):
        answer = app.get(path, status=status)
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
    assert dashboard(built["target"]).get("/").headers["Content-Security-Policy"]


def test_overview_and_tables_equal_trackly_report_json(built, cli):
    app = logged_in(built["target"], "bob")
    for query_range, args in (({}, ()), ({"range": "7d"}, ("--since", "7d")),
                              ({"range": "custom", "since": "2026-01-01", "until": "2099-12-31"},
                               ("--since", "2026-01-01", "--until", "2099-12-31"))):  # fmt: skip
        rows = report_json(cli, *args)
        assert rows, "the report has rows"
        [totals] = csv_rows(app.get("/", {**query_range, "csv": "totals"}).text)
        for key in ("sent", "clicks", "bot_clicks", "unique_clicks", "conversions"):
            assert int(totals[key]) == sum(r[key] for r in rows), key
        assert totals["revenue"] == "49.90" == rows[0]["revenue"]
        page = app.get("/", query_range)
        cards = dict(re.findall(r'data-key="(\w+)"><span class="label">[^<]*</span>'
                                r'<span class="value">([^<]*)<', page.text))  # fmt: skip
        assert cards["clicks"] == f"{sum(r['clicks'] for r in rows):,}"
        assert cards["revenue"] == "49.90"
        for by, path in (
            ("campaign", "/campaigns"),
            ("offer", "/offers"),
            ("creative", "/creatives"),
            ("list", "/lists"),
            ("domain", "/domains"),
        ):
            expected = [
                {k: as_csv(v) for k, v in r.items()} for r in report_json(cli, "--by", by, *args)
            ]
            assert csv_rows(app.get(path, {**query_range, "csv": by}).text) == expected, by
    spring = built["campaigns"]["spring"]
    variants = cli.json("report", "--account", "acme", "--by", "variant", "--campaign", "spring")
    found = csv_rows(app.get(f"/campaigns/{spring}", {"csv": "variants"}).text)
    assert found == [{k: as_csv(v) for k, v in r.items()} for r in variants]


def test_a_user_sees_only_the_accounts_granted(built):
    target = built["target"]
    bob = logged_in(target, "bob")
    page = bob.get("/")
    assert re.findall(r"<option[^>]*>([^<]*)</option>", page.text) == ["acme"]
    hidden = built["campaigns"]["zeta"]
    bob.get(f"/campaigns/{hidden}", status=404)
    bob.get(f"/campaigns/{hidden}", {"csv": "variants"}, status=404)
    for path in PAGES:
        bob.get(path, {"account": "other"}, status=404)
        bob.get(path, {"account": "other", "csv": "totals"}, status=404)
    bob.get(f"/contacts/{built['hidden_contact']}", status=404)
    bob.get("/contacts", {"phone": "+12025550143"}, status=303)  # acme's own contact
    assert "zeta" not in bob.get("/campaigns").text

    admin = logged_in(target, "admin")
    page = admin.get("/")
    assert re.findall(r"<option[^>]*>([^<]*)</option>", page.text) == ["acme", "other"]
    assert admin.get(f"/campaigns/{hidden}", status=404)  # (acme is the page's account)
    shown = admin.get(f"/campaigns/{hidden}", {"account": "other"})
    assert "Campaign zeta" in shown
    assert "zeta" in admin.get("/campaigns", {"account": "other"})


def test_stored_strings_are_escaped_and_no_secret_is_shown(built):
    app = logged_in(built["target"])
    live = app.get("/live").text
    assert XSS_UA not in live
    assert "&lt;img src=x onerror=alert(1)&gt;" in live
    agents = [c["user_agent"] for c in app.get("/live.json").json["clicks"]]
    assert XSS_UA in agents  # (JSON is data: the page's script shows it as text)
    bob_contact = query(
        built["target"], "SELECT id FROM contacts WHERE phone = '+12025550144' ORDER BY id"
    )[0]["id"]
    contact = app.get(f"/contacts/{bob_contact}").text
    assert "<b>Bob</b>" not in contact and "&lt;b&gt;Bob&lt;/b&gt;" in contact
    hashes = [r["password_hash"] for r in query(built["target"], "SELECT password_hash FROM users")]
    spring = built["campaigns"]["spring"]
    for path in [*PAGES, f"/campaigns/{spring}", f"/contacts/{bob_contact}"]:
        text = app.get(path).text
        assert built["secret"] not in text, path
        assert "scrypt$" not in text and not any(h in text for h in hashes), path


def test_the_live_page_lists_the_newest_clicks_and_conversions(built):
    app = logged_in(built["target"])
    data = app.get("/live.json").json
    verdicts = {c["user_agent"]: (c["verdict"], c["reasons"]) for c in data["clicks"]}
    assert verdicts[PREVIEW_UA][0] == "bot" and verdicts[PREVIEW_UA][1]
    assert verdicts[HUMAN_HEADERS["User-Agent"]] == ("person", "")
    assert [c["id"] for c in data["clicks"]] == sorted(
        (c["id"] for c in data["clicks"]), reverse=True
    )
    person = next(c for c in data["clicks"] if c["link_id"] == built["spring"][0]["id"])
    assert person["campaign"] == "spring" and person["offer"] == "Summer Sale"
    assert person["phone"].startswith("+1202") and "•" in person["phone"]
    assert person["ip"] == "198.51.100.7"
    [sale] = data["conversions"]
    assert (sale["revenue"], sale["event"], sale["attribution"]) == ("49.90", "sale", "attributed")
    page = app.get("/live")
    assert '<script src="/static/live.js"></script>' in page
    assert "+12025550143" not in page.text  # masked


def test_campaign_page_shows_variants_verdict_links_and_bot_reasons(built):
    app = logged_in(built["target"])
    spring = f"/campaigns/{built['campaigns']['spring']}"
    [reason] = query(
        built["target"], "SELECT bot_reasons FROM message_short_link_clicks WHERE is_bot = 1"
    )
    assert reason["bot_reasons"]
    bots = csv_rows(app.get(spring, {"csv": "bot_reasons"}).text)
    assert bots == [{"reasons": reason["bot_reasons"], "clicks": "1"}]
    page = app.get(spring)
    for part in ("A/B test", "not significant yet", "Summer Sale", "link1", "<svg",
                 "Top bot reasons"):  # fmt: skip
        assert part in page, part
    listed = app.get("/campaigns")
    assert f'<a href="/campaigns/{built["campaigns"]["spring"]}?account=' in listed
    assert (
        listed.click(linkid=None, href=f"/campaigns/{built['campaigns']['spring']}").status_int
        == 200
    )
    sorted_page = app.get("/campaigns", {"sort": "clicks", "dir": "asc"})
    assert "clicks ▲" in sorted_page
    app.get("/campaigns", {"sort": "nonsense"}, status=400)


def test_lists_page_gives_the_command_that_changes_bot_settings(built):
    app = logged_in(built["target"])
    [row] = csv_rows(app.get("/lists", {"csv": "bot_settings"}).text)
    assert row["command"] == (
        "trackly list update vip --account acme --bot-filter flag --min-human-seconds 2"
    )


def test_no_answer_on_a_tracking_domain(built):
    app = logged_in(built["target"])
    for host in ("go.acme.test", "GO.OTHER.TEST:8081"):
        for path in ("/", "/login", "/static/style.css"):
            app.get(path, headers={"Host": host}, status=404)
        app.post("/login", {"username": "admin", "password": PASSWORD},
                 headers={"Host": host, "Origin": f"http://{host}"}, status=404)  # fmt: skip


def test_without_users_only_this_machine_gets_in(cli, target):
    cli("account", "create", "acme")
    local = {"HTTP_HOST": "127.0.0.1:8081", "REMOTE_ADDR": "127.0.0.1"}
    app = webtest.TestApp(create_app(target), extra_environ=local)
    page = app.get("/")
    assert "No dashboard user exists yet" in page and "trackly user add NAME --admin" in page
    # from a proxy on this machine, or another host name, or another machine: a login
    app.get("/", headers={"X-Forwarded-For": "198.51.100.1"}, status=303)
    app.get("/", headers={"Host": "admin.example.com"}, status=303)
    app.get("/", extra_environ={"REMOTE_ADDR": "192.0.2.1"}, status=303)
    closed = webtest.TestApp(create_app(target, open_local=False), extra_environ=local)
    closed.get("/", status=303)
    cli("user", "add", "ann", "--admin", "--password-stdin", input="good-password\n")
    app.get("/", status=303)  # (once a user exists, everyone logs in)


def test_dashboard_refuses_other_machines_while_no_user_exists(cli, target):
    cli("account", "create", "acme")
    for args in (("--host", "0.0.0.0"), ("--host", "::"), ("--trusted-proxy", "127.0.0.1")):
        error = cli.error("dashboard", *args, "--port", "1")
        assert "trackly user add NAME --admin" in error
    assert query(target, "SELECT * FROM users") == []


def test_dashboard_needs_an_existing_database(cli, tmp_path):
    error = cli.error("--db", tmp_path / "typo.db", "dashboard")
    assert "no database at" in error
    assert not (tmp_path / "typo.db").exists()


def _wait_port(proc, port: int, log: Path) -> None:
    import socket
    import time

    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)


@pytest.mark.slow
def test_the_quick_start_trackly_demo_then_trackly_dashboard_demo(tmp_path, monkeypatch):
    """The README's quick start: `trackly demo`, then `trackly dashboard --demo` shows the
    demo's campaign in a browser on this machine (no user yet: no login from loopback)."""
    import http.client
    import os
    import signal
    import subprocess
    import sys

    from conftest import free_port

    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.pop("TRACKLY_DB", None)
    procs = []
    try:
        for args in (("demo", "--port", str(free_port())), ("dashboard", "--demo")):
            port = int(args[-1]) if args[0] == "demo" else free_port()
            command = [*args] if args[0] == "demo" else [*args, "--port", str(port)]
            log = tmp_path / f"{args[0]}.log"
            proc = subprocess.Popen(
                [sys.executable, "-m", "trackly_cli", *command],
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            procs.append(proc)
            _wait_port(proc, port, log)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/campaigns")
        answer = conn.getresponse()
        page = answer.read().decode()
        assert answer.status == 200, page
        assert re.search(r">demo-\d{8}-\d{6}<", page), page
        assert "No dashboard user exists yet" in page
        log = (tmp_path / "dashboard.log").read_text()
        assert str(tmp_path / "config" / "trackly" / "demo.db") in log
        # (localhost is the demo's tracking domain: the dashboard does not answer there)
        conn.request("GET", "/", headers={"Host": f"localhost:{port}"})
        assert conn.getresponse().status == 404
        conn.close()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_a_new_password_or_a_removed_user_ends_the_sessions(built, cli):
    target = built["target"]
    admin, bob = logged_in(target, "admin"), logged_in(target, "bob")
    cli("user", "passwd", "bob", "--password-stdin", input="a-new-password\n")
    assert bob.get("/", status=303).headers["Location"] == "/login"
    assert admin.get("/").status_int == 200  # (another user's session is not touched)
    bob.post("/login", {"username": "bob", "password": PASSWORD}, headers=ORIGIN, status=401)
    bob.post("/login", {"username": "bob", "password": "a-new-password"}, headers=ORIGIN,
             status=303)  # fmt: skip
    cli("user", "remove", "admin")
    assert admin.get("/", status=303).headers["Location"] == "/login"
    assert [r["name"] for r in query(target, "SELECT name FROM users")] == ["bob"]


def test_a_bad_range_is_one_line_and_status_400(built):
    app = logged_in(built["target"])
    for params, message in (
        ({"range": "year"}, "range must be one of"),
        ({"range": "custom", "since": "yesterday"}, "is not a date or time"),
        ({"range": "custom", "since": "2026-02-01", "until": "2026-01-01"}, "is not before"),
    ):
        answer = app.get("/campaigns", params, status=400)
        assert message in answer.text
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_sessions_expire_when_idle_and_after_a_week(built):
    from trackly_cli.core import clock

    target = built["target"]
    app = logged_in(target)
    assert app.get("/").status_int == 200
    execute(target, "UPDATE user_sessions SET seen_at = ?", clock.days_ago_text(13 / 24))
    assert app.get("/", status=303).headers["Location"] == "/login"
    assert query(target, "SELECT * FROM user_sessions") == []  # (an expired one is deleted)
    app = logged_in(target)
    execute(target, "UPDATE user_sessions SET expires_at = ?", clock.days_ago_text(1 / 24))
    assert app.get("/", status=303).headers["Location"] == "/login"


def test_a_stored_password_is_checked_in_its_own_format_only():
    from trackly_cli.core import users

    stored = users.hash_password("good-password")
    assert users.verify_password("good-password", stored)
    assert not users.verify_password("good-passwore", stored)
    for broken in ("", "plain", stored.replace("scrypt", "md5"), stored[:-2] + "zz", "a$b$c$d$e$f"):
        assert not users.verify_password("good-password", broken), broken
