"""The Bottle app in-process (WebTest) over a real SQLite file: host routing, redirects and
their macros, click rows and MessageClicks, hostile input, bot detection, bot filter modes,
interstitial pages and the small routes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
import webtest
from conftest import BROWSER_UA, HUMAN_HEADERS, execute, free_port, query

from trackly_cli.core.errors import InvalidInput

SUMMER = "https://shop.example/summer?sub={}"
PLAIN = "https://plain.example/page"
NOT_FOUND_TEXT = "Link not found"


# --- helpers ----------------------------------------------------------------------------------


def clicks(db_path: Path) -> list[dict]:
    return query(db_path, "SELECT * FROM message_short_link_clicks ORDER BY id")


def message_clicks(db_path: Path) -> list[dict]:
    return query(db_path, "SELECT * FROM message_clicks ORDER BY id")


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def human(**extra) -> dict:
    return {**HUMAN_HEADERS, **extra}


def link1(campaign: dict, n: int = 0) -> dict:
    return campaign["by_slot"]["link1"][n]


def link2(campaign: dict, n: int = 0) -> dict:
    return campaign["by_slot"]["link2"][n]


class Tags(HTMLParser):
    """The start tags of a page, with their attributes (entities decoded)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.title = ""
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data

    def meta(self) -> dict[str, str]:
        found = {}
        for tag, attrs in self.tags:
            if tag == "meta" and "content" in attrs:
                found[attrs.get("property") or attrs.get("name")] = attrs["content"]
        return found

    def links(self) -> list[dict]:
        return [attrs for tag, attrs in self.tags if tag == "a"]


def send(app, path: str, method: str = "GET", **options):
    """A request with any method, with the app's default environ (TestApp.request() would
    leave Host at localhost)."""
    return getattr(app, method.lower())(path, **options)


def assert_not_found_page(response) -> None:
    assert response.status_int == 404
    assert response.content_type == "text/html"
    assert NOT_FOUND_TEXT in response.text
    assert "Location" not in response.headers


# --- host routing -----------------------------------------------------------------------------


def test_host_is_case_insensitive_and_its_port_ignored(campaign, webapp, db_path):
    app = webapp()
    link = link1(campaign)
    for host in ("GO.ACME.TEST:8080", "Go.Acme.Test", "go.acme.test:443"):
        r = app.get(f"/{link['id']}", headers=HUMAN_HEADERS, extra_environ={"HTTP_HOST": host})
        assert r.status_int == 302, host
        assert r.headers["Location"] == SUMMER.format(link["id"])
    assert len(clicks(db_path)) == 3


@pytest.mark.parametrize("host", ["evil.test", "acme.test", "go.acme.test.evil", "[::1]:8080"])
def test_unknown_host_is_404(campaign, webapp, db_path, host):
    app = webapp()
    r = app.get(
        f"/{link1(campaign)['id']}",
        headers=HUMAN_HEADERS,
        extra_environ={"HTTP_HOST": host},
        status=404,
    )
    assert_not_found_page(r)
    assert clicks(db_path) == []


def test_missing_host_is_400(campaign, webapp, db_path):
    """HTTP/1.1 requires a Host header; routing goes by it alone (never SERVER_NAME)."""
    app = webapp()
    link_id = link1(campaign)["id"]
    r = app.get(f"/{link_id}", headers=HUMAN_HEADERS, extra_environ={"HTTP_HOST": ""}, status=400)
    assert "no Host header" in r.text
    r = app.get(f"/{link_id}/go", extra_environ={"HTTP_HOST": ""}, status=400)
    assert "Location" not in r.headers
    # No Host header at all (an HTTP/1.0 request).
    request = webtest.TestRequest.blank(f"/{link_id}", headers=HUMAN_HEADERS)
    del request.environ["HTTP_HOST"]
    request.environ["SERVER_NAME"] = "go.acme.test"
    app.do_request(request, status=400)
    # a health check may leave it out
    request = webtest.TestRequest.blank("/healthz")
    del request.environ["HTTP_HOST"]
    assert app.do_request(request, status=200).json["status"] == "ok"
    assert clicks(db_path) == []


def test_domains_option_restricts_the_hosts(campaign, acme, webapp, db_path):
    acme("domain", "add", "go2.acme.test", "--account", "acme")
    link_id = link1(campaign)["id"]
    # Without --domain, every domain of the link's account answers.
    everywhere = webapp()
    r = everywhere.get(
        f"/{link_id}", headers=HUMAN_HEADERS, extra_environ={"HTTP_HOST": "go2.acme.test"}
    )
    assert r.headers["Location"] == SUMMER.format(link_id)

    only = webapp(domains=["GO.ACME.TEST"])
    r = only.get(
        f"/{link_id}",
        headers=HUMAN_HEADERS,
        extra_environ={"HTTP_HOST": "go2.acme.test"},
        status=404,
    )
    assert_not_found_page(r)
    r = only.get(f"/{link_id}", headers=HUMAN_HEADERS)
    assert r.status_int == 302
    assert len(clicks(db_path)) == 2


def test_unknown_domain_option_is_a_clear_error(campaign, webapp, cli):
    with pytest.raises(InvalidInput, match=r"nope\.test.*not a tracking domain"):
        webapp(domains=["go.acme.test", "nope.test"])
    message = cli.error("serve", "--domain", "nope.test", "--port", free_port())
    assert "nope.test" in message
    assert "not a tracking domain" in message


