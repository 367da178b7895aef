"""trackly offer: create, list, show, update, rotate-secret; URLs, macros, payouts, meta tags,
interstitial settings, bot filter and postback secret."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import snapshot

from trackly_cli.cli import app
from trackly_cli.core import store

URL = "https://shop.example/summer?sub={link_id}"


def offer_row(db, name: str) -> dict:
    return store.row(db, "SELECT * FROM offers WHERE name = ?", (name,))


def refused_each(cli, db_path: Path, cases: dict[str, list], code: int = 1) -> dict[str, str]:
    """Run every case (label -> arguments), each of which must fail with `code` and change
    nothing in the database; report every case that did not, and return the error messages."""
    problems, messages = [], {}
    for label, args in cases.items():
        before = snapshot(db_path)
        try:
            messages[label] = cli.error(*args, code=code)
        except AssertionError as e:
            problems.append(f"{label!r}: {e}")
            continue
        if snapshot(db_path) != before:
            problems.append(f"{label!r}: the database changed")
    assert not problems, "\n\n".join(problems)
    return messages


# --- create -------------------------------------------------------------------------------------


def test_offer_create_prints_the_secret_and_stores_the_offer(acme, db):
    result = acme("offer", "create", "Winter", "--url", "https://shop.example/winter")
    row = offer_row(db, "Winter")
    assert row["postback_secret"] in result.stdout + result.stderr
    assert row["url"] == "https://shop.example/winter"
    assert row["payout_micros"] == 0
    assert row["attribution_days"] == 7
    assert row["interstitial"] == "none"
    assert row["bot_filter"] == "inherit"
    assert json.loads(row["meta"]) == {}
    assert json.loads(row["postback_ips"]) == []
    assert row["created_at"].endswith("Z")


def test_offer_create_json(acme):
    created = acme.json(
        "offer",
        "create",
        "Winter",
        "--url",
        "https://shop.example/w?l={link_id}&m={message_id}",
        "--payout",
        "12.5",
        "--attribution-days",
        "30",
    )
    assert created["name"] == "Winter"
    assert created["payout"] == "12.50"
    assert created["attribution_days"] == 30
    assert created["domain"] == "go.acme.test"
    assert len(created["postback_secret"]) >= 32


def test_the_fixture_offer_as_the_issue_shows_it(acme):
    offers = acme.json("offer", "list")
    assert len(offers) == 1
    assert offers[0]["name"] == "Summer Sale"
    assert offers[0]["url"] == URL
    assert offers[0]["payout"] == "2.50"
    assert offers[0]["domain"] == "go.acme.test"


PAYOUTS = [
    ("2.50", "2.50", 2_500_000),
    ("0.1", "0.10", 100_000),
    ("1.2345", "1.2345", 1_234_500),
    ("3", "3.00", 3_000_000),
    ("0", "0.00", 0),
    ("0.005", "0.005", 5_000),
    ("  7.25 ", "7.25", 7_250_000),
]


def test_payout_is_exact(acme, db):
    for n, (typed, shown, micros) in enumerate(PAYOUTS):
        name = f"P{n}"
        created = acme.json(
            "offer", "create", name, "--url", "https://shop.example/", "--payout", typed
        )
        assert created["payout"] == shown, typed
        assert offer_row(db, name)["payout_micros"] == micros, typed
    listed = {o["name"]: o["payout"] for o in acme.json("offer", "list")}
    assert [listed[f"P{n}"] for n in range(len(PAYOUTS))] == [p[1] for p in PAYOUTS]


def test_bad_payouts_are_refused(acme, db_path):
    bad = ["1.23456", "abc", "NaN", "nan", "inf", "-inf", "1e3", "-1", "-0.01", "1,50", "$2", " "]
    messages = refused_each(
        acme,
        db_path,
        {b: ["offer", "create", "P", "--url", "https://shop.example/", "--payout", b] for b in bad},
    )
    for value, message in messages.items():
        assert "payout" in message, (value, message)


def test_a_huge_payout_is_refused(acme, db_path):
    before = snapshot(db_path)
    acme.error("offer", "create", "P", "--url", "https://shop.example/", "--payout", "99999999")
    assert snapshot(db_path) == before


GOOD_URLS = [
    "https://shop.example/",
    "http://shop.example/path?x=1#frag",
    "HTTPS://Shop.Example/",
    "https://shop.example:8443/p",
    "https://shop.example/?l={link_id}&m={message_id}&c={contact_id}&o={offer_id}&cmp={campaign}",
    "https://shop.example/{campaign}/{link_id}",
    "https://xn--bcher-kva.example/",
]


def test_good_urls_and_known_macros_are_accepted(acme, db):
    for n, url in enumerate(GOOD_URLS):
        acme("offer", "create", f"U{n}", "--url", url)
        assert offer_row(db, f"U{n}")["url"] == url


BAD_URLS = [
    ("javascript:alert(1)", "http"),
    ("JavaScript:alert(1)", "http"),
    ("data:text/html,<script>alert(1)</script>", "http"),
    ("/x", "http"),
    ("x", "http"),
    ("//evil.example/path", "http"),
    ("ftp://files.example/x", "http"),
    ("mailto:a@example.com", "http"),
    ("https://", "host"),
    ("https:///path", "host"),
    ("https://shop example/", "spaces"),
    ("https://shop.example/a b", "spaces"),
    ("https://shop.example/\tx", "spaces"),
    ("https://shop.example/?x={foo}", "{foo}"),
    ("https://shop.example/?x={LINK_ID}", "{LINK_ID}"),
    ("https://shop.example/?x={}", "macro"),
    ("https://shop.example/?x={link_id", "unbalanced"),
    ("https://shop.example/?x=link_id}", "unbalanced"),
    ("https://shop.example/?x={{link_id}}", ""),
    ("https://shop.example:99999/", "port"),
    ("", "empty"),
    ("https://shop.example/" + "a" * 2100, "longer"),
]


def test_bad_urls_are_refused(acme, db_path):
    messages = refused_each(
        acme, db_path, {url: ["offer", "create", "U", "--url", url] for url, _ in BAD_URLS}
    )
    wrong = [(url, messages[url]) for url, hint in BAD_URLS if hint not in messages[url]]
    assert not wrong


def test_unknown_macro_names_the_known_ones(acme):
    message = acme.error("offer", "create", "U", "--url", "https://shop.example/?x={foo}")
    for macro in ("{link_id}", "{message_id}", "{contact_id}", "{offer_id}", "{campaign}"):
        assert macro in message


def test_meta_pairs_are_parsed(acme, db):
    created = acme.json(
        "offer",
        "create",
        "M",
        "--url",
        "https://shop.example/",
        "--meta",
        "og:title=Summer sale",
        "--meta",
        "og:image=https://cdn.example/a.png?x=1&y=2",
        "--meta",
        "description=a=b=c",
        "--meta",
        "twitter:card=",
    )
    expected = {
        "og:title": "Summer sale",
        "og:image": "https://cdn.example/a.png?x=1&y=2",
        "description": "a=b=c",
        "twitter:card": "",
    }
    assert created["meta"] == expected
    assert json.loads(offer_row(db, "M")["meta"]) == expected


def test_bad_meta_syntax_is_refused(acme, db_path):
    bad = ["novalue", "=x", "bad key=1", " =1", "1abc=x", "a<b=x"]
    base = ["offer", "create", "M", "--url", "https://shop.example/", "--meta", "og:title=ok"]
    messages = refused_each(acme, db_path, {b: [*base, "--meta", b] for b in bad})
    assert all("meta" in m for m in messages.values()), messages
    assert "KEY=VALUE" in messages["novalue"]


def test_interstitial_custom_needs_a_title(acme, db_path):
    before = snapshot(db_path)
    message = acme.error(
        "offer", "create", "I", "--url", "https://shop.example/", "--interstitial", "custom"
    )
    assert "--title" in message
    assert snapshot(db_path) == before


def test_interstitial_custom_with_its_fields(acme, db):
    created = acme.json(
        "offer",
        "create",
        "I",
        "--url",
        "https://shop.example/",
        "--interstitial",
        "custom",
        "--title",
        "Summer Sale",
        "--description",
        "Half price on everything",
        "--cta",
        "Shop now",
        "--meta",
        "og:title=Summer",
    )
    assert created["interstitial"] == "custom"
    row = offer_row(db, "I")
    assert (row["interstitial"], row["title"], row["description"], row["cta"]) == (
        "custom",
        "Summer Sale",
        "Half price on everything",
        "Shop now",
    )


def test_other_interstitial_modes_need_no_title(acme, db):
    for mode in ("none", "list_default"):
        acme("offer", "create", mode, "--url", "https://shop.example/", "--interstitial", mode)
        assert offer_row(db, mode)["interstitial"] == mode


def test_unknown_interstitial_mode_is_a_usage_error(acme, db_path):
    before = snapshot(db_path)
    acme.error(
        "offer", "create", "I", "--url", "https://shop.example/", "--interstitial", "fancy", code=2
    )
    assert snapshot(db_path) == before


def test_bot_filter_values(acme, db):
    for value in ("inherit", "off", "flag", "confirm"):
        created = acme.json(
            "offer", "create", value, "--url", "https://shop.example/", "--bot-filter", value
        )
        assert created["bot_filter"] == value
        assert offer_row(db, value)["bot_filter"] == value


def test_bad_bot_filter_is_a_usage_error(acme, db_path):
    before = snapshot(db_path)
    acme.error(
        "offer", "create", "B", "--url", "https://shop.example/", "--bot-filter", "maybe", code=2
    )
    assert snapshot(db_path) == before


def test_bad_attribution_days_is_a_usage_error(acme, db_path):
    base = ["offer", "create", "A", "--url", "https://shop.example/", "--attribution-days"]
    refused_each(acme, db_path, {b: [*base, b] for b in ("0", "-1", "x", "1.5")}, code=2)


def test_huge_attribution_days_are_refused_without_a_traceback(acme, db_path):
    before = snapshot(db_path)
    result = acme.runner.invoke(
        app,
        ["offer", "create", "A", "--url", "https://shop.example/", "--attribution-days", "9" * 20],
    )
    assert result.exit_code in (1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.stderr.strip()
    assert snapshot(db_path) == before


def test_a_one_day_window_is_the_shortest(acme, db):
    acme("offer", "create", "A", "--url", "https://shop.example/", "--attribution-days", "1")
    assert offer_row(db, "A")["attribution_days"] == 1


def test_postback_ips_are_validated_and_normalised(acme, db):
    created = acme.json(
        "offer",
        "create",
        "IP",
        "--url",
        "https://shop.example/",
        "--postback-ip",
        "203.0.113.0/24",
        "--postback-ip",
        "198.51.100.7",
        "--postback-ip",
        "2001:db8::/32",
        "--postback-ip",
        "192.0.2.77/24",
    )
    expected = ["203.0.113.0/24", "198.51.100.7/32", "2001:db8::/32", "192.0.2.0/24"]
    assert created["postback_ips"] == expected
    assert json.loads(offer_row(db, "IP")["postback_ips"]) == expected


def test_bad_postback_ips_are_refused(acme, db_path):
    bad = ["nope", "10.0.0.1/33", "300.1.1.1", "10.0.0.0/x", ""]
    base = ["offer", "create", "IP", "--url", "https://shop.example/", "--postback-ip"]
    messages = refused_each(acme, db_path, {b: [*base, b] for b in bad})
    assert all("CIDR" in m for m in messages.values()), messages


def test_duplicate_offer_name_is_refused(acme, db_path):
    names = ("Summer Sale", "summer sale", "SUMMER SALE", " Summer Sale ")
    messages = refused_each(
        acme, db_path, {n: ["offer", "create", n, "--url", "https://shop.example/"] for n in names}
    )
    assert all("already exists" in m for m in messages.values()), messages


def test_the_same_offer_name_in_another_account_is_fine(acme, db):
    acme("account", "create", "globex")
    acme("offer", "create", "Summer Sale", "--url", "https://globex.example/", "-a", "globex")
    rows = db.execute(
        "SELECT a.name FROM offers o JOIN accounts a ON a.id = o.account_id ORDER BY a.name"
    ).fetchall()
    assert rows == [("acme",), ("globex",)]
    assert acme.json("offer", "list", "-a", "globex")[0]["url"] == "https://globex.example/"


def test_bad_offer_names_are_refused(acme, db_path):
    bad = ["42", "", "   ", "x" * 101]
    refused_each(
        acme, db_path, {b: ["offer", "create", b, "--url", "https://shop.example/"] for b in bad}
    )


def test_offer_create_without_url_is_a_usage_error(acme, db_path):
    before = snapshot(db_path)
    acme.error("offer", "create", "NoUrl", code=2)
    assert snapshot(db_path) == before


def test_offer_without_a_domain_has_no_postback_url(cli):
    cli("account", "create", "bare")
    created = cli.json("offer", "create", "O", "--url", "https://shop.example/")
    assert created["domain"] is None
    assert created["postback_url"] is None


# --- secret -------------------------------------------------------------------------------------


def test_postback_secret_is_long_url_safe_and_unique(acme, db):
    acme("offer", "create", "Second", "--url", "https://shop.example/2")
    secrets = [r[0] for r in db.execute("SELECT postback_secret FROM offers")]
    assert len(secrets) == 2
    assert len(set(secrets)) == 2
    for secret in secrets:
        assert len(secret) >= 32
        assert re.fullmatch(r"[A-Za-z0-9_-]+", secret)


def test_offer_show_json_has_the_secret(acme, db):
    shown = acme.json("offer", "show", "Summer Sale")
    assert {"id", "name", "url", "payout", "postback_secret"} <= set(shown)
    assert shown["name"] == "Summer Sale"
    assert shown["url"] == URL
    assert shown["payout"] == "2.50"
    assert shown["postback_secret"] == offer_row(db, "Summer Sale")["postback_secret"]
    assert shown["postback_secret"] in shown["postback_url"]
    assert shown["postback_url"].startswith(
        f"https://go.acme.test/conv/offer?offer_id={shown['id']}"
    )
    assert acme.json("offer", "show", str(shown["id"])) == shown
    assert acme.json("offer", "show", "summer sale") == shown


def test_offer_show_table_has_the_secret(acme, db):
    secret = offer_row(db, "Summer Sale")["postback_secret"]
    assert secret in acme("offer", "show", "Summer Sale").stdout


def test_offer_list_json_has_no_secret(acme, db):
    secret = offer_row(db, "Summer Sale")["postback_secret"]
    for fmt in ("json", "csv", "table"):
        out = acme("offer", "list", "--format", fmt).stdout
        assert secret not in out, fmt
    offers = acme.json("offer", "list")
    assert "postback_secret" not in offers[0]
    assert "postback_url" not in offers[0]
    assert {"id", "name", "url", "payout"} <= set(offers[0])


def test_offer_list_output_file(acme, tmp_path):
    target = tmp_path / "offers.csv"
    acme("offer", "list", "--format", "csv", "--output", target)
    text = target.read_text(encoding="utf-8")
    assert "Summer Sale" in text
    assert "2.50" in text


def test_rotate_secret_changes_it(acme, db):
    old = offer_row(db, "Summer Sale")["postback_secret"]
    rotated = acme.json("offer", "rotate-secret", "Summer Sale")
    new = offer_row(db, "Summer Sale")["postback_secret"]
    assert new != old
    assert rotated["postback_secret"] == new
    assert len(new) >= 32
    assert acme.json("offer", "show", "Summer Sale")["postback_secret"] == new
    assert old not in json.dumps(acme.json("offer", "show", "Summer Sale"))


def test_rotate_secret_unknown_offer(acme, db_path):
    before = snapshot(db_path)
    assert "Nope" in acme.error("offer", "rotate-secret", "Nope")
    acme.error("offer", "rotate-secret", "999")
    assert snapshot(db_path) == before


def test_offer_show_unknown(acme):
    assert "Nope" in acme.error("offer", "show", "Nope")


def test_offers_of_another_account_are_not_found(acme, db_path):
    acme("account", "create", "globex")
    before = snapshot(db_path)
    offer_id = acme.json("offer", "show", "Summer Sale", "-a", "acme")["id"]
    acme.error("offer", "show", "Summer Sale", "-a", "globex")
    acme.error("offer", "show", str(offer_id), "-a", "globex")
    acme.error("offer", "rotate-secret", "Summer Sale", "-a", "globex")
    acme.error("offer", "update", "Summer Sale", "--payout", "1", "-a", "globex")
    assert snapshot(db_path) == before


# --- update -------------------------------------------------------------------------------------


def test_offer_update_changes_fields(acme, db):
    secret = offer_row(db, "Summer Sale")["postback_secret"]
    updated = acme.json(
        "offer",
        "update",
        "Summer Sale",
        "--url",
        "https://shop.example/new?c={contact_id}",
        "--payout",
        "3.75",
        "--attribution-days",
        "14",
        "--bot-filter",
        "confirm",
        "--meta",
        "og:title=New",
        "--postback-ip",
        "203.0.113.9",
    )
    assert updated["url"] == "https://shop.example/new?c={contact_id}"
    assert updated["payout"] == "3.75"
    row = offer_row(db, "Summer Sale")
    assert row["payout_micros"] == 3_750_000
    assert row["attribution_days"] == 14
    assert row["bot_filter"] == "confirm"
    assert json.loads(row["meta"]) == {"og:title": "New"}
    assert json.loads(row["postback_ips"]) == ["203.0.113.9/32"]
    assert row["postback_secret"] == secret  # update never rotates the secret
    acme("offer", "update", "Summer Sale", "--any-postback-ip")
    assert json.loads(offer_row(db, "Summer Sale")["postback_ips"]) == []


def test_offer_update_rename(acme, db):
    acme("offer", "update", "Summer Sale", "--name", "Autumn Sale")
    assert [r[0] for r in db.execute("SELECT name FROM offers")] == ["Autumn Sale"]
    # changing only the case of its own name is fine
    acme("offer", "update", "Autumn Sale", "--name", "AUTUMN SALE")
    assert [r[0] for r in db.execute("SELECT name FROM offers")] == ["AUTUMN SALE"]


def test_offer_update_rename_to_a_taken_name_is_refused(acme, db_path):
    acme("offer", "create", "Winter", "--url", "https://shop.example/w")
    before = snapshot(db_path)
    assert "already exists" in acme.error("offer", "update", "Winter", "--name", "summer sale")
    assert snapshot(db_path) == before


def test_offer_update_bad_values_change_nothing(acme, db_path):
    cases = [
        ["--url", "javascript:alert(1)"],
        ["--url", "https://shop.example/?x={foo}"],
        ["--payout", "1.23456"],
        ["--payout", "abc"],
        ["--meta", "novalue"],
        ["--postback-ip", "nope"],
        ["--interstitial", "custom"],
        ["--name", "123"],
        ["--payout", "9", "--url", "data:text/html,x"],
    ]
    refused_each(
        acme, db_path, {" ".join(c): ["offer", "update", "Summer Sale", *c] for c in cases}
    )


def test_offer_update_to_custom_with_a_title(acme, db):
    acme("offer", "update", "Summer Sale", "--interstitial", "custom", "--title", "Hi")
    row = offer_row(db, "Summer Sale")
    assert (row["interstitial"], row["title"]) == ("custom", "Hi")
    # the title of a custom page cannot be cleared
    acme.error("offer", "update", "Summer Sale", "--title", "")
    assert offer_row(db, "Summer Sale")["title"] == "Hi"


def test_offer_update_unknown(acme, db_path):
    before = snapshot(db_path)
    assert "Nope" in acme.error("offer", "update", "Nope", "--payout", "1")
    assert snapshot(db_path) == before


def test_a_non_ascii_destination_is_stored_as_an_ascii_url(acme):
    offer = acme.json("offer", "create", "Uni", "--url", "https://例え.jp/ü?x=ä&sub={link_id}")
    assert offer["url"] == "https://xn--r8jz45g.jp/%C3%BC?x=%C3%A4&sub={link_id}"