def test_a_link_on_another_accounts_domain_is_404(campaign, cli, webapp, db_path):
    cli("account", "create", "beta")
    cli("domain", "add", "go.beta.test", "--account", "beta")
    app = webapp()
    link_id = link1(campaign)["id"]
    r = app.get(
        f"/{link_id}",
        headers=HUMAN_HEADERS,
        extra_environ={"HTTP_HOST": "go.beta.test"},
        status=404,
    )
    assert_not_found_page(r)
    r = app.get(f"/{link_id}/go", extra_environ={"HTTP_HOST": "Go.Beta.Test:80"}, status=404)
    assert "Location" not in r.headers
    assert clicks(db_path) == []
    # The same id still answers on its own account's domain.
    assert app.get(f"/{link_id}", headers=HUMAN_HEADERS).status_int == 302


# --- redirects --------------------------------------------------------------------------------


def test_redirect_expands_link_id_and_is_not_cached(campaign, webapp):
    app = webapp()
    link = link1(campaign)
    r = app.get(f"/{link['id']}", headers=HUMAN_HEADERS)
    assert r.status_int == 302
    assert r.headers["Location"] == SUMMER.format(link["id"])
    assert r.headers["Cache-Control"] == "no-store"


def test_plain_url_link_redirects_to_its_url(campaign, webapp):
    app = webapp()
    r = app.get(f"/{link2(campaign)['id']}", headers=HUMAN_HEADERS)
    assert r.status_int == 302
    assert r.headers["Location"] == PLAIN
    assert r.headers["Cache-Control"] == "no-store"


ALL_MACROS = (
    "https://shop.example/a?l={link_id}&m={message_id}&c={contact_id}&o={offer_id}&k={campaign}"
)


def test_every_macro_is_expanded_and_url_encoded(campaign, acme, webapp, db_path, tmp_path):
    acme("offer", "create", "All", "--url", ALL_MACROS)
    offer_id = query(db_path, "SELECT id FROM offers WHERE name = 'All'")[0]["id"]
    (tmp_path / "all.txt").write_text("Deal {{link1}}", encoding="utf-8")
    one_off_name = "Spring & Summer / 50% off?"
    one_off = acme.json("shorten", "all.txt", "--link", "link1=All", "--campaign", one_off_name)
    list_name = "Fall & Winter #1 ü+é"
    acme("shorten", "all.txt", "--list", "vip", "--link", "link1=All", "--campaign", list_name)
    app = webapp()

    one_off_id = one_off["links"][0]["id"]
    r = app.get(f"/{one_off_id}", headers=HUMAN_HEADERS)
    assert r.headers["Location"] == (
        f"https://shop.example/a?l={one_off_id}&m={one_off['message_id']}&c=&o={offer_id}"
        "&k=Spring%20%26%20Summer%20%2F%2050%25%20off%3F"
    )

    rows = query(
        db_path,
        "SELECT l.id, l.message_id, l.contact_id FROM short_links l"
        " JOIN messages m ON m.id = l.message_id JOIN campaigns c ON c.id = m.campaign_id"
        " WHERE c.name = ?",
        list_name,
    )
    assert len(rows) == 3
    encoded = quote(list_name, safe="")
    assert encoded == "Fall%20%26%20Winter%20%231%20%C3%BC%2B%C3%A9"
    for row in rows:
        r = app.get(f"/{row['id']}", headers=HUMAN_HEADERS)
        assert r.headers["Location"] == (
            f"https://shop.example/a?l={row['id']}&m={row['message_id']}"
            f"&c={row['contact_id']}&o={offer_id}&k={encoded}"
        )


def test_the_click_row_holds_everything(campaign, webapp, db_path):
    app = webapp()
    link = link1(campaign)
    before = now_text()
    app.get(
        f"/{link['id']}",
        headers=human(Referer="https://m.example/inbox"),
        extra_environ={"REMOTE_ADDR": "192.0.2.44"},
    )
    after = now_text()
    [row] = clicks(db_path)
    offer = query(db_path, "SELECT id FROM offers WHERE name = 'Summer Sale'")[0]
    message = query(db_path, "SELECT * FROM messages WHERE id = ?", link["message_id"])[0]
    assert before <= row["clicked_at"] <= after
    assert row["clicked_at"].endswith("Z")
    assert row["link_id"] == link["id"]
    assert row["message_id"] == link["message_id"]
    assert row["contact_id"] == link["contact_id"]
    assert row["offer_id"] == offer["id"]
    assert row["account_id"] == message["account_id"]
    assert row["campaign_id"] == message["campaign_id"]
    assert row["list_id"] == message["list_id"]
    assert row["method"] == "GET"
    assert row["ip"] == "192.0.2.44"
    assert row["user_agent"] == BROWSER_UA
    assert row["referer"] == "https://m.example/inbox"
    assert row["accept_language"] == HUMAN_HEADERS["Accept-Language"]
    assert row["is_bot"] == 0
    assert row["bot_reasons"] == ""
    assert row["visitor"] == f"c:{link['contact_id']}"

    # A plain-URL link has no offer.
    app.get(f"/{link2(campaign, 1)['id']}", headers=HUMAN_HEADERS)
    assert clicks(db_path)[-1]["offer_id"] is None


def test_first_human_click_makes_one_message_click(campaign, webapp, db_path):
    app = webapp()
    link = link1(campaign)
    for _ in range(3):
        app.get(f"/{link['id']}", headers=HUMAN_HEADERS)
    raw = clicks(db_path)
    assert len(raw) == 3
    [unique] = message_clicks(db_path)
    assert unique["message_id"] == link["message_id"]
    assert unique["contact_id"] == link["contact_id"]
    assert unique["visitor"] == f"c:{link['contact_id']}"
    assert unique["link_id"] == link["id"]
    assert unique["click_id"] == raw[0]["id"]
    assert unique["clicked_at"] == raw[0]["clicked_at"]
    assert unique["source"] == "click"
    assert unique["ip"] == "198.51.100.7"


def test_link1_then_link2_of_one_message_make_one_message_click(campaign, webapp, db_path):
    app = webapp()
    first, second = link1(campaign, 1), link2(campaign, 1)
    assert first["message_id"] == second["message_id"]
    app.get(f"/{first['id']}", headers=HUMAN_HEADERS)
    app.get(f"/{second['id']}", headers=HUMAN_HEADERS)
    assert [c["link_id"] for c in clicks(db_path)] == [first["id"], second["id"]]
    [unique] = message_clicks(db_path)
    assert unique["link_id"] == first["id"]
    # Another recipient's message gets its own.
    app.get(f"/{link2(campaign, 2)['id']}", headers=HUMAN_HEADERS)
    assert len(message_clicks(db_path)) == 2


def test_one_off_message_makes_one_message_click_per_visitor(acme, webapp, db_path, tmp_path):
    (tmp_path / "one.txt").write_text("Deal {{link1}}", encoding="utf-8")
    data = acme.json("shorten", "one.txt", "--link", "link1=Summer Sale")
    execute(db_path, "UPDATE messages SET created_at = '2026-01-01T00:00:00.000000Z'")
    link_id = data["links"][0]["id"]
    app = webapp()
    app.get(f"/{link_id}", headers=HUMAN_HEADERS)
    app.get(f"/{link_id}", headers=HUMAN_HEADERS)  # the same visitor again
    other_ua = BROWSER_UA.replace("17_4", "16_0")
    app.get(
        f"/{link_id}",
        headers=human(**{"User-Agent": other_ua}),
        extra_environ={"REMOTE_ADDR": "192.0.2.99"},
    )
    assert len(clicks(db_path)) == 3
    unique = message_clicks(db_path)
    assert len(unique) == 2
    assert {u["ip"] for u in unique} == {"198.51.100.7", "192.0.2.99"}
    assert all(u["contact_id"] is None for u in unique)
    assert all(u["visitor"].startswith("v:") for u in unique)
    assert len({u["visitor"] for u in unique}) == 2
    # The visitor key is a hash: it does not hold the IP.
    assert not any("198.51.100.7" in u["visitor"] for u in unique)


# --- hostile input ----------------------------------------------------------------------------


def hostile_paths(link_id: str) -> list[str]:
    return [
        "/",
        "/zzzzzz0",  # well-formed, unknown
        "/abcdef",  # 6 characters
        "/abcdefgh",  # 8 characters
        f"/{link_id}x",
        "/abc-efg",  # not base62
        "/abc_efg",
        "/abc.efg",
        "/%20%20%20%20%20%20%20",
        f"/{link_id[:6]}%20",
        "/../",
        f"/../{link_id}",
        f"/{link_id}/../{link_id}",
        f"/%2e%2e/{link_id}",
        f"/{link_id}%2F..",
        "/" + "a" * 5000,
        "/" + link_id * 700,
        f"/{link_id}/" + "b" * 5000,
        "/%C3%BC%C3%B1%C3%AF%C3%A7%C3%B8d%C3%A9",  # 7 non-ASCII characters
        "/" + quote("短縮リンクです"),
        f"/{link_id[:5]}%0d%0a",  # 7 characters with CRLF
        f"/{link_id}%0d%0aSet-Cookie:%20x=1",
        f"/{link_id}%0d%0aLocation:%20https://evil.example/",
        f"/%0d%0aLocation:%20https://evil.example/{link_id}",
        "/%00%00%00%00%00%00%00",
        f"/{link_id}/go%0d%0a",
        f"/{link_id}/goo",
        f"/{link_id}/go/x",
        "/conv/../" + link_id,
        "/pixel/" + "x" * 5000,
    ]


def test_hostile_paths_are_404_without_a_redirect(campaign, webapp, db_path):
    app = webapp()
    link_id = link1(campaign)["id"]
    for path in hostile_paths(link_id):
        for method in ("GET", "HEAD", "OPTIONS"):
            r = send(app, path, method, headers=HUMAN_HEADERS, expect_errors=True)
            assert r.status_int < 500, (method, path[:80], r.status)
            assert "Location" not in r.headers, (method, path[:80])
            if method == "GET" and not path.startswith("/pixel/"):
                assert r.status_int == 404, (path[:80], r.status)
                assert NOT_FOUND_TEXT in r.text, path[:80]
    assert clicks(db_path) == []
    assert message_clicks(db_path) == []
    # The same app and headers do answer the link itself.
    assert send(app, f"/{link_id}", headers=HUMAN_HEADERS).status_int == 302
    assert len(clicks(db_path)) == 1


@pytest.mark.parametrize(
    "raw_path",
    [
        "/\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc",  # UTF-8 bytes (WSGI)
        "/\xff\xfe\xfd\xfc\xfb\xfa\xf9",  # not UTF-8
        "/abc\r\nefg",
        "/abcdef\n",
        "/abcdef\x00",
    ],
)
def test_raw_non_ascii_and_control_paths_are_not_errors(campaign, webapp, db_path, raw_path):
    app = webapp()
    r = app.get(
        "/x", headers=HUMAN_HEADERS, extra_environ={"PATH_INFO": raw_path}, expect_errors=True
    )
    assert 400 <= r.status_int < 500, r.status
    assert "Location" not in r.headers
    assert clicks(db_path) == []


def test_crlf_and_junk_in_the_query_still_redirect_to_the_stored_destination(
    campaign, webapp, db_path
):
    app = webapp()
    link_id = link1(campaign)["id"]
    queries = [
        "x=%0d%0aLocation:%20https://evil.example/",
        "%0d%0aSet-Cookie:%20a=b",
        "next=https://evil.example/&url=//evil.example",
        "sub=" + "q" * 5000,
        "%ff%fe=%00",
    ]
    for q in queries:
        r = app.get(f"/{link_id}?{q}", headers=HUMAN_HEADERS)
        assert r.status_int == 302, q[:40]
        assert r.headers["Location"] == SUMMER.format(link_id), q[:40]
        assert "Set-Cookie" not in r.headers
    assert len(clicks(db_path)) == len(queries)


def test_a_10kb_user_agent_is_a_bot_that_still_gets_its_redirect(campaign, webapp, db_path):
    app = webapp()
    link_id = link1(campaign)["id"]
    huge = "Mozilla/5.0 " + "A" * 10_000
    r = app.get(f"/{link_id}", headers={"User-Agent": huge, "Accept-Language": "en"})
    assert r.status_int == 302
    assert r.headers["Location"] == SUMMER.format(link_id)
    [row] = clicks(db_path)
    assert row["is_bot"] == 1
    assert "longer than" in row["bot_reasons"]
    assert len(row["user_agent"]) <= 1024
    assert message_clicks(db_path) == []
    r = app.get("/zzzzzz0", headers={"User-Agent": huge}, status=404)
    assert_not_found_page(r)


def test_head_and_options_on_a_known_link(campaign, webapp, db_path):
    app = webapp()
    link_id = link1(campaign)["id"]
    r = app.head(f"/{link_id}", headers=HUMAN_HEADERS)
    assert r.status_int == 302
    assert r.headers["Location"] == SUMMER.format(link_id)
    r = app.options(f"/{link_id}", headers=HUMAN_HEADERS)
    assert r.status_int < 400
    assert "Location" not in r.headers
    rows = clicks(db_path)
    assert [(c["method"], c["is_bot"]) for c in rows] == [("HEAD", 1), ("OPTIONS", 1)]
    assert "HEAD request" in rows[0]["bot_reasons"]
    assert "OPTIONS request" in rows[1]["bot_reasons"]
    assert message_clicks(db_path) == []


def test_head_and_options_on_unknown_ids_are_404(campaign, webapp, db_path):
    app = webapp()
    for path in ("/zzzzzz0", "/abc", "/" + "a" * 5000):
        r = app.head(path, status=404)
        assert "Location" not in r.headers
        r = app.options(path, expect_errors=True)
        assert r.status_int == 404
        assert "Location" not in r.headers
    assert clicks(db_path) == []


# --- bot detection through the app ------------------------------------------------------------

SAMSUNG = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:24.0) Gecko/20100101 Firefox/24.0"


@pytest.mark.parametrize(
    ("method", "headers", "reason"),
    [
        ("HEAD", HUMAN_HEADERS, "HEAD request"),
        ("GET", {"User-Agent": "", "Accept-Language": "en"}, "empty user agent"),
        ("GET", {"Accept-Language": "en"}, "empty user agent"),
        ("GET", human(Purpose="prefetch"), "prefetch header (Purpose: prefetch)"),
        ("GET", human(**{"Sec-Purpose": "prefetch"}), "prefetch header (Sec-Purpose: prefetch)"),
        ("GET", human(**{"X-Purpose": "preview"}), "prefetch header (X-Purpose: preview)"),
        ("GET", human(**{"X-Moz": "prefetch"}), "prefetch header (X-Moz: prefetch)"),
        (
            "GET",
            human(
                **{
                    "User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1;"
                    " +http://www.google.com/bot.html)"
                }
            ),
            "crawler",
        ),
        ("GET", human(**{"User-Agent": "curl/8.5.0"}), "crawler"),
        (
            "GET",
            human(**{"User-Agent": "facebookexternalhit/1.1 Facebot Twitterbot/1.0"}),
            "iMessage link preview",
        ),
        (
            "GET",
            human(
                **{
                    "User-Agent": "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML,"
                    " like Gecko) Chrome/124.0 Mobile Safari/537.36 GoogleMessages"
                }
            ),
            "Google Messages link preview",
        ),
        ("GET", human(**{"User-Agent": "WhatsApp/2.23.20.0 A"}), "WhatsApp link preview"),
        (
            "GET",
            human(**{"User-Agent": "TelegramBot (like TwitterBot)"}),
            "Telegram link preview",
        ),
        ("GET", human(**{"User-Agent": "Viber"}), "Viber link preview"),
        ("GET", human(**{"User-Agent": SAMSUNG}), "Samsung Messages link preview"),
        (
            "GET",
            human(**{"User-Agent": "Mozilla/5.0 (compatible; Proofpoint URL Defense)"}),
            "security scanner",
        ),
    ],
    ids=[
        "head",
        "empty-ua",
        "no-ua",
        "purpose",
        "sec-purpose",
        "x-purpose",
        "x-moz",
        "googlebot",
        "curl",
        "imessage",
        "google-messages",
        "whatsapp",
        "telegram",
        "viber",
        "samsung",
        "proofpoint",
    ],
)
def test_bots_are_flagged_with_their_reason_and_still_redirected(
    campaign, webapp, db_path, method, headers, reason
):
    app = webapp()
    link_id = link1(campaign)["id"]
    r = send(app, f"/{link_id}", method, headers=headers)
    assert r.status_int == 302
    assert r.headers["Location"] == SUMMER.format(link_id)
    [row] = clicks(db_path)
    assert row["is_bot"] == 1
    assert reason in row["bot_reasons"], row["bot_reasons"]
    assert message_clicks(db_path) == []


def test_a_chat_app_that_merely_mentions_viber_is_not_the_viber_fetcher(campaign, webapp, db_path):
    app = webapp()
    app.get(
        f"/{link1(campaign)['id']}",
        headers=human(**{"User-Agent": BROWSER_UA + " Viber/20.3"}),
    )
    [row] = clicks(db_path)
    assert "Viber" not in row["bot_reasons"]


def test_deny_list_and_datacenter_ranges(campaign, acme, webapp, db_path, tmp_path):
    acme("bots", "ranges", "add", "203.0.113.0/24")
    acme("bots", "ranges", "add", "--kind", "datacenter", "192.0.2.0/25")
    (tmp_path / "cloud.txt").write_text("# a cloud\n100.64.0.0/10\n", encoding="utf-8")
    acme("bots", "ranges", "import", tmp_path / "cloud.txt")
    app = webapp()
    cases = [
        (link1(campaign, 0), "203.0.113.9", "IP on the deny list (manual)"),
        (link1(campaign, 1), "192.0.2.100", "datacenter IP (manual)"),
        (link1(campaign, 2), "100.100.1.1", "datacenter IP (cloud)"),
    ]
    for link, ip, reason in cases:
        r = app.get(f"/{link['id']}", headers=HUMAN_HEADERS, extra_environ={"REMOTE_ADDR": ip})
        assert r.headers["Location"] == SUMMER.format(link["id"])
        row = clicks(db_path)[-1]
        assert row["ip"] == ip
        assert row["is_bot"] == 1
        assert reason in row["bot_reasons"], row["bot_reasons"]
    assert message_clicks(db_path) == []
    # Just outside the ranges: human.
    app.get(
        f"/{link2(campaign)['id']}",
        headers=HUMAN_HEADERS,
        extra_environ={"REMOTE_ADDR": "192.0.2.200"},
    )
    assert clicks(db_path)[-1]["is_bot"] == 0
    assert len(message_clicks(db_path)) == 1


def test_allow_list_overrides_ip_signals_but_not_the_user_agent(campaign, acme, webapp, db_path):
    acme("bots", "ranges", "add", "198.51.100.0/24")
    acme("bots", "ranges", "add", "--kind", "datacenter", "198.51.100.0/24")
    acme("bots", "ranges", "add", "--kind", "allow", "198.51.100.7")
    app = webapp()
    app.get(f"/{link1(campaign, 0)['id']}", headers=HUMAN_HEADERS)
    allowed = clicks(db_path)[-1]
    assert (allowed["is_bot"], allowed["bot_reasons"]) == (0, "")
    assert len(message_clicks(db_path)) == 1

    # A neighbour that is not on the allow list is denied.
    app.get(
        f"/{link1(campaign, 1)['id']}",
        headers=HUMAN_HEADERS,
        extra_environ={"REMOTE_ADDR": "198.51.100.8"},
    )
    denied = clicks(db_path)[-1]
    assert denied["is_bot"] == 1
    assert "deny list" in denied["bot_reasons"]
    assert "datacenter IP" in denied["bot_reasons"]

    # The allowed address with a crawler's user agent is still a bot, for the user agent only.
    app.get(f"/{link1(campaign, 2)['id']}", headers=human(**{"User-Agent": "curl/8.5.0"}))
    crawler = clicks(db_path)[-1]
    assert crawler["is_bot"] == 1
    assert "crawler" in crawler["bot_reasons"]
    assert "deny list" not in crawler["bot_reasons"]
    assert "datacenter" not in crawler["bot_reasons"]
    assert len(message_clicks(db_path)) == 1


def test_a_fast_click_alone_is_human_but_with_a_second_signal_a_bot(campaign, webapp, db_path):
    fast_human, fast_bot = link1(campaign, 0), link1(campaign, 1)
    # Sent just now (before the server starts, as the server reads its links then).
    for link in (fast_human, fast_bot):
        execute(
            db_path,
            "UPDATE messages SET created_at = ? WHERE id = ?",
            now_text(),
            link["message_id"],
        )
    app = webapp()
    app.get(f"/{fast_human['id']}", headers=HUMAN_HEADERS)
    row = clicks(db_path)[-1]
    assert row["is_bot"] == 0
    assert "s after sending" in row["bot_reasons"]  # noted, not enough alone
    assert [m["link_id"] for m in message_clicks(db_path)] == [fast_human["id"]]

    app.get(f"/{fast_bot['id']}", headers={"User-Agent": BROWSER_UA})  # no Accept-Language
    row = clicks(db_path)[-1]
    assert row["is_bot"] == 1
    assert "s after sending" in row["bot_reasons"]
    assert "no Accept-Language" in row["bot_reasons"]
    assert [m["link_id"] for m in message_clicks(db_path)] == [fast_human["id"]]

    # An old message without Accept-Language: one weak signal, human.
    app.get(f"/{link1(campaign, 2)['id']}", headers={"User-Agent": BROWSER_UA})
    row = clicks(db_path)[-1]
    assert (row["is_bot"], row["bot_reasons"]) == (0, "no Accept-Language")


def test_three_ips_on_one_personal_link_within_seconds(campaign, webapp, db_path):
    app = webapp()
    link_id = link1(campaign)["id"]
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        r = app.get(f"/{link_id}", headers=HUMAN_HEADERS, extra_environ={"REMOTE_ADDR": ip})
        assert r.headers["Location"] == SUMMER.format(link_id)
    first, second, third = clicks(db_path)
    assert third["is_bot"] == 1
    assert "3 IPs on one link" in third["bot_reasons"]
    # the burst, once revealed, re-judges the hits before it (#18): no MessageClick is left
    assert (first["is_bot"], first["bot_reasons"]) == (1, "later: 3 IPs on one link within 10 s")
    assert second["is_bot"] == 1
    assert second["bot_reasons"].startswith("2 IPs on one link")
    assert second["bot_reasons"].endswith("; later: 3 IPs on one link within 10 s")
    assert message_clicks(db_path) == []


# --- bot filter modes -------------------------------------------------------------------------


def test_bot_filter_off_counts_bots(campaign, acme, webapp, db_path):
    acme("list", "update", "vip", "--bot-filter", "off")
    app = webapp()
    link_id = link1(campaign)["id"]
    r = app.get(f"/{link_id}", headers={"User-Agent": "curl/8.5.0"})
    assert r.headers["Location"] == SUMMER.format(link_id)
    [row] = clicks(db_path)
    assert (row["is_bot"], row["bot_reasons"]) == (0, "")
    [unique] = message_clicks(db_path)
    assert unique["click_id"] == row["id"]


def test_bot_filter_flag_records_bots_without_a_message_click(campaign, webapp, db_path):
    app = webapp()
    link_id = link1(campaign)["id"]
    app.get(f"/{link_id}", headers={"User-Agent": "curl/8.5.0"})
    assert clicks(db_path)[0]["is_bot"] == 1
    assert message_clicks(db_path) == []
    app.get(f"/{link_id}", headers=HUMAN_HEADERS)
    [unique] = message_clicks(db_path)
    assert unique["click_id"] == clicks(db_path)[1]["id"]


IMESSAGE = "facebookexternalhit/1.1 Facebot Twitterbot/1.0"


def test_bot_filter_confirm_only_the_continue_button_counts(campaign, acme, webapp, db_path):
    acme("list", "update", "vip", "--bot-filter", "confirm")
    app = webapp()
    link_id = link1(campaign)["id"]
    # The phone's link preview loads the page first, then the person opens it.
    for headers in ({"User-Agent": IMESSAGE}, HUMAN_HEADERS):
        r = app.get(f"/{link_id}", headers=headers)
        assert r.status_int == 200
        assert r.content_type == "text/html"
        assert "Location" not in r.headers
        [cta] = Tags(r.text).links()
        assert cta["href"] == f"/{link_id}/go"
        assert "Continue" in r.text
    preview, page_view = clicks(db_path)
    assert (preview["is_bot"], page_view["is_bot"]) == (1, 0)
    assert message_clicks(db_path) == []  # loading the page is not enough, even for a human

    r = app.get(f"/{link_id}/go", headers=HUMAN_HEADERS)
    assert r.status_int == 302
    assert r.headers["Location"] == SUMMER.format(link_id)
    assert r.headers["Cache-Control"] == "no-store"
    assert len(clicks(db_path)) == 2  # the button adds no raw click
    [unique] = message_clicks(db_path)
    assert unique["source"] == "confirm"
    assert unique["link_id"] == link_id
    assert unique["contact_id"] == link1(campaign)["contact_id"]
    assert unique["click_id"] == page_view["id"]

    app.get(f"/{link_id}/go", headers=HUMAN_HEADERS)
    assert len(message_clicks(db_path)) == 1
    assert len(clicks(db_path)) == 2


def test_confirm_page_fetched_by_a_bot_makes_no_message_click(campaign, acme, webapp, db_path):
    acme("list", "update", "vip", "--bot-filter", "confirm")
    app = webapp()
    link_id = link1(campaign)["id"]
    app.get(f"/{link_id}", headers={"User-Agent": IMESSAGE})
    # A fetcher that follows the button is still a bot: no MessageClick.
    r = app.get(f"/{link_id}/go", headers={"User-Agent": IMESSAGE})
    assert r.headers["Location"] == SUMMER.format(link_id)
    assert len(clicks(db_path)) == 1
    assert message_clicks(db_path) == []


def test_confirm_message_click_points_at_the_page_view_it_came_from(
    campaign, acme, webapp, db_path
):
    """The person opens the page, a scanner fetches it meanwhile, then the person presses
    Continue: the MessageClick belongs to the person's page view, not to the scanner's."""
    acme("list", "update", "vip", "--bot-filter", "confirm")
    app = webapp()
    link_id = link1(campaign)["id"]
    app.get(f"/{link_id}", headers=HUMAN_HEADERS)
    app.get(
        f"/{link_id}",
        headers={"User-Agent": "Mozilla/5.0 (compatible; Proofpoint URL Defense)"},
        extra_environ={"REMOTE_ADDR": "192.0.2.200"},
    )
    page_view, scanner = clicks(db_path)
    assert (page_view["is_bot"], scanner["is_bot"]) == (0, 1)
    app.get(f"/{link_id}/go", headers=HUMAN_HEADERS)
    [unique] = message_clicks(db_path)
    assert unique["source"] == "confirm"
    assert unique["click_id"] == page_view["id"], "tied to the scanner's bot click"


def test_offer_bot_filter_overrides_the_lists(campaign, acme, webapp, db_path):
    acme("offer", "update", "Summer Sale", "--bot-filter", "off")
    app = webapp()
    # link1 carries the offer: off, the crawler counts.
    app.get(f"/{link1(campaign, 0)['id']}", headers={"User-Agent": "curl/8.5.0"})
    assert clicks(db_path)[-1]["is_bot"] == 0
    assert len(message_clicks(db_path)) == 1
    # link2 is a plain URL: the list's flag mode.
    app.get(f"/{link2(campaign, 1)['id']}", headers={"User-Agent": "curl/8.5.0"})
    assert clicks(db_path)[-1]["is_bot"] == 1
    assert len(message_clicks(db_path)) == 1


def test_offer_confirm_overrides_a_list_that_is_off(campaign, acme, webapp, db_path):
    acme("list", "update", "vip", "--bot-filter", "off")
    acme("offer", "update", "Summer Sale", "--bot-filter", "confirm")
    app = webapp()
    link_id = link1(campaign, 0)["id"]
    r = app.get(f"/{link_id}", headers=HUMAN_HEADERS)
    assert r.status_int == 200
    assert [a["href"] for a in Tags(r.text).links()] == [f"/{link_id}/go"]
    assert message_clicks(db_path) == []
    r = app.get(f"/{link2(campaign, 1)['id']}", headers={"User-Agent": "curl/8.5.0"})
    assert r.headers["Location"] == PLAIN
    assert len(message_clicks(db_path)) == 1


# --- interstitials ----------------------------------------------------------------------------

HOSTILE_TITLE = '<script>alert(1)</script> & "quotes"'


def assert_page_shell(r, link_id: str) -> Tags:
    assert r.status_int == 200
    assert r.content_type == "text/html"
    assert r.charset.lower() == "utf-8"
    assert r.text.lstrip().lower().startswith("<!doctype html>")
    assert r.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert "Location" not in r.headers
    tags = Tags(r.text)
    viewport = [a for t, a in tags.tags if t == "meta" and a.get("name") == "viewport"]
    assert viewport and "width=device-width" in viewport[0]["content"]
    ctas = tags.links()
    assert [a["href"] for a in ctas] == [f"/{link_id}/go"]
    assert "<script" not in r.text.lower()
    return tags


def test_custom_interstitial_page(campaign, acme, webapp, db_path):
    acme(
        "offer",
        "update",
        "Summer Sale",
        "--interstitial",
        "custom",
        "--title",
        HOSTILE_TITLE,
        "--description",
        "Save <b>50%</b> & more 'today'",
        "--cta",
        'Shop "now" >',
        "--meta",
        "og:image=https://cdn.example/i.png?a=1&b=<2>",
        "--meta",
        "twitter:card=summary_large_image",
    )
    app = webapp()
    link_id = link1(campaign)["id"]
    r = app.get(f"/{link_id}", headers=HUMAN_HEADERS)
    tags = assert_page_shell(r, link_id)
    text = r.text
    assert HOSTILE_TITLE not in text
    assert "<script>" not in text
    assert "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in text
    assert tags.title == HOSTILE_TITLE
    meta = tags.meta()
    assert meta["og:title"] == HOSTILE_TITLE
    assert meta["og:description"] == "Save <b>50%</b> & more 'today'"
    assert meta["og:image"] == "https://cdn.example/i.png?a=1&b=<2>"
    assert meta["twitter:card"] == "summary_large_image"
    assert 'property="og:image"' in text
    assert 'name="twitter:card"' in text
    assert 'content="https://cdn.example/i.png?a=1&amp;b=&lt;2&gt;"' in text
    assert "Shop &quot;now&quot; &gt;" in text

    # The page view is the click (flag mode); the button redirects without a second one.
    assert len(clicks(db_path)) == 1
    assert len(message_clicks(db_path)) == 1
    r = app.get(f"/{link_id}/go", headers=HUMAN_HEADERS)
    assert r.status_int == 302
    assert r.headers["Location"] == SUMMER.format(link_id)
    assert len(clicks(db_path)) == 1
    assert len(message_clicks(db_path)) == 1


def test_list_default_interstitial_uses_the_lists_fields(campaign, acme, webapp):
    acme(
        "list",
        "update",
        "vip",
        "--interstitial-title",
        "VIP <deals> & more",
        "--interstitial-description",
        "Only for <you>",
        "--interstitial-cta",
        "Open it",
        "--interstitial-meta",
        "og:site_name=Acme & Co",
    )
    acme("offer", "update", "Summer Sale", "--interstitial", "list_default")
    app = webapp()
    link_id = link1(campaign)["id"]
    r = app.get(f"/{link_id}", headers=HUMAN_HEADERS)
    tags = assert_page_shell(r, link_id)
    assert tags.title == "VIP <deals> & more"
    assert "VIP &lt;deals&gt; &amp; more" in r.text
    assert "Only for &lt;you&gt;" in r.text
    assert "Open it" in r.text
    meta = tags.meta()
    assert meta["og:site_name"] == "Acme & Co"
    assert meta["og:title"] == "VIP <deals> & more"
    assert "twitter:card" in meta
    # link2 has no offer: a redirect.
    r = app.get(f"/{link2(campaign)['id']}", headers=HUMAN_HEADERS)
    assert r.status_int == 302


def test_interstitial_none_redirects(campaign, acme, webapp):
    acme("offer", "update", "Summer Sale", "--interstitial", "custom", "--title", "Hi")
    acme("offer", "update", "Summer Sale", "--interstitial", "none")
    app = webapp()
    link_id = link1(campaign)["id"]
    r = app.get(f"/{link_id}", headers=HUMAN_HEADERS)
    assert r.status_int == 302
    assert r.headers["Location"] == SUMMER.format(link_id)


def test_settings_changed_while_running_are_picked_up(campaign, acme, webapp):
    """A running app re-reads its settings soon after a change (its cached config version is
    checked at most once a second)."""
    app = webapp()
    link_id = link1(campaign)["id"]
    assert app.get(f"/{link_id}", headers=HUMAN_HEADERS).status_int == 302
    acme("offer", "update", "Summer Sale", "--interstitial", "custom", "--title", "Now a page")
    deadline = time.monotonic() + 10
    while True:
        r = app.get(f"/{link_id}", headers=HUMAN_HEADERS)
        if r.status_int == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status_int == 200
    assert "Now a page" in r.text


def test_links_sent_while_running_are_served(campaign, acme, webapp, db_path, tmp_path):
    """Links newer than the server's in-memory index are read from the database."""
    app = webapp()
    (tmp_path / "later.txt").write_text("Later {{link1}}", encoding="utf-8")
    acme("shorten", "later.txt", "--list", "vip", "--link", "link1=Summer Sale")
    later = query(db_path, "SELECT id FROM short_links WHERE slot = 'link1' ORDER BY message_id")
    newest = later[-1]["id"]
    r = app.get(f"/{newest}", headers=HUMAN_HEADERS)
    assert r.status_int == 302
    assert r.headers["Location"] == f"https://shop.example/summer?sub={newest}"
    assert [m["link_id"] for m in message_clicks(db_path)] == [newest]


# --- small routes -----------------------------------------------------------------------------


def test_healthz(webapp, acme):
    app = webapp()
    r = app.get("/healthz")
    assert r.status_int == 200
    assert r.content_type == "application/json"
    assert r.json["status"] == "ok"


def test_robots_txt_disallows_everything(webapp, acme):
    r = webapp().get("/robots.txt")
    assert r.status_int == 200
    lines = [line.strip() for line in r.text.splitlines()]
    assert "User-agent: *" in lines
    assert "Disallow: /" in lines


def test_go_for_an_unknown_id_is_404(campaign, webapp, db_path):
    app = webapp()
    for path in ("/zzzzzz0/go", "/abc/go", "/" + "a" * 5000 + "/go"):
        r = app.get(path, headers=HUMAN_HEADERS, status=404)
        assert "Location" not in r.headers
        assert NOT_FOUND_TEXT in r.text
    assert message_clicks(db_path) == []


# --- health, domain check and the access log -----------------------------------------------------


def test_head_healthz_and_head_conv_are_not_taken_for_link_ids(webapp, campaign):
    app = webapp()
    assert app.head("/healthz").status_int == 200
    assert app.head("/robots.txt").status_int == 200
    response = app.head("/conv?cid=abcdefg&amount=1", expect_errors=True)
    assert response.status_int == 200  # HEAD records nothing and is not an error


def test_domain_check_answers_for_tracking_domains_only(webapp, campaign):
    app = webapp()
    assert app.get("/domain-check?domain=go.acme.test").status_int == 200
    assert app.get("/domain-check?domain=GO.ACME.TEST").status_int == 200
    assert app.get("/domain-check?domain=evil.example", expect_errors=True).status_int == 404
    assert app.get("/domain-check", expect_errors=True).status_int == 404


def test_the_access_log_never_writes_a_postback_secret(db_path, campaign):
    import io

    import webtest

    from trackly_cli.server import AccessLog, Tracker, create_app

    tracker = Tracker(db_path)
    try:
        stream = io.StringIO()
        app = webtest.TestApp(
            AccessLog(create_app(db_path, tracker=tracker), stream=stream),
            extra_environ={"HTTP_HOST": "go.acme.test", "REMOTE_ADDR": "198.51.100.7"},
        )
        app.get("/conv/offer?offer_id=1&postback_secret=s3cr3t-value&revenue=1", expect_errors=True)
        line = stream.getvalue()
        assert "/conv/offer?offer_id=1&postback_secret=[redacted]&revenue=1" in line
        assert "s3cr3t-value" not in line
        assert " 403 " in line
    finally:
        tracker.close()


def test_the_access_log_keeps_no_full_ip_of_an_account_that_anonymises(db_path, campaign, cli):
    import io

    from trackly_cli.server import AccessLog, Tracker, create_app

    cli("account", "create", "privy", "--anonymize-ips-after", "30")
    cli("domain", "add", "go.privy.test", "--account", "privy")
    tracker = Tracker(db_path)
    try:
        stream = io.StringIO()
        app = webtest.TestApp(
            AccessLog(create_app(db_path, tracker=tracker), stream=stream, ip=tracker.logged_ip)
        )

        def logged_ip(host: str, ip: str) -> str:
            stream.seek(0)
            stream.truncate()
            app.get("/healthz", extra_environ={"HTTP_HOST": host, "REMOTE_ADDR": ip})
            return stream.getvalue().split(" ", 1)[0]

        assert logged_ip("go.privy.test", "198.51.100.7") == "198.51.100.0"
        assert logged_ip("GO.PRIVY.TEST:8080", "2001:db8:1:2::5") == "2001:db8:1::"
        assert logged_ip("go.acme.test", "198.51.100.7") == "198.51.100.7"
        assert logged_ip("unknown.example", "198.51.100.7") == "198.51.100.7"
        assert logged_ip("go.privy.test", "not-an-address") == "-"  # nothing to truncate: none

        cli("account", "update", "acme", "--anonymize-ips-after", "0")
        tracker.refresh(force=True)  # a running server sees it within a second
        assert logged_ip("go.acme.test", "198.51.100.7") == "198.51.100.0"
    finally:
        tracker.close()

    # a server for other domains only (--domain) answers 404 there, and still logs no full IP
    only_acme = Tracker(db_path, domains=["go.acme.test"])
    try:
        assert (
            only_acme.logged_ip({"HTTP_HOST": "go.privy.test", "REMOTE_ADDR": "198.51.100.7"})
            == "198.51.100.0"
        )
    finally:
        only_acme.close()


@pytest.mark.parametrize(
    "name", ["postback%5Fsecret", "postback%5fsecret", "%70ostback_secret", "POSTBACK_SECRET"]
)
def test_the_access_log_redacts_an_encoded_secret_name(name):
    from trackly_cli.access_log import redacted

    query = f"offer_id=1&{name}=s3cr3t-value&revenue=1"
    assert redacted(query) == f"offer_id=1&{name}=[redacted]&revenue=1"
    assert redacted("a=1&b=2") == "a=1&b=2"
